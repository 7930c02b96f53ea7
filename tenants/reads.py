"""Reads of tenants and their org units that the pages and the API share. Each takes the tenant that
`access_tenant` returned and filters by it; the platform-wide lists are only for callers the firewall let read
`tenant` on the platform (auditors, platform admins)."""
from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select

from federation.extensions import db
from federation.firewall import Denied
from tenants.login_ids import login_key_or_none
from tenants.models import Affiliation, OrgUnit, Tenant, User
from tenants.ordering import TENANT_ORDER, tree_order


def units_by_id(tenant: Tenant) -> dict[int, OrgUnit]:
    return {u.id: u for u in db.session.execute(select(OrgUnit).where(OrgUnit.tenant_id == tenant.id)).scalars()}


def units_of_kinds(tenant: Tenant, kinds: Iterable[str]) -> list[OrgUnit]:
    """The tenant's units of these kinds, in tree order (a branch, then its workplaces; tenants/ordering.py)."""
    return tree_order(db.session.execute(select(OrgUnit).where(OrgUnit.tenant_id == tenant.id,
                                                               OrgUnit.kind.in_(tuple(kinds)))).scalars())


def tenant_names(slugs: set[str]) -> dict[str, str]:
    """Display names of tenants the caller was already shown by slug (a union in a stats row, an audit entry)."""
    if not slugs:
        return {}
    return dict(db.session.execute(select(Tenant.slug, Tenant.name).where(Tenant.slug.in_(slugs))).all())


def all_tenants() -> list[Tenant]:
    """Every tenant, for the platform's own callers (after the firewall allowed `tenant read` on the platform):
    by kind, then in 50-on order of their reading (tenants/ordering.py)."""
    return list(db.session.execute(select(Tenant).order_by(Tenant.kind, *TENANT_ORDER)).scalars())


def member_by_login(tenant: Tenant, login_id: str) -> User:
    """A user of this tenant by login id; another tenant's, or nobody: 404 alike (F8)."""
    key = login_key_or_none(login_id)
    user = None if key is None else db.session.execute(
        select(User).where(User.tenant_id == tenant.id, User.login_key == key)).scalar_one_or_none()
    if user is None:
        raise Denied(404)
    return user


def affiliations_of(federation: Tenant) -> list[Affiliation]:
    """The federation's affiliations, pending, active and ended: unions in 50-on order, each union's oldest first."""
    return list(db.session.execute(select(Affiliation).join(Tenant, Tenant.id == Affiliation.union_id)
                                   .where(Affiliation.federation_id == federation.id)
                                   .order_by(*TENANT_ORDER, Affiliation.id)).scalars())


def live_affiliation_with(federation: Tenant, union_slug: str) -> Affiliation:
    """The federation's live (pending or active) affiliation with the union of that slug, else 404."""
    aff = db.session.execute(
        select(Affiliation).join(Tenant, Tenant.id == Affiliation.union_id)
        .where(Affiliation.federation_id == federation.id, Tenant.slug == union_slug, Affiliation.status != "ended")
    ).scalar_one_or_none()
    if aff is None:
        raise Denied(404)
    return aff
