"""Signing in and recognising the caller on every request.

The session lookup, the user's current status and the policy version come back in one query, so a logout, a
suspension or a role change made by any process is honoured on the very next request (F7) at the cost of that one
query. The query returns plain columns (the Caller), not ORM objects: a view that needs the whole User row gets it
from g.user, loaded on first use (see RequestGlobals). With the caller cache on, a web process answers from
memory what that query would return, kept current by the changes' own announcements (auth/callers.py).
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from typing import Any

from flask import current_app, g, request
from flask.ctx import _AppCtxGlobals
from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from federation.auth import callers
from federation.auth.models import AuthSession, LoginFailure
from federation.auth.passwords import verify_password
from federation.errors import APIError
from federation.extensions import db, utcnow
from federation.firewall import Subject, firewall
from federation.firewall.models import PolicyState
from tenants.login_ids import login_key_or_none
from tenants.models import OrgUnit, Tenant, User

COOKIE = "musubi_session"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def subject_of(user: User) -> Subject:
    return Subject(user_id=user.id, tenant=user.tenant.slug, kind=user.tenant.kind, login_id=user.login_id,
                   active=user.status == "active")


@dataclass
class SignIn:
    token: str
    csrf_token: str
    session: AuthSession
    user: User


def account_key(tenant_slug: str, login_id: str) -> str:
    """Failures count per account: by the login key, so EMP001 and emp001 are one count."""
    return f"acct:{tenant_slug}/{login_key_or_none(login_id) or login_id}"


def _refuse(seconds: float) -> APIError:
    wait = max(1, int(seconds) + 1)
    return APIError(429, "too many failed sign-ins; try again later", headers={"Retry-After": str(wait)})


def _throttle(account: str, client: str) -> None:
    """Before a password is even checked.

    Per account: after MUSUBI_LOGIN_MAX_FAILURES failures in a row (ended by a success or an officer's unlock), the
    account waits MUSUBI_LOGIN_LOCK_SECONDS after the last failure, doubling with each further failure (at most a
    day); while it waits even the right password is refused. That bounds guesses at one account from any number of
    addresses.

    Per address: many members share one carrier-NAT address, so an address is never locked as a whole. Over
    MUSUBI_LOGIN_ADDRESS_MAX_FAILURES failures in the window, it may still sign in to an account nobody has failed
    at (the member behind the same NAT who types their password right), but not try again at an account that has
    failures: a password sprayed from one address gets one guess per account.
    """
    settings = current_app.config["MUSUBI"]
    count, last = db.session.execute(
        select(func.count(), func.max(LoginFailure.at)).where(LoginFailure.key == account)).one()
    now = utcnow()
    if count >= settings.login_max_failures and last is not None:
        wait = min(settings.login_lock_seconds * 2 ** min(count - settings.login_max_failures, 20), 86400)
        until = last + timedelta(seconds=wait)
        if now < until:
            raise _refuse((until - now).total_seconds())
    if count:
        since = now - timedelta(seconds=settings.login_window_seconds)
        from_here = db.session.execute(select(func.count()).select_from(LoginFailure).where(
            LoginFailure.key == client, LoginFailure.at >= since)).scalar_one()
        if from_here >= settings.login_address_max_failures:
            raise _refuse(settings.login_window_seconds)


def unlock_account(tenant_slug: str, login_id: str) -> int:
    """An officer lets a locked-out member try again at once; returns how many failures were forgotten."""
    return db.session.execute(delete(LoginFailure).where(LoginFailure.key == account_key(tenant_slug, login_id))
                              ).rowcount or 0


def sign_in(tenant_slug: str, login_id: str, password: str, *, client: str, user_agent: str | None) -> SignIn:
    acct_key = account_key(tenant_slug, login_id)
    key = login_key_or_none(login_id)
    client_key = f"addr:{client}"
    _throttle(acct_key, client_key)
    user = db.session.execute(
        select(User).join(Tenant, Tenant.id == User.tenant_id)
        .where(Tenant.slug == tenant_slug, User.login_key == key)
    ).scalar_one_or_none()
    ok = verify_password(user.password_hash if user else None, password)
    if not ok or user is None or user.status != "active":
        db.session.add_all([LoginFailure(key=acct_key), LoginFailure(key=client_key)])
        db.session.commit()
        # One answer for a wrong tenant, login id, password or a suspended account: nothing to enumerate.
        raise APIError(401, "the tenant, login id or password is wrong", code="bad_credentials")
    db.session.execute(delete(LoginFailure).where(LoginFailure.key == acct_key))
    settings = current_app.config["MUSUBI"]
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(24)
    session = AuthSession(token_hash=token_hash(token), csrf_token=csrf, user_id=user.id,
                          expires_at=utcnow() + timedelta(hours=settings.session_hours),
                          user_agent=(user_agent or "")[:300] or None)
    db.session.add(session)
    db.session.commit()
    return SignIn(token, csrf, session, user)


def end_session(session: AuthSession) -> None:
    session.revoked_at = utcnow()
    db.session.commit()


def end_all_sessions(user_id: int) -> None:
    """Called in the same transaction as a suspension: every token of the user dies with it."""
    db.session.execute(update(AuthSession).where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
                       .values(revoked_at=utcnow()))


def presented_token() -> tuple[str | None, bool]:
    """The caller's token and whether it came from the cookie (which needs CSRF protection) or the header."""
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None, False
    cookie = request.cookies.get(COOKIE)
    return (cookie or None), bool(cookie)


@dataclass(frozen=True)
class Caller:
    """Who is calling, as the sign-in query found them at the start of this request. It has what the hot paths
    need (the inbox, read marks and stamps, the CSRF check) without loading the User row: `id`, `tenant_id` and
    `unit_path` are the attributes the inbox functions read from a User too."""

    session_id: int
    csrf_token: str
    id: int
    tenant_id: int
    login_id: str
    unit_path: str | None
    tenant: str
    tenant_kind: str
    tenant_inbox_version: int
    inbox_version: int
    policy_version: int

    @property
    def subject(self) -> Subject:
        return Subject(user_id=self.id, tenant=self.tenant, kind=self.tenant_kind, login_id=self.login_id)


# The sign-in statement's columns: the Caller's own, then these.
_POLICY, _STATUS, _EXPIRES = 10, 11, 12


@cache
def _caller_statement():  # type: ignore[no-untyped-def]
    """Built once: composing the statement cost a third of a signed-in request's Python time (every request).
    Plain columns: loading and attaching three ORM objects cost more than the round trip itself."""
    version_q = select(PolicyState.version).where(PolicyState.id == 1).scalar_subquery().label("policy_version")
    return (select(AuthSession.id, AuthSession.csrf_token, User.id, User.tenant_id, User.login_id, OrgUnit.path,
                   Tenant.slug, Tenant.kind, Tenant.inbox_version, User.inbox_version, version_q, User.status,
                   AuthSession.expires_at)
            .join(User, User.id == AuthSession.user_id).join(Tenant, Tenant.id == User.tenant_id)
            .outerjoin(OrgUnit, OrgUnit.id == User.unit_id)
            .where(AuthSession.token_hash == bindparam("token_hash"), AuthSession.revoked_at.is_(None),
                   AuthSession.expires_at > bindparam("now", type_=AuthSession.expires_at.type)))


def load_caller() -> None:
    """Before each request: find the session, the user and the policy version in one round trip.

    The lookup runs on its own autocommit connection, so a request that then reads nothing else (an inbox page from
    the cache, /me/inbox/{id}/read) costs exactly that one round trip: no BEGIN, no ROLLBACK. With the caller cache
    on (auth/callers.py) a web process that holds its lease answers from memory instead, and no round trip is made:
    every change to what the row holds is dropped from every process' memory before that change's commit returns."""
    g.caller = g.subject = None
    g.via_cookie = False
    token, via_cookie = presented_token()
    if not token:
        return
    digest = token_hash(token)
    now = utcnow()
    remembered = callers.bus()
    holding = remembered is not None and remembered.usable()
    found = remembered.cache.get(digest) if holding else None
    if found is not None and found[1] <= now:
        found = None  # expired since it was remembered: ask the database, which will not find it
    if found is None:
        # Read before the query: an announcement applied meanwhile moves it, and the answer is then not kept.
        generation = remembered.cache.generation if holding else 0
        with db.engine.connect() as conn:
            row = conn.execution_options(isolation_level="AUTOCOMMIT").execute(
                _caller_statement(), {"token_hash": digest, "now": now}).first()
        if row is None or row[_STATUS] != "active":
            return
        found = (Caller(*row[:_POLICY], policy_version=row[_POLICY] or 0), row[_EXPIRES])
        if holding:
            remembered.cache.put(digest, found, user_id=found[0].id, tenant_id=found[0].tenant_id,
                                 generation=generation)
    caller = found[0]
    g.caller, g.via_cookie, g.subject = caller, via_cookie, caller.subject
    firewall.pin(caller.policy_version)


def _attached(model: type, row_id: int) -> Any:
    """The row read like the sign-in query, on an autocommit connection of its own, then attached to the request's
    session without another query: a view that reads nothing else (/me) pays no BEGIN and no ROLLBACK for it. A row
    the request has already loaded (and may have changed) is the one returned: nothing is copied over it."""
    held = db.session.identity_map.get(identity_key(model, row_id))
    if held is not None:
        return held
    with db.engine.connect() as conn, Session(bind=conn.execution_options(isolation_level="AUTOCOMMIT")) as lookup:
        found = lookup.get(model, row_id)
        if found is None:
            return None
        lookup.expunge_all()
    return db.session.merge(found, load=False)


class RequestGlobals(_AppCtxGlobals):
    """Flask's `g`, where `g.user` (the caller's User row, with tenant and unit) and `g.auth_session` are loaded
    on first use and attached to the request's session, by the id the sign-in query found. Both are None for an
    anonymous request. Views that only need who is calling use g.subject or g.caller and cost no second query."""

    def __getattr__(self, name: str) -> Any:
        if name in ("user", "auth_session"):
            caller = self.__dict__.get("caller")
            value = None
            if caller is not None:
                value = _attached(User, caller.id) if name == "user" else _attached(AuthSession, caller.session_id)
                if value is None:
                    # Deleted between the sign-in query and now: as if the token had not been presented.
                    raise APIError(401, "sign in first")
            self.__dict__[name] = value
            return value
        return super().__getattr__(name)

    def get(self, name: str, default: Any = None) -> Any:
        if name in ("user", "auth_session"):
            return getattr(self, name)
        return super().get(name, default)


def require_caller() -> Subject:
    subject = g.get("subject")
    if subject is None:
        raise APIError(401, "sign in first")
    return subject
