"""What can be done to tenants, units, users, roles and affiliations. Views and the CLI call these after the
firewall has spoken; each function validates, changes, writes the audit entry and bumps the policy version in one
transaction, and commits."""
from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select

from federation.audit.chain import record
from federation.auth.passwords import hash_password, password_problem
from federation.dbutil import get_row
from federation.errors import APIError, conflict, invalid
from federation.extensions import db, utcnow
from federation.firewall.models import bump_policy_version
from federation.firewall.templates import DERIVED_ROLE, GRANTABLE, UNIT_SCOPED
from tenants.kana import is_kana, kana_sort_key, normalize_kana
from tenants.login_ids import LoginIdError, login_key, login_key_or_none, normalize_login_id
from tenants.models import UNIT_KINDS, UNIT_PARENTS, Affiliation, OrgUnit, RoleGrant, Tenant, User
from tenants.ordering import tree_order
from tenants.regions import region_rank

# \Z, not $: `$` also matches before a trailing newline, which would let "union-x\n" in as a slug.
SLUG = re.compile(r"^[a-z0-9-]{3,40}\Z")
PREFECTURE = re.compile(r"^(0[1-9]|[1-3][0-9]|4[0-7])\Z")


# --- tenants ------------------------------------------------------------------------------------------------------

def create_tenant(slug: str, name: str, kind: str, *, actor: str, name_kana: str | None = None) -> Tenant:
    if not SLUG.match(slug):
        raise invalid("slug", "3-40 characters of a-z, 0-9 and -")
    if kind not in ("federation", "union"):
        raise invalid("kind", "must be federation or union")
    if not name.strip():
        raise invalid("name", "must not be empty")
    if name_kana is not None and not name_kana.strip():
        name_kana = None
    if name_kana is not None and not is_kana(name_kana):
        raise invalid("name_kana", "the reading in hiragana or katakana")
    if db.session.execute(select(Tenant.id).where(Tenant.slug == slug)).first():
        raise conflict("slug", f"a tenant {slug} already exists")
    tenant = Tenant(slug=slug, name=name.strip(), kind=kind,
                    name_kana=normalize_kana(name_kana) if name_kana is not None else None)
    db.session.add(tenant)
    db.session.flush()
    record("tenant.create", actor=actor, tenant=slug, data={"slug": slug, "kind": kind})
    db.session.commit()
    return tenant


def ensure_platform() -> Tenant:
    tenant = db.session.execute(select(Tenant).where(Tenant.slug == "platform")).scalar_one_or_none()
    if tenant is None:
        tenant = Tenant(slug="platform", name="musubi platform", kind="platform")
        db.session.add(tenant)
        db.session.flush()
        record("tenant.create", actor="system:init-db", tenant="platform", data={"slug": "platform",
                                                                               "kind": "platform"})
        db.session.commit()
    return tenant


# --- org units ----------------------------------------------------------------------------------------------------

def create_unit(tenant: Tenant, *, name: str, kind: str, parent_id: int | None, prefecture: str | None,
                actor: str, position: int | None = None) -> OrgUnit:
    if not name.strip():
        raise invalid("name", "must not be empty")
    allowed = UNIT_KINDS.get(tenant.kind, ())
    if kind not in allowed:
        raise invalid("kind", f"a {tenant.kind} has units of kind {' or '.join(allowed) or 'none'}")
    parent = None
    if parent_id is not None:
        parent = get_row(OrgUnit, parent_id)
        if parent is None or parent.tenant_id != tenant.id:
            raise invalid("parent_id", f"no unit {parent_id} in {tenant.slug}")
    if (parent.kind if parent else None) not in UNIT_PARENTS[kind]:
        need = UNIT_PARENTS[kind][0]
        raise invalid("parent_id", f"a {kind} must sit under a {need}" if need else f"a {kind} has no parent")
    if kind == "council":
        if not prefecture or not PREFECTURE.match(prefecture):
            raise invalid("prefecture", "a council needs a prefecture code 01-47")
    elif prefecture is not None:
        raise invalid("prefecture", "only a council carries a prefecture code")
    if position is None:
        position = default_position(kind, name, prefecture)
    unit = OrgUnit(tenant_id=tenant.id, parent_id=parent_id, name=name.strip(), kind=kind, prefecture=prefecture,
                   position=position)
    db.session.add(unit)
    db.session.flush()
    unit.path = f"{parent.path if parent else '/'}{unit.id}/"
    record("unit.create", actor=actor, tenant=tenant.slug, data={"unit_id": unit.id, "kind": kind,
                                                                 "parent_id": parent_id})
    db.session.commit()
    return unit


def default_position(kind: str, name: str, prefecture: str | None) -> int | None:
    """Where a new unit sits among its siblings unless its creator says: a council at its prefecture code (01 北海道
    … 47 沖縄), a block at its region's rank from north to south (tenants/regions.py), others in creation order."""
    if kind == "council" and prefecture:
        return int(prefecture)
    if kind == "block":
        return region_rank(name)
    return None


def units_of(tenant: Tenant) -> list[OrgUnit]:
    """The tenant's units, each followed by its children, siblings in their order (tenants/ordering.py)."""
    return tree_order(db.session.execute(select(OrgUnit).where(OrgUnit.tenant_id == tenant.id)).scalars())


def unit_in(tenant: Tenant, unit_id: int | None, field: str = "unit_id") -> OrgUnit | None:
    if unit_id is None:
        return None
    unit = db.session.get(OrgUnit, unit_id)
    if unit is None or unit.tenant_id != tenant.id:
        raise invalid(field, f"no unit {unit_id} in {tenant.slug}")
    return unit


# --- users --------------------------------------------------------------------------------------------------------

def login_id_of(raw: str, field: str = "login_id") -> str:
    """The normalised login id (tenants/login_ids.py), or a 422 naming the field."""
    try:
        return normalize_login_id(raw)
    except LoginIdError as exc:
        raise invalid(field, str(exc)) from None


def check_person(login_id: str, display_name: str, name_kana: str) -> None:
    login_id_of(login_id)
    if not display_name.strip():
        raise invalid("display_name", "must not be empty")
    if not is_kana(name_kana):
        raise invalid("name_kana", "the reading in hiragana or katakana")


def create_user(tenant: Tenant, *, login_id: str, display_name: str, name_kana: str, password: str | None,
                unit_id: int | None = None, actor: str, status: str = "active", password_hash: str | None = None,
                commit: bool = True) -> User:
    check_person(login_id, display_name, name_kana)
    login_id = login_id_of(login_id)
    if tenant.kind == "union" or unit_id is not None:
        unit_in(tenant, unit_id)
    if password is not None:
        problem = password_problem(password, login_id=login_id)
        if problem:
            raise invalid("password", problem)
        password_hash = hash_password(password)
    if status == "active" and password_hash is None:
        raise invalid("password", "an active user needs a password")
    taken = select(User.id).where(User.tenant_id == tenant.id, User.login_key == login_key(login_id))
    if db.session.execute(taken).first():
        raise conflict("login_id", f"{login_id} already exists in {tenant.slug}")
    kana = normalize_kana(name_kana)
    user = User(tenant_id=tenant.id, login_id=login_id, display_name=display_name.strip(), name_kana=kana,
                kana_key=kana_sort_key(kana), password_hash=password_hash, status=status, unit_id=unit_id)
    user.tenant = tenant
    db.session.add(user)
    db.session.flush()
    record("user.create", actor=actor, tenant=tenant.slug, data={"user_id": user.id, "status": status})
    if commit:
        db.session.commit()
    return user


def user_in(tenant: Tenant, login_id: str, field: str = "login_id") -> User:
    key = login_key_or_none(login_id)
    user = None if key is None else db.session.execute(
        select(User).where(User.tenant_id == tenant.id, User.login_key == key)).scalar_one_or_none()
    if user is None:
        raise invalid(field, f"no user {login_id} in {tenant.slug}")
    return user


def set_user_status(tenant: Tenant, user: User, status: str, *, actor: str) -> User:
    from federation.auth.service import end_all_sessions

    if status not in ("active", "suspended"):
        raise invalid("status", "must be active or suspended")
    if user.status == status:
        # Nothing to change here, but what the caller changed before (a new unit, a corrected name) still counts.
        db.session.commit()
        return user
    if status == "active" and user.password_hash is None:
        raise invalid("status", "the user has not set a password yet")
    before = user.status
    user.status, user.status_changed_at = status, utcnow()
    if status == "suspended":
        end_all_sessions(user.id)
    record("user.status", actor=actor, tenant=tenant.slug, data={"user_id": user.id, "login_id": user.login_id,
                                                                 "from": before, "to": status})
    db.session.commit()
    return user


def update_member(tenant: Tenant, user: User, changes: dict[str, object], *, actor_user_id: int | None,
                  actor: str) -> User:
    """Move a member to a unit, correct their name or reading, suspend or reactivate them: the rules of a new
    member for each field, every change committed together (or none, when one is refused)."""
    if "unit_id" in changes:
        unit_id = changes["unit_id"]
        unit_in(tenant, unit_id)  # type: ignore[arg-type]
        if user.unit_id != unit_id:
            from federation.notices.inbox_cache import touch_user

            touch_user(user.id)  # their inbox covers other units now
        user.unit_id = unit_id  # type: ignore[assignment]
    if "display_name" in changes:
        name = str(changes["display_name"])
        # The same rule as for a new member: a name of spaces only would be saved as an empty one.
        if not name.strip():
            raise invalid("display_name", "must not be empty")
        user.display_name = name.strip()
    if "name_kana" in changes:
        kana = str(changes["name_kana"])
        if not is_kana(kana):
            raise invalid("name_kana", "the reading in hiragana or katakana")
        user.name_kana = normalize_kana(kana)
        user.kana_key = kana_sort_key(user.name_kana)
    if "status" in changes:
        if user.id == actor_user_id and changes["status"] == "suspended":
            raise invalid("status", "you cannot suspend yourself")
        return set_user_status(tenant, user, str(changes["status"]), actor=actor)
    db.session.commit()
    return user


def members_page(tenant: Tenant, *, limit: int, after: tuple[str, int] | None, q: str | None) -> list[User]:
    """People in 50-on order (by reading), then id; keyset pagination on (kana_key, id)."""
    stmt = select(User).where(User.tenant_id == tenant.id)
    if q:
        # autoescape: a % or _ typed into the search box is a character to find, not a wildcard.
        stmt = stmt.where(User.display_name.contains(q, autoescape=True) | User.name_kana.contains(q, autoescape=True)
                          | User.login_id.contains(q, autoescape=True)
                          | User.kana_key.contains(kana_sort_key(q), autoescape=True))
    if after:
        stmt = stmt.where((User.kana_key > after[0]) | ((User.kana_key == after[0]) & (User.id > after[1])))
    return list(db.session.execute(stmt.order_by(User.kana_key, User.id).limit(limit)).scalars())


# --- roles --------------------------------------------------------------------------------------------------------

def _check_role(tenant: Tenant, role: str, unit_id: int | None) -> int:
    grantable = GRANTABLE.get(tenant.kind, ())
    if role == DERIVED_ROLE.get(tenant.kind):
        raise invalid("role", f"every active user of a {tenant.kind} is a {role}; it is not granted")
    if role not in grantable:
        raise invalid("role", f"a {tenant.kind} grants {', '.join(grantable)}")
    if role in UNIT_SCOPED:
        if unit_id is None:
            raise invalid("unit_id", f"{role} needs the unit it is scoped to")
        unit_in(tenant, unit_id)
        return unit_id
    if unit_id is not None:
        raise invalid("unit_id", f"{role} is not scoped to a unit")
    return 0


def grant_role(tenant: Tenant, user: User, role: str, unit_id: int | None, *, actor: str) -> RoleGrant:
    scope = _check_role(tenant, role, unit_id)
    existing = db.session.execute(select(RoleGrant).where(
        RoleGrant.user_id == user.id, RoleGrant.role == role, RoleGrant.unit_id == scope)).scalar_one_or_none()
    if existing:
        return existing
    grant = RoleGrant(tenant_id=tenant.id, user_id=user.id, role=role, unit_id=scope, granted_by=actor)
    db.session.add(grant)
    db.session.flush()
    record("role.grant", actor=actor, tenant=tenant.slug,
           data={"grant_id": grant.id, "subject": f"user:{tenant.slug}/{user.login_id}", "role": role,
                 "unit_id": scope or None})
    bump_policy_version()
    db.session.commit()
    return grant


def revoke_role(tenant: Tenant, user: User, role: str, unit_id: int | None, *, actor: str) -> bool:
    scope = _check_role(tenant, role, unit_id)
    grant = db.session.execute(select(RoleGrant).where(
        RoleGrant.user_id == user.id, RoleGrant.role == role, RoleGrant.unit_id == scope)).scalar_one_or_none()
    if grant is None:
        return False
    if role in ("union_admin", "fed_admin", "platform_admin") and _last_holder(tenant, role, grant):
        raise conflict("role", f"{user.login_id} is the last {role} of {tenant.slug}; grant it to someone first")
    db.session.delete(grant)
    record("role.revoke", actor=actor, tenant=tenant.slug,
           data={"grant_id": grant.id, "subject": f"user:{tenant.slug}/{user.login_id}", "role": role,
                 "unit_id": scope or None})
    bump_policy_version()
    db.session.commit()
    return True


def _last_holder(tenant: Tenant, role: str, grant: RoleGrant) -> bool:
    others = db.session.execute(select(func.count()).select_from(RoleGrant).join(User, User.id == RoleGrant.user_id)
                                .where(RoleGrant.tenant_id == tenant.id, RoleGrant.role == role,
                                       RoleGrant.id != grant.id, User.status == "active")).scalar_one()
    return others == 0


def grants_of(tenant: Tenant) -> list[tuple[RoleGrant, User]]:
    return list(db.session.execute(  # type: ignore[arg-type]
        select(RoleGrant, User).join(User, User.id == RoleGrant.user_id).where(RoleGrant.tenant_id == tenant.id)
        .order_by(RoleGrant.role, User.kana_key)).all())


# --- affiliations -------------------------------------------------------------------------------------------------

def live_affiliation(union: Tenant) -> Affiliation | None:
    return db.session.execute(select(Affiliation).where(
        Affiliation.union_id == union.id, Affiliation.status != "ended")).scalar_one_or_none()


def invite(federation: Tenant, union_slug: str, council_id: int, *, actor: str) -> Affiliation:
    union = db.session.execute(select(Tenant).where(Tenant.slug == union_slug)).scalar_one_or_none()
    if union is None or union.kind != "union":
        raise invalid("union", f"no union {union_slug}")
    council = unit_in(federation, council_id, "council_id")
    assert council is not None
    if council.kind != "council":
        raise invalid("council_id", "an affiliation attaches the union to a council (県協)")
    live = live_affiliation(union)
    if live is not None:
        if live.federation_id == federation.id and live.status == "pending":
            raise conflict("union", f"{union_slug} already has a pending invitation")
        raise conflict("union", f"{union_slug} is already affiliated")
    aff = Affiliation(federation_id=federation.id, union_id=union.id, council_id=council.id, status="pending",
                      cascade="opted_out", invited_by=actor)
    db.session.add(aff)
    db.session.flush()
    record("affiliation.invite", actor=actor, tenant=federation.slug, other_tenant=union.slug,
           data={"affiliation_id": aff.id, "council_id": council.id})
    db.session.commit()
    return aff


def accept(union: Tenant, *, actor: str) -> Affiliation:
    aff = live_affiliation(union)
    if aff is None or aff.status != "pending":
        raise APIError(409, "there is no pending invitation to accept", fields={"affiliation": ["none pending"]})
    aff.status, aff.accepted_at = "active", utcnow()
    record("affiliation.accept", actor=actor, tenant=union.slug, other_tenant=aff.federation.slug,
           data={"affiliation_id": aff.id, "cascade": aff.cascade})
    bump_policy_version()
    db.session.commit()
    return aff


def set_cascade(union: Tenant, cascade: str, *, actor: str) -> Affiliation:
    """F3: only reachable through the union's own `cascade write` (union_admin); the federation has no path here."""
    aff = live_affiliation(union)
    if aff is None or aff.status != "active":
        raise APIError(409, "the union has no active affiliation", fields={"affiliation": ["not active"]})
    if aff.cascade != cascade:
        before = aff.cascade
        aff.cascade, aff.cascade_changed_at, aff.cascade_changed_by = cascade, utcnow(), actor
        record("cascade.set", actor=actor, tenant=union.slug, other_tenant=aff.federation.slug,
               data={"affiliation_id": aff.id, "from": before, "to": cascade})
        bump_policy_version()
        db.session.commit()
    return aff


def end_affiliation(aff: Affiliation, *, actor: str, side: str) -> Affiliation:
    if aff.status == "ended":
        return aff
    aff.status, aff.ended_at, aff.ended_by = "ended", utcnow(), actor
    record("affiliation.end", actor=actor, tenant=aff.union.slug, other_tenant=aff.federation.slug,
           data={"affiliation_id": aff.id, "ended_by_side": side})
    bump_policy_version()
    db.session.commit()
    return aff


def affiliation_dict(aff: Affiliation) -> dict[str, Any]:
    return {"id": aff.id, "federation": aff.federation.slug, "union": aff.union.slug, "council_id": aff.council_id,
            "status": aff.status, "cascade": aff.cascade, "invited_at": aff.invited_at,
            "accepted_at": aff.accepted_at, "ended_at": aff.ended_at, "cascade_changed_at": aff.cascade_changed_at}
