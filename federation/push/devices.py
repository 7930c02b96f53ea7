"""A signed-in user's own push devices: the reads and writes the API and the settings page share. Every function
takes the user's id and touches only their rows; another person's device is as if it did not exist."""
from __future__ import annotations

import hmac

from sqlalchemy import select

from federation.dbutil import get_row
from federation.errors import APIError
from federation.extensions import db
from federation.firewall import Denied
from federation.push.records import PushSubscription


def devices_of(user_id: int) -> list[PushSubscription]:
    return list(db.session.execute(select(PushSubscription).where(PushSubscription.user_id == user_id)
                                   .order_by(PushSubscription.id)).scalars())


def device_of(user_id: int, device_id: int) -> PushSubscription:
    sub = get_row(PushSubscription, device_id)
    if sub is None or sub.user_id != user_id:
        raise Denied(404)
    return sub


def remove_device(user_id: int, device_id: int) -> None:
    db.session.delete(device_of(user_id, device_id))
    db.session.commit()


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def subscribe(user_id: int, tenant_id: int, session_id: int, endpoint: str, keys: dict[str, str], *,
              user_agent: str | None) -> PushSubscription:
    """Register a browser's subscription (already validated) for this user, in this sign-in."""
    existing = db.session.execute(select(PushSubscription).where(
        PushSubscription.endpoint == endpoint)).scalar_one_or_none()
    if existing is not None and existing.user_id != user_id \
            and not (_same(existing.p256dh, keys["p256dh"]) and _same(existing.auth, keys["auth"])):
        # An endpoint is no secret (it travels in logs and to the push service), the keys are: only the browser
        # holding the subscription knows them. Without them nobody takes another person's device over.
        raise APIError(409, "endpoint: already registered by someone else; subscribe this browser anew",
                       fields={"endpoint": ["registered to another user"]})
    if existing is not None:
        # The same browser (it proved it with the keys) signed in as someone else: one device, one person.
        existing.user_id, existing.tenant_id = user_id, tenant_id
        existing.p256dh, existing.auth = keys["p256dh"], keys["auth"]
        existing.session_id = session_id
        sub = existing
    else:
        sub = PushSubscription(user_id=user_id, tenant_id=tenant_id, endpoint=endpoint, p256dh=keys["p256dh"],
                               auth=keys["auth"], session_id=session_id, user_agent=(user_agent or "")[:300] or None)
        db.session.add(sub)
    db.session.commit()
    return sub


def unsubscribe(user_id: int, endpoint: str) -> None:
    sub = db.session.execute(select(PushSubscription).where(
        PushSubscription.endpoint == endpoint, PushSubscription.user_id == user_id)).scalar_one_or_none()
    if sub is None:
        raise APIError(404, "no such subscription of yours")
    db.session.delete(sub)
    db.session.commit()
