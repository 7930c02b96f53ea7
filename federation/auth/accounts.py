"""Accounts without e-mail: a member changes their own password; an officer who resets one, or activates a member
imported as invited, gets a one-time, expiring link (and its QR code) to hand over in person. Every change of a
password ends the person's other sessions, so a token someone else held dies with it."""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import select, update

from federation.audit.chain import record
from federation.auth.models import AccountToken, AuthSession
from federation.auth.passwords import hash_password, password_problem, verify_password
from federation.auth.service import token_hash, unlock_account
from federation.errors import APIError, invalid
from federation.extensions import db, utcnow
from tenants.models import Tenant, User


def _check_new(user: User, password: str, field: str) -> None:
    problem = password_problem(password, login_id=user.login_id, names=(user.display_name, user.tenant.slug))
    if problem:
        raise invalid(field, problem)


def _end_sessions(user_id: int, keep: int | None = None) -> None:
    stmt = update(AuthSession).where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
    if keep is not None:
        stmt = stmt.where(AuthSession.id != keep)
    db.session.execute(stmt.values(revoked_at=utcnow()))


def change_password(user: User, current: str, new: str, *, session_id: int) -> None:
    if not verify_password(user.password_hash, current):
        raise invalid("current_password", "is not your current password")
    if current == new:
        raise invalid("new_password", "is the same as the current one")
    _check_new(user, new, "new_password")
    user.password_hash = hash_password(new)
    _end_sessions(user.id, keep=session_id)  # this phone stays signed in; every other sign-in ends
    db.session.commit()


@dataclass
class Link:
    token: str
    purpose: str
    expires_at: datetime


def issue_link(tenant: Tenant, user: User, *, actor: str) -> Link:
    """A new one-time link for this member (any earlier unused one stops working): `activate` for a member who was
    imported or registered as invited and never set a password, `reset` for everyone else."""
    if user.status == "suspended":
        raise APIError(409, "login_id: the member is suspended; reactivate them first",
                       fields={"login_id": ["suspended"]})
    purpose = "activate" if user.status == "invited" else "reset"
    now = utcnow()
    db.session.execute(update(AccountToken).where(AccountToken.user_id == user.id, AccountToken.used_at.is_(None))
                       .values(used_at=now))
    token = secrets.token_urlsafe(32)
    expires = now + timedelta(hours=current_app.config["MUSUBI"].reset_hours)
    db.session.add(AccountToken(token_hash=token_hash(token), user_id=user.id, purpose=purpose, created_by=actor,
                                created_at=now, expires_at=expires))
    record(f"user.{purpose}_link", actor=actor, tenant=tenant.slug, data={"user_id": user.id})
    db.session.commit()
    return Link(token, purpose, expires)


def link_target(token: str) -> tuple[AccountToken, User]:
    """The member a link is for, while it is unused and unexpired; 404 otherwise (nothing to probe)."""
    row = db.session.execute(select(AccountToken).where(AccountToken.token_hash == token_hash(token))
                             ).scalar_one_or_none()
    if row is None or row.used_at is not None or row.expires_at <= utcnow():
        raise APIError(404, "this link is not valid (used, expired or replaced); ask an officer for a new one",
                       code="link_invalid")
    user = db.session.get(User, row.user_id)
    expected = "invited" if row.purpose == "activate" else "active"
    if user is None or user.status != expected:
        raise APIError(404, "this link is not valid (used, expired or replaced); ask an officer for a new one",
                       code="link_invalid")
    return row, user


def use_link(token: str, password: str) -> User:
    row, user = link_target(token)
    _check_new(user, password, "password")
    user.password_hash = hash_password(password)
    if row.purpose == "activate":
        user.status = "active"
    row.used_at = utcnow()
    _end_sessions(user.id)
    unlock_account(user.tenant.slug, user.login_id)  # a fresh password starts with a clean slate
    record(f"user.{row.purpose}", actor=f"link:{user.tenant.slug}/{row.id}", tenant=user.tenant.slug,
           data={"user_id": user.id})
    db.session.commit()
    return user


def unlock(tenant: Tenant, user: User, *, actor: str) -> int:
    forgotten = unlock_account(tenant.slug, user.login_id)
    record("user.unlock", actor=actor, tenant=tenant.slug, data={"user_id": user.id, "failures": forgotten})
    db.session.commit()
    return forgotten


def handover(link: Link) -> dict[str, Any]:
    """The one-time link as an officer hands it over, on the API and on the members page: the URL and a QR."""
    import segno

    from federation.space.invitations.service import public_base

    url = public_base().rstrip("/") + f"/account/{link.token}"
    return {"reset_url": url, "expires_at": link.expires_at, "purpose": link.purpose,
            "qr_svg": segno.make(url, error="m").svg_data_uri(scale=4)}
