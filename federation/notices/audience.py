"""Who a notice is for: validated against what the author may target, and resolved to unions (and unit scopes).

Federation audience: {"all": true} or any of {"units": [block or council ids], "unions": [union slugs]}; a block
includes its councils, a council the unions attached to it. {"officers": true}, alone or with units and unions, is
the officers' channel: the same unions, reaching their officers only. Union audience: {"all": true} or
{"units": [its own branch or workplace ids]}. Anything outside what the author may target is a 422 naming the entry.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from federation.dbutil import MAX_ROW_ID
from federation.errors import APIError
from federation.extensions import db
from federation.firewall import Subject, firewall
from federation.firewall.templates import UNIT_SCOPED
from tenants.models import Affiliation, OrgUnit, RoleGrant, Tenant, User
from tenants.ordering import TENANT_ORDER


def _bad(field: str, message: str) -> APIError:
    return APIError(422, f"{field}: {message}", fields={field: [message]})


def writes_for_whole_tenant(subject: Subject) -> bool:
    """Whether a role of the subject that is not scoped to a unit may write notices in its tenant: derived from
    the policy's templates, so a new tenant-wide editor role needs no change here."""
    snap = firewall.snapshot()
    return any(role not in UNIT_SCOPED and snap.role_allows(role, subject.tenant, subject.tenant, "notices", "write")
               for role in snap.roles_of(subject))


def unit_scope(subject: Subject) -> list[OrgUnit] | None:
    """The units a unit-scoped officer is confined to; None when the author's role covers the whole tenant."""
    if writes_for_whole_tenant(subject):
        return None
    ids = [g.unit_id for g in firewall.grants_of(subject) if g.role in UNIT_SCOPED and g.unit_id]
    return list(db.session.execute(select(OrgUnit).where(OrgUnit.id.in_(ids))).scalars()) if ids else []


@dataclass
class AttachedUnion:
    """A union actively affiliated with a federation, with the council it is attached to and that council's block."""

    union: Tenant
    council: str
    block: str
    council_path: str

    @property
    def union_id(self) -> int:
        return self.union.id

    @property
    def slug(self) -> str:
        return self.union.slug

    @property
    def name(self) -> str:
        return self.union.name


def attached_unions(federation: Tenant, subject: Subject | None = None,
                    among: set[int] | None = None) -> list[AttachedUnion]:
    """The unions actively affiliated with the federation now (only those in `among`, when given), in their reading
    order; for a unit officer only those attached inside their unit. One read for reports and the KPI board."""
    if among is not None and not among:
        return []
    council = OrgUnit.__table__.alias("council")
    block = OrgUnit.__table__.alias("block")
    stmt = (select(Tenant, council.c.name, func.coalesce(block.c.name, ""), council.c.path)
            .select_from(Affiliation).join(Tenant, Tenant.id == Affiliation.union_id)
            .join(council, council.c.id == Affiliation.council_id)
            .outerjoin(block, block.c.id == council.c.parent_id)
            .where(Affiliation.federation_id == federation.id, Affiliation.status == "active"))
    if among is not None:
        stmt = stmt.where(Tenant.id.in_(among))
    out = [AttachedUnion(*r) for r in db.session.execute(stmt.order_by(*TENANT_ORDER)).all()]
    scope = unit_scope(subject) if subject is not None else None
    if scope is not None:
        out = [a for a in out if any(a.council_path.startswith(s.path) for s in scope)]
    return out


def validate(raw: Any, tenant: Tenant, subject: Subject) -> dict[str, Any]:
    """Return the canonical audience or raise 422 naming the entry at fault."""
    if not isinstance(raw, dict) or not raw:
        raise _bad("audience", 'an object: {"all": true} or {"units": [...]}' +
                   (' and/or {"unions": [...]}' if tenant.kind == "federation" else ""))
    allowed_keys = {"all", "units", "unions", "officers"} if tenant.kind == "federation" else {"all", "units"}
    for key in raw:
        if key not in allowed_keys:
            raise _bad(f"audience.{key}", f"unknown; use {', '.join(sorted(allowed_keys))}")
    scope = unit_scope(subject)
    if "officers" in raw:
        # The officers' channel: every affiliated union's officers, or those of the units and unions named.
        if raw["officers"] is not True:
            raise _bad("audience.officers", "must be true")
        if "all" in raw:
            raise _bad("audience.all", "the officers' channel reaches officers only: give units or unions, or neither")
        rest = {k: v for k, v in raw.items() if k != "officers"}
        if not rest:
            if scope is not None:
                raise _bad("audience.officers", "a unit officer names the units or unions inside their own unit")
            return {"officers": True}
        return {"officers": True, **validate(rest, tenant, subject)}
    if "all" in raw:
        if raw["all"] is not True or len(raw) > 1:
            raise _bad("audience.all", "must be true and stand alone")
        if scope is not None:
            raise _bad("audience.all", "a unit officer targets only units and unions inside their own unit")
        return {"all": True}
    out: dict[str, Any] = {}
    units = raw.get("units", [])
    if not isinstance(units, list) or any(not isinstance(u, int) or isinstance(u, bool) for u in units):
        raise _bad("audience.units", "a list of unit ids")
    kinds = ("block", "council") if tenant.kind == "federation" else ("branch", "workplace")
    # A number no id can be is simply no such unit (a 422 below), never a query the database cannot run.
    found = {u.id: u for u in db.session.execute(select(OrgUnit).where(
        OrgUnit.tenant_id == tenant.id, OrgUnit.id.in_([u for u in units if 0 < u <= MAX_ROW_ID]))).scalars()}
    for i, unit_id in enumerate(units):
        unit = found.get(unit_id)
        if unit is None or unit.kind not in kinds:
            raise _bad(f"audience.units[{i}]", f"no {' or '.join(kinds)} {unit_id} in {tenant.slug}")
        if scope is not None and not any(unit.path.startswith(s.path) for s in scope):
            raise _bad(f"audience.units[{i}]", f"unit {unit_id} is outside your unit")
    if units:
        out["units"] = sorted(set(units))
    if "unions" in raw:
        unions = raw["unions"]
        if not isinstance(unions, list) or any(not isinstance(s, str) for s in unions):
            raise _bad("audience.unions", "a list of union slugs")
        affiliated = {slug: path for slug, path in _affiliated(tenant)}
        for i, slug in enumerate(unions):
            if slug not in affiliated:
                raise _bad(f"audience.unions[{i}]", f"{slug} is not a union affiliated with {tenant.slug}")
            if scope is not None and not any(affiliated[slug].startswith(s.path) for s in scope):
                raise _bad(f"audience.unions[{i}]", f"{slug} is attached to a council outside your unit")
        if unions:
            out["unions"] = sorted(set(unions))
    if not out:
        raise _bad("audience", "names nobody: give all, units or unions")
    return out


def _affiliated(federation: Tenant) -> list[tuple[str, str]]:
    """(union slug, council path) of every union with an active affiliation to the federation."""
    rows = db.session.execute(
        select(Tenant.slug, OrgUnit.path).select_from(Affiliation)
        .join(Tenant, Tenant.id == Affiliation.union_id).join(OrgUnit, OrgUnit.id == Affiliation.council_id)
        .where(Affiliation.federation_id == federation.id, Affiliation.status == "active"))
    return [(slug, path) for slug, path in rows]


@dataclass(frozen=True)
class Target:
    union_id: int
    union: str
    cascade: str | None  # for federation notices: the union's cascade state as read now
    unit_paths: tuple[str, ...]  # "" = the whole union


def resolve(audience_json: str, tenant: Tenant) -> list[Target]:
    audience = json.loads(audience_json)
    if tenant.kind == "union":
        if audience.get("all"):
            return [Target(tenant.id, tenant.slug, None, ("",))]
        paths = db.session.execute(select(OrgUnit.path).where(
            OrgUnit.tenant_id == tenant.id, OrgUnit.id.in_(audience.get("units", [])))).scalars().all()
        return [Target(tenant.id, tenant.slug, None, _minimal(paths))] if paths else []
    rows = db.session.execute(
        select(Tenant.id, Tenant.slug, Affiliation.cascade, OrgUnit.path).select_from(Affiliation)
        .join(Tenant, Tenant.id == Affiliation.union_id).join(OrgUnit, OrgUnit.id == Affiliation.council_id)
        .where(Affiliation.federation_id == tenant.id, Affiliation.status == "active")).all()
    unit_paths = db.session.execute(select(OrgUnit.path).where(
        OrgUnit.tenant_id == tenant.id, OrgUnit.id.in_(audience.get("units", [])))).scalars().all()
    named = set(audience.get("unions", []))
    everyone = audience.get("all") or (audience.get("officers") and not named and not unit_paths)
    targets = []
    for union_id, slug, cascade, council_path in rows:
        if everyone or slug in named or any(council_path.startswith(p) for p in unit_paths):
            targets.append(Target(union_id, slug, cascade, ("",)))
    return sorted(targets, key=lambda t: t.union)


def _minimal(paths: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Drop a unit whose ancestor is also named: its members are covered already (no member matched twice)."""
    ordered = sorted(set(paths), key=len)
    kept: list[str] = []
    for p in ordered:
        if not any(p.startswith(k) for k in kept):
            kept.append(p)
    return tuple(sorted(kept))


def members_in_scope(union_id: int, unit_paths: tuple[str, ...]):  # type: ignore[no-untyped-def]
    """A select of the active users of a union within the unit scopes ("" = everyone)."""
    stmt = select(User.id).where(User.tenant_id == union_id, User.status == "active")
    if "" in unit_paths:
        return stmt
    conds = [OrgUnit.path.startswith(p) for p in unit_paths]
    from sqlalchemy import or_

    return stmt.join(OrgUnit, OrgUnit.id == User.unit_id).where(or_(*conds))


def count_members(union_id: int, unit_paths: tuple[str, ...]) -> int:
    sub = members_in_scope(union_id, unit_paths).subquery()
    return db.session.execute(select(func.count()).select_from(sub)).scalar_one()


def count_members_by_union(union_ids: list[int]) -> dict[int, int]:
    """The active users of each of the unions, in one grouped query (a union with none is absent)."""
    if not union_ids:
        return {}
    return dict(db.session.execute(
        select(User.tenant_id, func.count()).where(User.tenant_id.in_(union_ids), User.status == "active")
        .group_by(User.tenant_id)).all())


def count_union_admins_by_union(union_ids: list[int]) -> dict[int, int]:
    """The active union admins of each of the unions, in one grouped query (a union with none is absent)."""
    if not union_ids:
        return {}
    return dict(db.session.execute(
        select(RoleGrant.tenant_id, func.count(func.distinct(RoleGrant.user_id)))
        .join(User, User.id == RoleGrant.user_id)
        .where(RoleGrant.tenant_id.in_(union_ids), RoleGrant.role == "union_admin", User.status == "active")
        .group_by(RoleGrant.tenant_id)).all())


def count_union_admins(union_id: int) -> int:
    return db.session.execute(
        select(func.count(func.distinct(RoleGrant.user_id))).join(User, User.id == RoleGrant.user_id)
        .where(RoleGrant.tenant_id == union_id, RoleGrant.role == "union_admin", User.status == "active")
    ).scalar_one()


def preview(audience: dict[str, Any], tenant: Tenant) -> dict[str, Any]:
    """How many a draft would reach if published now: counts only (F4)."""
    targets = resolve(json.dumps(audience), tenant)
    members = officers = relay_unions = direct_unions = 0
    for t in targets:
        if audience.get("officers"):
            officers += count_union_admins(t.union_id)
            relay_unions += 1
        elif tenant.kind == "union" or t.cascade == "opted_in":
            members += count_members(t.union_id, t.unit_paths)
            direct_unions += 1
        else:
            officers += count_union_admins(t.union_id)
            relay_unions += 1
    return {"members": members, "unions": direct_unions, "relay_unions": relay_unions, "officers": officers}
