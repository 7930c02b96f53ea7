"""Tenants: the federation, its unions and the platform; their org units, users, roles and affiliations."""
