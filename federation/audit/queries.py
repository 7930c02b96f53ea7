"""What auditors ask: check (with the reason), who-can, exposure. They read policy, roles, links and counts;
never a notice, document, survey answer, application or member list (F1)."""
from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import func, select

from federation.errors import invalid
from federation.extensions import db
from federation.firewall import Subject, firewall
from federation.firewall.explain import ROLE_KIND
from federation.firewall.templates import ACTIONS, DERIVED_ROLE, OBJECTS
from tenants.models import Affiliation, Tenant, User

# Objects whose content belongs to a union alone (F1): listed in the exposure statement.
UNION_CONTENT = ("notices", "documents", "surveys", "applications", "members", "units", "receipts")


def _vocab(obj: str, action: str) -> None:
    if obj not in OBJECTS:
        raise invalid("object", f"one of {', '.join(OBJECTS)}")
    if action not in ACTIONS:
        raise invalid("action", f"one of {', '.join(ACTIONS)}")


def _tenant(slug: str, field: str = "tenant") -> Tenant:
    tenant = db.session.execute(select(Tenant).where(Tenant.slug == slug)).scalar_one_or_none()
    if tenant is None:
        raise invalid(field, f"no tenant {slug}")
    return tenant


def parse_subject(text: str) -> tuple[Subject | None, tuple[str, str | None] | None]:
    if text.startswith("user:") and "/" in text:
        slug, _, login_id = text[5:].partition("/")
        tenant = _tenant(slug, "subject")
        user = db.session.execute(
            select(User).where(User.tenant_id == tenant.id, User.login_id == login_id)).scalar_one_or_none()
        if user is None:
            raise invalid("subject", f"no user {login_id} in {slug}")
        return Subject(user.id, tenant.slug, tenant.kind, user.login_id, user.status == "active"), None
    if text.startswith("role:"):
        role, _, home = text[5:].partition("@")
        if role not in ROLE_KIND:
            raise invalid("subject", f"no role {role}")
        if home:
            _tenant(home, "subject")
        return None, (role, home or None)
    raise invalid("subject", "user:TENANT/LOGIN_ID or role:ROLE (optionally role:ROLE@TENANT)")


def check(subject_text: str, tenant: str, obj: str, action: str) -> dict[str, Any]:
    _vocab(obj, action)
    _tenant(tenant)
    subject, role_subject = parse_subject(subject_text)
    return firewall.explain(subject, role_subject, tenant, obj, action)


def _homes_for(role: str, target: Tenant, links: dict[str, frozenset[str]]) -> list[str]:
    """Every tenant a holder of `role` could act from towards `target`: its own, the platform, linked federations."""
    kind = ROLE_KIND.get(role)
    homes = []
    if kind == target.kind:
        homes.append(target.slug)
    if kind == "platform":
        homes.append("platform")
    if kind == "federation":
        homes += sorted({link.split(":", 1)[0] for link in links.get(target.slug, ())})
    # A platform role asked about the platform itself would otherwise be listed twice.
    return list(dict.fromkeys(homes))


def who_can(tenant_slug: str, obj: str, action: str) -> dict[str, Any]:
    _vocab(obj, action)
    target = _tenant(tenant_slug)
    snap = firewall.snapshot()
    roles_out: list[dict[str, Any]] = []
    allowed_pairs: set[tuple[str, str]] = set()
    for role in sorted(snap.templates.roles):
        for home in _homes_for(role, target, snap.links):
            if snap.role_allows(role, home, target.slug, obj, action):
                ok, rule = firewall.casbin_allows(role, home, target.slug, obj, action, snapshot=snap)
                roles_out.append({"role": role, "acting_from": home, "rule": ", ".join(["p", *rule]) if ok else None})
                allowed_pairs.add((role, home))
    users: list[dict[str, Any]] = []
    grant_users = [gr for grants in snap.grants.values() for gr in grants if (gr.role, gr.tenant) in allowed_pairs]
    if grant_users:
        rows = db.session.execute(select(User.id, User.login_id, User.display_name, User.kana_key, User.status)
                                  .where(User.id.in_({gr.user_id for gr in grant_users}))).all()
        info = {r.id: r for r in rows}
        for gr in sorted(grant_users, key=lambda gr: (gr.tenant, info[gr.user_id].kana_key)):
            u = info[gr.user_id]
            if u.status == "active":
                users.append({"subject": f"user:{gr.tenant}/{u.login_id}", "display_name": u.display_name,
                              "role": gr.role, "unit_id": gr.unit_id})
    groups = []
    for kind, role in DERIVED_ROLE.items():
        if (role, target.slug) in allowed_pairs and target.kind == kind:
            count = db.session.execute(select(func.count()).select_from(User).where(
                User.tenant_id == target.id, User.status == "active")).scalar_one()
            # Members are counted, not listed: the member list is the union's own (F1).
            groups.append({"role": role, "tenant": target.slug, "count": count,
                           "description": f"every active member of {target.slug} (role {role}, derived)"})
    return {"tenant": target.slug, "object": obj, "action": action, "roles": roles_out, "users": users,
            "groups": groups}


def exposure() -> dict[str, Any]:
    snap = firewall.snapshot()
    tenants = {t.slug: t for t in db.session.execute(select(Tenant)).scalars()}
    fed_roles = sorted(r for r in snap.templates.roles if ROLE_KIND.get(r) == "federation")
    crossings: list[dict[str, Any]] = []
    # Platform roles reach every tenant through the `any` link: one row, the same for every tenant.
    platform_perms = sorted({f"{role}: {rule.obj}/{rule.act}" for role in snap.templates.roles
                             if ROLE_KIND.get(role) == "platform"
                             for rule in snap.templates.rules if rule.role == role and rule.link == "any"})
    crossings.append({"from": "platform", "to": "every tenant", "permissions": platform_perms})
    per_union: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for union, links in snap.links.items():
        for fed in {link.split(":", 1)[0] for link in links}:
            for role in fed_roles:
                for obj in OBJECTS:
                    for act in ACTIONS:
                        if snap.role_allows(role, fed, union, obj, act):
                            per_union[union][fed].add(f"{role}: {obj}/{act}")
    for union in sorted(per_union):
        for fed, perms in sorted(per_union[union].items()):
            crossings.append({"from": fed, "to": union, "permissions": sorted(perms)})
    unions = []
    affs = db.session.execute(select(Affiliation).where(Affiliation.status != "ended")).scalars()
    by_union = {a.union_id: a for a in affs}
    for slug, tenant in sorted(tenants.items()):
        if tenant.kind != "union":
            continue
        aff = by_union.get(tenant.id)
        entry: dict[str, Any] = {"union": slug, "federation": None, "status": None, "cascade": None,
                                 "cascade_changed_at": None, "cascade_changed_by": None}
        if aff is not None:
            # ISO 8601 like every other timestamp of the API (a bare datetime would go out as an HTTP date).
            changed_at = aff.cascade_changed_at.isoformat() if aff.cascade_changed_at else None
            entry.update(federation=aff.federation.slug, status=aff.status, cascade=aff.cascade,
                         cascade_changed_at=changed_at, cascade_changed_by=aff.cascade_changed_by)
        entry["statement"] = _statement(slug, aff.federation.slug if aff else None, per_union.get(slug, {}))
        unions.append(entry)
    return {"policy_version": snap.version, "crossings": crossings, "unions": unions}


def _statement(union: str, fed: str | None, perms: dict[str, set[str]]) -> str:
    """A plain sentence per union, derived from the permissions computed above (not from the cascade column)."""
    if not perms:
        return (f"no federation can deliver to {union}" + (f" (invitation from {fed} pending)" if fed else "")
                + f"; no federation can read anything of {union}")
    parts = []
    for federation, granted in sorted(perms.items()):
        delivers = any(p.endswith("notices/deliver") for p in granted)
        relays = any(p.endswith("notices/relay") for p in granted)
        reads = sorted({p.split(": ", 1)[1] for p in granted if p.split(": ", 1)[1].split("/")[0] in UNION_CONTENT
                        and not p.endswith(("/deliver", "/relay"))})
        reach = ("can deliver notices to all members of " + union if delivers else
                 "can deliver notices to the officers of " + union + " only, for relay" if relays else
                 "cannot deliver notices to " + union)
        read = "it can read nothing of this union" if not reads else "it can also: " + ", ".join(reads)
        parts.append(f"the federation {federation} {reach}; {read}")
    return "; ".join(parts)
