"""what-can: every tenant, object and action a subject may use (the ListObjects of this domain), grouped so that a
platform role's reach into every tenant reads as one line instead of five hundred."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select

from federation.audit.queries import parse_subject
from federation.extensions import db
from federation.firewall import firewall
from federation.firewall.templates import ACTIONS, OBJECTS
from tenants.models import Tenant
from tenants.ordering import TENANT_ORDER


def what_can(subject_text: str) -> dict[str, Any]:
    subject, role_subject = parse_subject(subject_text)
    snap = firewall.snapshot()
    tenants = list(db.session.execute(select(Tenant.slug, Tenant.kind).order_by(Tenant.kind, *TENANT_ORDER)))
    if subject is not None:
        roles, home = list(snap.roles_of(subject)), subject.tenant

        def allowed(dom: str, obj: str, act: str) -> bool:
            return snap.allowed(subject, dom, obj, act)
    else:
        assert role_subject is not None
        role, given = role_subject
        roles, home = [role], given or ""

        def allowed(dom: str, obj: str, act: str) -> bool:
            return any(snap.role_allows(r, home, dom, obj, act) for r in roles)
    per_tenant: dict[str, list[str]] = {}
    for slug, _kind in tenants:
        perms = [f"{obj}/{act}" for obj in OBJECTS for act in ACTIONS if allowed(slug, obj, act)]
        if perms:
            per_tenant[slug] = perms
    # Permissions that hold in every tenant (the platform roles' `any` link) are shown once.
    everywhere = set.intersection(*(set(p) for p in per_tenant.values())) if len(per_tenant) == len(tenants) \
        and per_tenant else set()
    grouped = []
    if everywhere and len(tenants) > 1:
        grouped.append({"tenant": "every tenant", "count": len(tenants), "permissions": sorted(everywhere)})
    for slug, perms in per_tenant.items():
        rest = sorted(set(perms) - everywhere)
        if rest:
            grouped.append({"tenant": slug, "permissions": rest})
    return {"subject": subject_text, "acting_from": home, "roles": roles, "reach": grouped,
            "policy_version": snap.version}
