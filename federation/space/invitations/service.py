"""Issuing invitations, turning a token back into one, and registering a new member with it."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import segno
from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import func, select, update

from federation.audit.chain import record
from federation.auth.models import LoginFailure
from federation.errors import APIError, invalid
from federation.extensions import db, utcnow
from federation.firewall import Denied
from federation.space.invitations.models import Invitation, Registration
from tenants import service as tenants
from tenants.models import OrgUnit, Tenant, User
from tenants.ordering import tree_order

SALT = "musubi.invitation"
MAX_DAYS = 366
# Registrations are the one public write in the service: a flyer's token in a bot's hands should not fill a union
# with members. Counted per address over the window, from the registrations table itself.
REGISTER_LIMIT = 20
REGISTER_WINDOW = timedelta(hours=1)


def _serializer() -> URLSafeSerializer:
    # Oldest first, the current key last: itsdangerous signs with the last and accepts any, so a rotated SECRET_KEY
    # keeps the flyers already printed working for as long as the old key stays listed (docs/operations.md).
    keys = [*current_app.config.get("SECRET_KEY_FALLBACKS", []), current_app.config["SECRET_KEY"]]
    return URLSafeSerializer(keys, salt=SALT)


def token_for(inv: Invitation) -> str:
    return _serializer().dumps({"i": inv.id, "t": inv.tenant_id})


def registration_path(inv: Invitation) -> str:
    return f"/register/{token_for(inv)}"


def public_base() -> str:
    """Where members reach the service: MUSUBI_PUBLIC_URL when set (production: a printed code must not carry
    whatever Host the officer's request came in with), else the address of the current request."""
    from flask import request

    return current_app.config["MUSUBI"].public_url or request.host_url


def public_url_missing() -> str | None:
    """When MUSUBI_PUBLIC_URL is unset, the address printed codes fall back to (this request's, often 127.0.0.1 on a
    trial): the pages warn the officer with it, as phones may not reach it. None when the public address is set."""
    from flask import request

    return None if current_app.config["MUSUBI"].public_url else request.host_url


def registration_url(inv: Invitation, base: str | None = None) -> str:
    return (base or public_base()).rstrip("/") + registration_path(inv)


def state(inv: Invitation, now: datetime | None = None) -> str:
    now = now or utcnow()
    if inv.revoked_at is not None:
        return "revoked"
    if inv.expires_at <= now:
        return "expired"
    if inv.max_uses is not None and inv.uses >= inv.max_uses:
        return "used_up"
    return "active"


# --- officers -----------------------------------------------------------------------------------------------------

def create(tenant: Tenant, actor: User, body: dict[str, Any]) -> Invitation:
    unit = tenants.unit_in(tenant, body.get("unit_id"))
    expires_at = body.get("expires_at")
    now = utcnow()
    if expires_at is None:
        expires_at = now + timedelta(days=body.get("valid_days") or 30)
    elif expires_at.tzinfo is None:
        raise invalid("expires_at", "give a time zone, e.g. 2026-12-01T00:00:00+09:00")
    if expires_at <= now:
        raise invalid("expires_at", "must be in the future")
    if expires_at > now + timedelta(days=MAX_DAYS):
        raise invalid("expires_at", f"at most {MAX_DAYS} days ahead")
    inv = Invitation(tenant_id=tenant.id, unit_id=unit.id if unit else None, label=body["label"].strip(),
                     expires_at=expires_at, max_uses=body.get("max_uses"), uses=0,
                     needs_approval=body["needs_approval"], created_by=actor.id)
    db.session.add(inv)
    db.session.flush()
    record("invitation.create", actor=actor.subject, tenant=tenant.slug,
           data={"invitation_id": inv.id, "unit_id": inv.unit_id, "max_uses": inv.max_uses,
                 "needs_approval": inv.needs_approval})
    db.session.commit()
    return inv


def revoke(inv: Invitation, actor: User) -> Invitation:
    if inv.revoked_at is None:
        inv.revoked_at = utcnow()
        record("invitation.revoke", actor=actor.subject, tenant=inv.tenant.slug, data={"invitation_id": inv.id})
        db.session.commit()
    return inv


def listing(tenant: Tenant) -> list[Invitation]:
    return list(db.session.execute(select(Invitation).where(Invitation.tenant_id == tenant.id)
                                   .order_by(Invitation.id.desc())).scalars())


def inv_dict(inv: Invitation) -> dict[str, Any]:
    return {"id": inv.id, "unit_id": inv.unit_id, "unit_name": inv.unit.name if inv.unit else None,
            "label": inv.label, "expires_at": inv.expires_at, "max_uses": inv.max_uses, "uses": inv.uses,
            "needs_approval": inv.needs_approval, "revoked_at": inv.revoked_at, "created_at": inv.created_at,
            "state": state(inv), "token": token_for(inv), "register_path": registration_path(inv)}


def qr(inv: Invitation, base: str | None = None) -> segno.QRCode:
    # Error level M survives a crease or a coffee stain on a printed flyer and still fits a long token.
    return segno.make(registration_url(inv, base), error="m", micro=False)


def report(tenant: Tenant) -> list[dict[str, Any]]:
    """Registrations per unit (active and still pending), every unit listed, the KPI "100% of new hires"."""
    counts = db.session.execute(
        select(Registration.unit_id, User.status, func.count())
        .join(User, User.id == Registration.user_id)
        .where(Registration.tenant_id == tenant.id)
        .group_by(Registration.unit_id, User.status)).all()
    by_unit: dict[int | None, dict[str, int]] = {}
    for unit_id, status, n in counts:
        by_unit.setdefault(unit_id, {}).setdefault(status, 0)
        by_unit[unit_id][status] += n
    units = tree_order(db.session.execute(select(OrgUnit).where(OrgUnit.tenant_id == tenant.id)).scalars())
    rows = [{"unit_id": None, "unit_name": None}] + [{"unit_id": u.id, "unit_name": u.name} for u in units]
    out = []
    for row in rows:
        c = by_unit.get(row["unit_id"], {})
        out.append({**row, "registered": sum(c.values()), "active": c.get("active", 0),
                    "pending": c.get("invited", 0)})
    return out


def pending(tenant: Tenant) -> list[dict[str, Any]]:
    rows = db.session.execute(
        select(Registration, User).join(User, User.id == Registration.user_id)
        .where(Registration.tenant_id == tenant.id, User.status == "invited")
        .order_by(User.kana_key, User.id)).all()
    return [{"registration_id": r.id, "login_id": u.login_id, "display_name": u.display_name,
             "name_kana": u.name_kana, "unit_id": r.unit_id, "registered_at": r.at} for r, u in rows]


def approve(tenant: Tenant, registration_id: int, actor: User) -> User:
    reg = db.session.get(Registration, registration_id)
    if reg is None or reg.tenant_id != tenant.id:
        raise Denied(404)
    user = db.session.get(User, reg.user_id)
    if user is None or user.status != "invited":
        raise APIError(409, "this registration is not waiting for approval",
                       fields={"registration_id": ["not pending"]})
    return tenants.set_user_status(tenant, user, "active", actor=actor.subject)


# --- the public side ----------------------------------------------------------------------------------------------

def from_token(token: str) -> Invitation:
    """The invitation a token names. A token we did not sign is 404 (nothing to learn from it); one we signed
    that can no longer be used is 410."""
    try:
        data = _serializer().loads(token)
    except BadSignature:
        raise Denied(404) from None
    if not isinstance(data, dict) or not isinstance(data.get("i"), int):
        raise Denied(404)
    inv = db.session.get(Invitation, data["i"])
    if inv is None or inv.tenant_id != data.get("t"):
        raise Denied(404)
    return inv


def usable(inv: Invitation) -> Invitation:
    now = state(inv)
    if now == "revoked":
        raise APIError(410, "this invitation has been withdrawn", code="revoked")
    if now == "expired":
        raise APIError(410, "this invitation has expired", code="expired")
    if now == "used_up":
        raise APIError(410, "this invitation has been used as often as it may be", code="used_up")
    if inv.tenant.kind != "union":
        raise Denied(404)
    return inv


def _throttle(address: str) -> None:
    limit = int(current_app.config.get("MUSUBI_REGISTER_LIMIT", REGISTER_LIMIT))
    since = utcnow() - REGISTER_WINDOW
    count = db.session.execute(select(func.count()).select_from(Registration).where(
        Registration.address == address, Registration.at >= since)).scalar_one()
    count += db.session.execute(select(func.count()).select_from(LoginFailure).where(
        LoginFailure.key == _failure_key(address), LoginFailure.at >= since)).scalar_one()
    if count >= limit:
        raise APIError(429, "too many registrations from this address; try again later",
                       headers={"Retry-After": str(int(REGISTER_WINDOW.total_seconds()))})


def _failure_key(address: str) -> str:
    return f"register:{address}"


def register(token: str, body: dict[str, Any], *, address: str) -> User:
    inv = usable(from_token(token))
    _throttle(address)
    tenant = inv.tenant
    status = "invited" if inv.needs_approval else "active"
    try:
        user = tenants.create_user(tenant, login_id=body["login_id"].strip(), display_name=body["display_name"],
                                   name_kana=body["name_kana"], password=body["password"], unit_id=inv.unit_id,
                                   actor=f"invitation:{tenant.slug}/{inv.id}", status=status, commit=False)
    except APIError as exc:
        if exc.status == 409:
            # "Already registered" tells whether an employee number is a member: trying many numbers from one
            # address counts against the same limit as registering.
            db.session.rollback()
            db.session.add(LoginFailure(key=_failure_key(address)))
            db.session.commit()
        raise
    # One conditional UPDATE claims a use: two people on the last use of a flyer cannot both get in.
    claimed = db.session.execute(
        update(Invitation).where(Invitation.id == inv.id, Invitation.revoked_at.is_(None),
                                 (Invitation.max_uses.is_(None)) | (Invitation.uses < Invitation.max_uses))
        .values(uses=Invitation.uses + 1).execution_options(synchronize_session=False)).rowcount
    if claimed != 1:
        db.session.rollback()
        raise APIError(410, "this invitation has been used as often as it may be", code="used_up")
    db.session.add(Registration(tenant_id=tenant.id, invitation_id=inv.id, user_id=user.id, unit_id=inv.unit_id,
                                address=address[:64]))
    db.session.commit()
    return user
