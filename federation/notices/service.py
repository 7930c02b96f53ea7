"""Doing things with notices: compose, schedule, publish, retract, relay. Views call these after the firewall."""
from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import select

from federation.audit.chain import record
from federation.dbutil import get_row, insert_ignore
from federation.errors import APIError, invalid
from federation.extensions import db, utcnow
from federation.firewall import Denied, Subject, firewall
from federation.jobs import enqueue_after_commit
from federation.notices import audience as aud
from federation.notices import inbox_cache
from federation.notices.cascade import start_cascade
from federation.notices.markdown import render
from federation.notices.models import Delivery, Notice
from tenants.models import Tenant, User

EVENT_KEYS = {"starts_at", "ends_at", "place", "online_url"}


def _apply_event(notice: Notice, event: dict[str, Any] | None) -> None:
    if event is None:
        notice.event_starts_at = notice.event_ends_at = notice.event_place = notice.event_online_url = None
        notice.reminder_at = None
        return
    starts, ends = event["starts_at"], event.get("ends_at")
    if ends is not None and ends < starts:
        raise invalid("event.ends_at", "must not be before starts_at")
    notice.event_starts_at, notice.event_ends_at = starts, ends
    notice.event_place, notice.event_online_url = event.get("place"), event.get("online_url")
    lead = notice.reminder_lead_minutes
    if lead is None:
        lead = current_app.config["MUSUBI"].reminder_lead_hours * 60
    notice.reminder_at = starts - timedelta(minutes=lead) if lead > 0 else None


def _check_publish_at(publish_at: datetime | None) -> None:
    if publish_at is not None and publish_at <= utcnow():
        raise invalid("publish_at", "must be in the future; to publish now, use POST .../publish")


def _check_comments(tenant: Tenant, comments: bool | None) -> None:
    if comments and tenant.kind != "union":
        raise invalid("comments", "only a union's notices take comments; a federation notice takes questions")


def create_notice(tenant: Tenant, author: User, subject: Subject, body: dict[str, Any]) -> Notice:
    canonical = aud.validate(body["audience"], tenant, subject)
    _check_publish_at(body.get("publish_at"))
    _check_comments(tenant, body.get("comments"))
    notice = Notice(tenant_id=tenant.id, author_id=author.id, title=body["title"], body=body["body"],
                    body_html=render(body["body"]), category=body["category"],
                    audience=json.dumps(canonical, sort_keys=True),
                    reminder_lead_minutes=body.get("reminder_lead_minutes"),
                    publish_at=body.get("publish_at"),
                    status="scheduled" if body.get("publish_at") else "draft",
                    comments=bool(body.get("comments")), officers_only=bool(canonical.get("officers")))
    notice.tenant, notice.author = tenant, author
    _apply_event(notice, body.get("event"))
    db.session.add(notice)
    db.session.commit()
    return notice


def update_notice(notice: Notice, subject: Subject, body: dict[str, Any]) -> Notice:
    if notice.status == "retracted":
        raise APIError(409, "a retracted notice cannot be changed", fields={"status": ["retracted"]})
    if notice.status == "published" and ("audience" in body or "publish_at" in body):
        field = "audience" if "audience" in body else "publish_at"
        raise APIError(409, f"{field}: a published notice keeps its audience; retract it and issue a new one",
                       fields={field: ["published"]})
    if "audience" in body:
        canonical = aud.validate(body["audience"], notice.tenant, subject)
        notice.audience = json.dumps(canonical, sort_keys=True)
        notice.officers_only = bool(canonical.get("officers"))
    if "comments" in body:
        _check_comments(notice.tenant, body["comments"])
        notice.comments = bool(body["comments"])
    for key in ("title", "category"):
        if key in body:
            setattr(notice, key, body[key])
    if "body" in body:
        notice.body, notice.body_html = body["body"], render(body["body"])
    if "reminder_lead_minutes" in body:
        notice.reminder_lead_minutes = body["reminder_lead_minutes"]
    if "event" in body or "reminder_lead_minutes" in body:
        event = body.get("event", _event_of(notice))
        _apply_event(notice, event)
    if "publish_at" in body:
        _check_publish_at(body["publish_at"])
        notice.publish_at = body["publish_at"]
        notice.status = "scheduled" if body["publish_at"] else "draft"
    if notice.status == "published":
        inbox_cache.touch_notice(notice.id)  # its title, text or event changed in inboxes that hold it
    db.session.commit()
    return notice


def delete_unsent(notice: Notice, subject: Subject) -> None:
    """A draft or a scheduled notice that never went out is deleted, not retracted: it reached nobody. A
    published one is retracted instead, so its readers' inboxes stay explainable."""
    if notice.status not in ("draft", "scheduled"):
        raise APIError(409, f"the notice is {notice.status}: retract it instead", fields={"status": [notice.status]})
    record("notice.delete", actor=subject.key, tenant=notice.tenant.slug,
           data={"notice_id": notice.id, "status": notice.status})
    db.session.delete(notice)
    db.session.commit()


def _event_of(notice: Notice) -> dict[str, Any] | None:
    if notice.event_starts_at is None:
        return None
    return {"starts_at": notice.event_starts_at, "ends_at": notice.event_ends_at, "place": notice.event_place,
            "online_url": notice.event_online_url}


def publish_now(notice: Notice, subject: Subject) -> Notice:
    if notice.status in ("published", "retracted"):
        raise APIError(409, f"the notice is already {notice.status}", fields={"status": [notice.status]})
    notice.status, notice.published_at = "published", utcnow()
    record("notice.publish", actor=subject.key, tenant=notice.tenant.slug,
           data={"notice_id": notice.id, "category": notice.category})
    enqueue_after_commit(start_cascade, notice.id, job_id=f"cascade-{notice.id}")
    db.session.commit()
    return notice


def retract(notice: Notice, subject: Subject) -> Notice:
    """Retracting takes the notice out of every inbox at once: inboxes only ever show published notices. A notice
    that was published also has its pushes replaced on the devices that got them (same Topic), queued in the same
    transaction: the API's DELETE and the editor's page both come here, so both retract the same way."""
    if notice.status == "retracted":
        return notice
    before = notice.status
    notice.status, notice.retracted_at = "retracted", utcnow()
    inbox_cache.touch_notice(notice.id)
    if before != "draft":
        record("notice.retract", actor=subject.key, tenant=notice.tenant.slug, data={"notice_id": notice.id})
    if before == "published":
        from federation.push import sender

        enqueue_after_commit(sender.push_retraction, notice.id, job_id=f"retract-{notice.id}")
    db.session.commit()
    return notice


def require_relay(union: Tenant, subject: Subject) -> None:
    firewall.require(subject, union.slug, "notices", "relay")
    firewall.require(subject, union.slug, "notices", "publish")


def relay(union: Tenant, subject: Subject, notice_id: int, audience_raw: Any) -> list[Delivery]:
    """A union admin passes a federation notice that reached them for relay on to their own members."""
    # `notices relay` in a union's domain is also the federation's right to reach its officers (the `affiliated`
    # link). Passing a notice on to the members is publishing to them, the union's own decision (F2, F3): only a
    # role inside the union holds `notices publish` there, so a federation role cannot reach an opted-out union's
    # members this way.
    require_relay(union, subject)
    notice = get_row(Notice, notice_id)
    received = notice is not None and db.session.execute(select(Delivery.id).where(
        Delivery.notice_id == notice_id, Delivery.tenant_id == union.id)).first() is not None
    if notice is None or not received or notice.status != "published":
        raise APIError(422, "notice_id: no federation notice delivered to this union with that id",
                       fields={"notice_id": ["not delivered to this union"]})
    if notice.officers_only:
        raise APIError(422, "notice_id: a notice on the officers' channel is for the officers only and is not relayed",
                       fields={"notice_id": ["officers only"]})
    canonical = aud.validate(audience_raw, union, subject)
    targets = aud.resolve(json.dumps(canonical), union)
    out: list[Delivery] = []
    new_ids: list[int] = []
    for target in targets:
        for path in target.unit_paths:
            row = db.session.execute(insert_ignore(Delivery).values(
                notice_id=notice_id, tenant_id=union.id, unit_path=path, for_relay=False,
                recipients=aud.count_members(union.id, (path,)), delivered_at=utcnow(), relayed_by=subject.key,
            ).returning(Delivery.id)).scalar_one_or_none()
            if row is not None:
                new_ids.append(row)
    if new_ids:
        inbox_cache.touch_unions([union.id])
    record("notice.relay", actor=subject.key, tenant=union.slug, other_tenant=notice.tenant.slug,
           data={"notice_id": notice_id, "audience": canonical, "new_deliveries": len(new_ids)})
    if new_ids:
        from federation.push import sender

        enqueue_after_commit(sender.push_deliveries, notice_id, new_ids)
    db.session.commit()
    out = list(db.session.execute(select(Delivery).where(Delivery.notice_id == notice_id,
                                                         Delivery.tenant_id == union.id)).scalars())
    return out


def may_edit(notice: Notice, subject: Subject) -> bool:
    """Editors of the author tenant edit its notices; a unit officer only the ones they wrote."""
    if not firewall.allowed(subject, notice.tenant.slug, "notices", "write"):
        return False
    return aud.writes_for_whole_tenant(subject) or notice.author_id == subject.user_id


def access_notice(slug: str, notice_id: int, action: str = "write") -> tuple[Tenant, Notice]:
    """The one gate to change a notice, for the API and the pages alike: the firewall for the tenant, then the row
    through its tenant (404 if it is another tenant's), then may_edit (a unit officer only edits their own)."""
    from federation.access import access_tenant, get_owned

    tenant, subject = access_tenant(slug, "notices", action)
    notice = get_owned(Notice, notice_id, tenant)
    if not may_edit(notice, subject):
        raise Denied(403)
    return tenant, notice
