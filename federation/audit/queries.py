"""What auditors ask: check (with the reason), who-can, exposure. They read policy, roles, links and counts;
never a notice, document, survey answer, application or member list (F1)."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from federation.errors import invalid
from federation.extensions import db
from federation.firewall import Subject, firewall
from federation.firewall.explain import ROLE_KIND
from federation.firewall.service import Snapshot
from federation.firewall.templates import ACTIONS, DERIVED_ROLE, OBJECTS, Templates
from federation.privacy import SMALL_GROUP
from tenants.login_ids import login_key
from tenants.models import Affiliation, Tenant, User
from tenants.ordering import tenant_key

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
            select(User).where(User.tenant_id == tenant.id, User.login_key == login_key(login_id))).scalar_one_or_none()
        if tenant.kind == "union" and (user is None or not firewall.snapshot().grants.get(user.id)):
            # A union's member list is its own (F1): whether this login exists, and its status, are not the
            # auditor's to learn. A user holding no granted role is answered as any active member of the union,
            # exactly as for a login that does not exist. Officers (granted roles) are public through who-can.
            return Subject(-tenant.id, tenant.slug, tenant.kind, login_id, True), None
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
    out = firewall.explain(subject, role_subject, tenant, obj, action)
    if subject is not None and subject.user_id < 0:
        out["note"] = (f"answered as for any active member of {subject.tenant} holding no granted role: whether "
                       f"this login exists, and its status, are {subject.tenant}'s own")
    return out


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


@dataclass(frozen=True)
class UnionState:
    federation: str | None
    status: str | None
    cascade: str | None
    changed_at: str | None
    changed_by: str | None


def exposure(at: datetime | None = None) -> dict[str, Any]:
    """Every permission that crosses a tenant boundary, and every union's state. With `at`, as it was then: the
    tenant links are replayed from the audit chain (federation/audit/history.py), not read from today's tables."""
    snap = firewall.snapshot()
    templates = snap.templates
    tenants = {t.slug: t for t in db.session.execute(select(Tenant)).scalars()}
    source: dict[str, Any] = {"source": "policy files now in force"}
    if at is None:
        links = snap.links
        affs = db.session.execute(select(Affiliation).where(Affiliation.status != "ended")).scalars()
        states = {a.union.slug: UnionState(a.federation.slug, a.status, a.cascade,
                                           a.cascade_changed_at.isoformat() if a.cascade_changed_at else None,
                                           a.cascade_changed_by) for a in affs}
        unions = [slug for slug, t in tenants.items() if t.kind == "union"]
    else:
        from federation.audit.history import world_at

        world = world_at(at)
        links = world.links()
        states = {}
        for slug in tenants:
            aff = world.live_affiliation(slug)
            if aff is not None:
                states[slug] = UnionState(aff.federation, aff.status, aff.cascade, aff.cascade_changed_at,
                                          aff.cascade_changed_by)
        unions = [slug for slug, t in tenants.items() if t.kind == "union" and t.created_at <= at]
        if world.policy_files is not None and "roles.csv" in world.policy_files:
            # The templates in force then, as recorded in the chain; not today's file.
            templates = Templates.parse(world.policy_files["roles.csv"], "roles.csv (recorded)")
            source = {"source": "audit log", "seq": world.policy_seq, "recorded_at": world.policy_at}
        else:
            source = {"source": "policy files now in force (none recorded by then)"}
    def in_order(slug: str) -> tuple[str, str]:  # unions in 50-on order of their reading (tenants/ordering.py)
        t = tenants.get(slug)
        return tenant_key(t.kana_key if t is not None else slug, slug)

    unions.sort(key=in_order)
    view = Snapshot(version=snap.version, templates=templates, grants={}, links=links)
    fed_roles = sorted(r for r in templates.roles if ROLE_KIND.get(r) == "federation")
    crossings: list[dict[str, Any]] = []
    # Platform roles reach every tenant through the `any` link: one row, the same for every tenant.
    platform_perms = sorted({f"{role}: {rule.obj}/{rule.act}" for role in templates.roles
                             if ROLE_KIND.get(role) == "platform"
                             for rule in templates.rules if rule.role == role and rule.link == "any"})
    crossings.append({"from": "platform", "to": "every tenant", "permissions": platform_perms})
    per_union: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for union, union_links in links.items():
        for fed in {link.split(":", 1)[0] for link in union_links}:
            for role in fed_roles:
                for obj in OBJECTS:
                    for act in ACTIONS:
                        if view.role_allows(role, fed, union, obj, act):
                            per_union[union][fed].add(f"{role}: {obj}/{act}")
    for union in sorted(per_union, key=in_order):
        for fed, perms in sorted(per_union[union].items()):
            crossings.append({"from": fed, "to": union, "permissions": sorted(perms)})
    out_unions = []
    for slug in unions:
        st = states.get(slug)
        entry: dict[str, Any] = {"union": slug, "federation": st.federation if st else None,
                                 "status": st.status if st else None, "cascade": st.cascade if st else None,
                                 "cascade_changed_at": st.changed_at if st else None,
                                 "cascade_changed_by": st.changed_by if st else None}
        entry["statement"] = _statement(slug, st.federation if st else None, per_union.get(slug, {}))
        out_unions.append(entry)
    out: dict[str, Any] = {"policy_version": snap.version, "templates": source, "crossings": crossings,
                           "unions": out_unions}
    if at is not None:
        out["at"] = at.isoformat()
    return out


def exposure_diff(before: datetime, after: datetime) -> dict[str, Any]:
    """What crossed a tenant boundary at `after` that did not at `before`, and the other way round."""
    a, b = exposure(before), exposure(after)
    pairs_a = {(c["from"], c["to"]): set(c["permissions"]) for c in a["crossings"]}
    pairs_b = {(c["from"], c["to"]): set(c["permissions"]) for c in b["crossings"]}
    changes = []
    for pair in sorted(set(pairs_a) | set(pairs_b)):
        gained = sorted(pairs_b.get(pair, set()) - pairs_a.get(pair, set()))
        lost = sorted(pairs_a.get(pair, set()) - pairs_b.get(pair, set()))
        if gained or lost:
            changes.append({"from": pair[0], "to": pair[1], "gained": gained, "lost": lost})
    unions_a = {u["union"]: u for u in a["unions"]}
    union_changes = []
    for u in b["unions"]:
        old = unions_a.get(u["union"])
        fields = ("federation", "status", "cascade")
        if old is None or any(old[f] != u[f] for f in fields):
            union_changes.append({"union": u["union"], "before": {f: old[f] for f in fields} if old else None,
                                  "after": {f: u[f] for f in fields}, "statement": u["statement"]})
    return {"from": before.isoformat(), "to": after.isoformat(), "crossings": changes, "unions": union_changes}


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
        if any(p.endswith(": kpi/read") for p in granted):
            # The KPI board (docs/kpi.md): counts, never names, and none about fewer than SMALL_GROUP people.
            counts = f"its KPI counts (no names; figures about fewer than {SMALL_GROUP} people withheld)"
            read = (f"it can read no content of this union, only {counts}" if not reads
                    else f"{read}; and {counts}")
        parts.append(f"the federation {federation} {reach}; {read}")
    return "; ".join(parts)
