"""Why a subject may or may not do something: the role chain, the Casbin rule that matched, the cross-tenant link
it went through, or, for a denial, the nearest rules and what is missing for each. Reads no content."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from federation.extensions import db
from federation.firewall.templates import DERIVED_ROLE, GRANTABLE, Rule

if TYPE_CHECKING:
    from federation.firewall.service import Firewall, Subject

ROLE_KIND = {role: kind for kind, roles in GRANTABLE.items() for role in roles} | {
    role: kind for kind, role in DERIVED_ROLE.items()}


def _tenant_kinds(slugs: set[str]) -> dict[str, str]:
    from tenants.models import Tenant

    return dict(db.session.execute(select(Tenant.slug, Tenant.kind).where(Tenant.slug.in_(slugs))).all())


def _affiliation(union: str, federation: str) -> dict[str, Any] | None:
    from tenants.models import Affiliation, Tenant

    fed = Tenant.__table__.alias("fed")
    uni = Tenant.__table__.alias("uni")
    row = db.session.execute(
        select(Affiliation).join(fed, fed.c.id == Affiliation.federation_id).join(uni, uni.c.id == Affiliation.union_id)
        .where(uni.c.slug == union, fed.c.slug == federation).order_by(Affiliation.id.desc()).limit(1)
    ).scalar_one_or_none()
    if row is None:
        return None
    return {"id": row.id, "federation": federation, "union": union, "status": row.status, "cascade": row.cascade,
            "cascade_changed_at": row.cascade_changed_at.isoformat() if row.cascade_changed_at else None,
            "cascade_changed_by": row.cascade_changed_by}


def role_subject_home(role: str, dom: str, snapshot_links: dict[str, frozenset[str]]) -> str:
    """The tenant a bare `role:ROLE` acts from, when the auditor did not name one (`role:ROLE@TENANT`)."""
    kind = ROLE_KIND.get(role)
    if kind == "platform":
        return "platform"
    dom_kind = _tenant_kinds({dom}).get(dom)
    if kind == dom_kind:
        return dom
    if kind == "federation" and dom_kind == "union":
        for link in sorted(snapshot_links.get(dom, ())):
            return link.split(":", 1)[0]
        return "(a federation)"
    return f"(a {kind or 'other'} tenant)"


def explain(fw: Firewall, subject: Subject | None, role_subject: tuple[str, str | None] | None, dom: str, obj: str,
            act: str) -> dict[str, Any]:
    snap = fw.snapshot()
    roles: list[dict[str, Any]] = []
    if subject is not None:
        sdom, label = subject.tenant, subject.key
        if not subject.active:
            roles_held: list[str] = []
        else:
            for grant in snap.grants.get(subject.user_id, ()):
                roles.append({"role": grant.role, "tenant": grant.tenant, "source": "grant",
                              "grant_id": grant.grant_id, "unit_id": grant.unit_id})
            derived = DERIVED_ROLE.get(subject.kind)
            if derived:
                roles.append({"role": derived, "tenant": subject.tenant, "source": "derived",
                              "why": f"every active user of {subject.tenant} is a {derived}"})
            roles_held = [r["role"] for r in roles]
    else:
        assert role_subject is not None
        role, sdom_given = role_subject
        sdom = sdom_given or role_subject_home(role, dom, snap.links)
        label = f"role:{role}" + (f"@{sdom_given}" if sdom_given else "")
        roles.append({"role": role, "tenant": sdom, "source": "asked"})
        roles_held = [role]

    matched: list[dict[str, Any]] = []
    for role in roles_held:
        ok, rule = fw.casbin_allows(role, sdom, dom, obj, act, snapshot=snap)
        if not ok or not rule:
            continue
        rule_obj = Rule(*rule)
        entry: dict[str, Any] = {"rule": rule_obj.as_line(), "role": role,
                                 "via": fw.templates.chain(role, rule_obj.role), "link": rule_obj.link}
        if rule_obj.link in ("affiliated", "opted_in"):
            entry["affiliation"] = _affiliation(dom, sdom)
        matched.append(entry)
    allowed = bool(matched)
    if subject is not None and not subject.active:
        reason = f"{label} is not active (suspended or not yet registered): a suspended user holds no role"
    elif allowed:
        first = matched[0]
        reason = f"{label} holds {' → '.join(first['via'])}; {first['rule']}"
    else:
        reason = f"no rule gives {obj}/{act} in {dom} to {label}"
    out: dict[str, Any] = {"allowed": allowed, "subject": label, "acting_from": sdom, "tenant": dom, "object": obj,
                           "action": act, "roles": roles, "explain": matched, "reason": reason}
    if not allowed:
        out["nearest"] = _nearest(fw, roles_held, sdom, dom, obj, act, snap.links)
    return out


def _nearest(fw: Firewall, roles_held: list[str], sdom: str, dom: str, obj: str, act: str,
             links: dict[str, frozenset[str]]) -> list[dict[str, Any]]:
    """The rules for obj/act that came closest, each with what is missing. Fewest missing conditions first."""
    held = set()
    for role in roles_held:
        held |= fw.templates.closure(role)
    candidates: list[tuple[int, dict[str, Any]]] = []
    tenant_links = links.get(dom, frozenset())
    for rule in fw.templates.rules:
        if rule.obj != obj or rule.act != act:
            continue
        missing: list[str] = []
        if rule.role not in held:
            missing.append(f"the role {rule.role}")
        if rule.link == "self" and sdom != dom:
            missing.append(f"acting from inside {dom} (the subject acts from {sdom})")
        elif rule.link == "any" and sdom != "platform":
            missing.append("a platform role")
        elif rule.link == "affiliated" and f"{sdom}:affiliated" not in tenant_links:
            missing.append(f"an active affiliation of {dom} with {sdom}")
        elif rule.link == "opted_in" and f"{sdom}:opted_in" not in tenant_links:
            state = "affiliated, cascade opted_out" if f"{sdom}:affiliated" in tenant_links else "not affiliated"
            missing.append(f"{dom} opting in to {sdom}'s cascade (now: {state})")
        if missing:
            candidates.append((len(missing), {"rule": rule.as_line(), "missing": missing}))
    if not candidates:
        return [{"rule": None, "missing": [f"no rule grants {obj}/{act} to any role"]}]
    best = min(n for n, _ in candidates)
    return [c for n, c in candidates if n == best][:5]
