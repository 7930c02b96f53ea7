"""Pushes about something other than a notice (a survey reminder, for one): a title, a line and a link, sent to
every device of the given users through the same sender, VAPID keys and pruning rules as notices.

Unlike a notice's push there is no per-device "sent" record: such messages are reminders, where a rare duplicate
after a retried job is harmless, and recording them would need a table for every kind of subject.
"""
from __future__ import annotations

import json
import logging
from typing import Any

from flask import current_app
from sqlalchemy import delete, select

from federation.extensions import db
from federation.jobs import enqueue_now, job
from federation.push import vapid
from federation.push.records import PushSubscription
from federation.push.sender import BACKOFF, MAX_ATTEMPTS, MAX_PLAINTEXT, sender
from tenants.models import User

log = logging.getLogger("musubi.push")


def message_payload(kind: str, title: str, line: str, url: str, tenant: str) -> bytes:
    data: dict[str, Any] = {"v": 1, "kind": kind, "tenant": tenant, "title": title[:200], "excerpt": line[:140],
                            "url": url}
    raw = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    # Title and line are capped above, so this holds for any input; kept as a guard on future fields.
    assert len(raw) <= MAX_PLAINTEXT
    return raw


@job
def push_message(sub_ids: list[int], body: str, topic: str, ttl: int, attempt: int = 0) -> None:
    """Send one message to the given devices; 404/410 remove a device, 429/5xx retry the rest with backoff."""
    settings = current_app.config["MUSUBI"]
    try:
        keys = vapid.keys(settings.vapid_file, settings.vapid_subject)
    except vapid.VapidMissing as exc:
        log.warning("push not sent: %s", exc)
        return
    # Read at send time: a device whose owner was suspended since the message was queued gets nothing (F7).
    rows = db.session.execute(select(PushSubscription).join(User, User.id == PushSubscription.user_id).where(
        PushSubscription.id.in_(sub_ids), User.status == "active")).scalars().all()
    subs = [{"id": r.id, "endpoint": r.endpoint, "keys": {"p256dh": r.p256dh, "auth": r.auth}} for r in rows]
    db.session.rollback()  # hold no transaction open while the network is busy
    if not subs:
        return
    outcomes = sender().send_all(keys, subs, body.encode("utf-8"),
                                 {"TTL": str(ttl), "Urgency": "normal", "Topic": topic})
    gone = [o.subscription_id for o in outcomes if o.status in (404, 410)]
    retry = [o for o in outcomes if o.status == 0 or o.status == 429 or o.status >= 500]
    if gone:
        db.session.execute(delete(PushSubscription).where(PushSubscription.id.in_(gone)))
        db.session.commit()
    if retry and attempt + 1 < MAX_ATTEMPTS:
        wait = max([BACKOFF[min(attempt, len(BACKOFF) - 1)]] + [o.retry_after for o in retry])
        left = sorted(o.subscription_id for o in retry)
        enqueue_now(push_message, left, body, topic, ttl, attempt + 1, delay=wait,
                    job_id=f"msg-{topic}-{left[0]}-{attempt + 1}")


def send_to_users(user_ids: list[int], payload: bytes, *, topic: str, ttl: int, job_key: str) -> int:
    """Queue `payload` for every device of these users; returns how many devices."""
    sub_ids = list(db.session.execute(select(PushSubscription.id).where(PushSubscription.user_id.in_(user_ids))
                                      .order_by(PushSubscription.id)).scalars())
    body = payload.decode("utf-8")
    for i in range(0, len(sub_ids), 500):
        batch = sub_ids[i:i + 500]
        enqueue_now(push_message, batch, body, topic, ttl, 0, job_id=f"msg-{job_key}-{batch[0]}-0")
    return len(sub_ids)
