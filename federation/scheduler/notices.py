"""The scheduler's work: the database is the source of truth (LIBRARIES.md on APScheduler).

Every tick claims due rows with a conditional UPDATE (status 'scheduled' → 'published' where publish_at has passed):
of two schedulers ticking at once, only one UPDATE matches a row, so a notice is published once; a scheduler that
was down publishes everything that fell due meanwhile on its first tick. A notice whose author may no longer
publish goes back to the drafts instead, with the refusal audited. The same goes for reminders
(reminder_sent_at claimed in one UPDATE). A cascade whose start job was lost (a crash between commit and enqueue) is
queued again.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from flask import current_app
from sqlalchemy import select, update

from federation.audit.chain import record
from federation.auth.service import subject_of
from federation.extensions import db, utcnow
from federation.firewall import firewall
from federation.jobs import enqueue_after_commit
from federation.notices.cascade import start_cascade
from federation.notices.models import Notice

log = logging.getLogger("musubi.scheduler")

STUCK_AFTER = timedelta(minutes=2)  # the default of MUSUBI_STUCK_CASCADE_SECONDS


def publish_due() -> list[int]:
    now = utcnow()
    ids = list(db.session.execute(
        update(Notice).where(Notice.status == "scheduled", Notice.publish_at <= now)
        .values(status="published", published_at=now).returning(Notice.id)).scalars())
    if not ids:
        db.session.commit()
        return []
    published: list[int] = []
    snap = firewall.current()  # asked only when something fell due: most ticks publish nothing
    for notice_id in ids:
        notice = db.session.get(Notice, notice_id)
        if notice is None:
            continue
        origin, author = notice.tenant.slug, subject_of(notice.author)
        if not snap.allowed(author, origin, "notices", "publish"):
            # The author lost the right while the notice waited (F2, F7). Nothing goes out, and the notice goes back
            # to the drafts rather than showing as published: someone who may publish can send it.
            notice.status, notice.published_at, notice.publish_at = "draft", None, None
            record("notice.refused", actor=author.key, tenant=origin,
                   data={"notice_id": notice_id, "scheduled": True, "reason": "the author may no longer publish"})
            continue
        record("notice.publish", actor="system:scheduler", tenant=origin,
               data={"notice_id": notice_id, "scheduled": True})
        enqueue_after_commit(start_cascade, notice_id, job_id=f"cascade-{notice_id}")
        published.append(notice_id)
    db.session.commit()
    if published:
        log.info("published %d scheduled notices: %s", len(published), published)
    if len(published) < len(ids):
        log.warning("scheduled notices back to draft, their authors may no longer publish: %s",
                    sorted(set(ids) - set(published)))
    return published


def requeue_stuck() -> list[int]:
    cutoff = utcnow() - timedelta(seconds=current_app.config["MUSUBI"].stuck_cascade_seconds)
    ids = list(db.session.execute(select(Notice.id).where(
        Notice.status == "published", Notice.cascade_targets.is_(None), Notice.published_at < cutoff)).scalars())
    for notice_id in ids:
        enqueue_after_commit(start_cascade, notice_id, job_id=f"cascade-{notice_id}-again-{int(cutoff.timestamp())}")
    db.session.commit()
    return ids


RESUME_AFTER = timedelta(minutes=10)  # the default of MUSUBI_RESUME_CASCADE_SECONDS


def resume_unfinished() -> list[int]:
    """Cascades that started but never finished (a delivery job lost for good) are finished from what is missing."""
    from federation.notices.cascade import resume_cascade

    wait = current_app.config["MUSUBI"].resume_cascade_seconds
    cutoff = utcnow() - timedelta(seconds=wait)
    ids = list(db.session.execute(select(Notice.id).where(
        Notice.status == "published", Notice.cascade_chunks.is_not(None), Notice.cascade_done_at.is_(None),
        Notice.published_at < cutoff)).scalars())
    # One job id per waiting period: a resume job lost with Redis gets a fresh id, not a refused duplicate.
    bucket = int(cutoff.timestamp()) // max(1, wait)
    for notice_id in ids:
        enqueue_after_commit(resume_cascade, notice_id, job_id=f"resume-{notice_id}-{bucket}")
    db.session.commit()
    return ids


def remind_due() -> list[int]:
    from federation.push.sender import push_reminder

    now = utcnow()
    ids = list(db.session.execute(
        update(Notice).where(Notice.status == "published", Notice.reminder_at <= now,
                             Notice.reminder_sent_at.is_(None), Notice.event_starts_at > now)
        .values(reminder_sent_at=now).returning(Notice.id)).scalars())
    for notice_id in ids:
        enqueue_after_commit(push_reminder, notice_id, job_id=f"reminder-{notice_id}")
    db.session.commit()
    return ids


def tick() -> dict[str, list[int]]:
    return {"published": publish_due(), "requeued": requeue_stuck(), "resumed": resume_unfinished(),
            "reminded": remind_due(), **ballots_due(), "surveys_announced": surveys_due()}


def surveys_due() -> list[int]:
    """Surveys whose opening time has come: their members hear of them on their phones."""
    from federation.space.surveys.reminders import announce_due

    return announce_due()


def ballots_due() -> dict[str, list[int]]:
    """Ballots: close those whose time is up, remind the not-yet-voted a day before the close."""
    from federation.ballots import notify, service

    return {"ballots_closed": service.close_due(), "ballots_reminded": notify.remind_due()}
