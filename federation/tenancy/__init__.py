"""The HTTP side of tenancy: tenants, org units, members, roles and affiliations, above the firewall. The models,
services and reads they call live below it, in the top-level tenants/ package."""
