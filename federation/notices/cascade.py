"""The cascade: background jobs that take a published notice to its unions.

start_cascade   resolve the audience into unions, split them into chunks, queue one delivery job per chunk
deliver_chunk   per union, ask the firewall *now* (F2, F7): deliver to the members, or to the officers for relay,
                or not at all; write the Delivery row exactly once and one audit entry per union (F6); then hand
                the new deliveries to push

Every job reloads by id and is safe to run twice: deliveries and chunk records are inserted with ON CONFLICT DO
NOTHING, and only rows that were really inserted are audited and pushed.
"""
from __future__ import annotations

import logging

from flask import current_app
from sqlalchemy import func, select

from federation.audit.chain import record
from federation.auth.service import subject_of
from federation.dbutil import insert_ignore
from federation.extensions import db, utcnow
from federation.firewall import firewall
from federation.jobs import enqueue_after_commit, job
from federation.notices import audience, inbox_cache
from federation.notices.models import CascadeChunk, Delivery, Notice

log = logging.getLogger("musubi.cascade")

CHUNK_UNIONS = 50


@job
def start_cascade(notice_id: int) -> None:
    notice = db.session.get(Notice, notice_id)
    if notice is None or notice.status != "published":
        return
    targets = audience.resolve(notice.audience, notice.tenant)
    size = current_app.config["MUSUBI"].cascade_chunk or CHUNK_UNIONS
    chunks = [targets[i:i + size] for i in range(0, len(targets), size)]
    notice.cascade_targets, notice.cascade_chunks = len(targets), len(chunks)
    if not chunks:
        notice.cascade_done_at = utcnow()
    for n, chunk in enumerate(chunks):
        enqueue_after_commit(deliver_chunk, notice_id, n, [t.union_id for t in chunk],
                             job_id=f"deliver-{notice_id}-{n}")
    db.session.commit()


@job
def deliver_chunk(notice_id: int, chunk: int, union_ids: list[int]) -> None:
    notice = db.session.get(Notice, notice_id)
    if notice is None or notice.status != "published":
        return  # retracted before this chunk ran: nothing more goes out
    if db.session.get(CascadeChunk, (notice_id, chunk)) is not None:
        return  # this chunk already finished once
    author = subject_of(notice.author)
    snap = firewall.current()  # the policy as it is now, not as it was at publish time (F2, F7)
    origin = notice.tenant.slug
    may_publish = snap.allowed(author, origin, "notices", "publish")
    targets = [t for t in audience.resolve(notice.audience, notice.tenant) if t.union_id in set(union_ids)]
    delivered = 0
    new_ids: list[int] = []
    touched: list[int] = []
    for target in targets if may_publish else []:
        if snap.allowed(author, target.union, "notices", "deliver"):
            for_relay, scopes = False, {p: audience.count_members(target.union_id, (p,)) for p in target.unit_paths}
        elif snap.allowed(author, target.union, "notices", "relay"):
            for_relay, scopes = True, {"": audience.count_union_admins(target.union_id)}
        else:
            continue
        recipients = sum(scopes.values())
        inserted = [
            row for path, count in scopes.items()
            if (row := db.session.execute(
                insert_ignore(Delivery).values(notice_id=notice_id, tenant_id=target.union_id, unit_path=path,
                                               for_relay=for_relay, recipients=count, delivered_at=utcnow())
                .returning(Delivery.id)).scalar_one_or_none()) is not None  # None: an earlier run wrote it
        ]
        new_ids += inserted
        delivered += bool(inserted)
        if inserted:
            touched.append(target.union_id)
        if target.union != origin and inserted:
            record("notice.deliver", actor=author.key, tenant=origin, other_tenant=target.union,
                   data={"notice_id": notice_id, "mode": "relay" if for_relay else "members",
                         "recipients": recipients})
    if not may_publish:
        record("notice.refused", actor=author.key, tenant=origin,
               data={"notice_id": notice_id, "chunk": chunk, "reason": "the author may no longer publish"})
    inbox_cache.touch_unions(touched)
    db.session.execute(insert_ignore(CascadeChunk).values(notice_id=notice_id, chunk=chunk, unions=len(union_ids),
                                                          delivered=delivered, done_at=utcnow()))
    done = db.session.execute(select(func.count()).select_from(CascadeChunk)
                              .where(CascadeChunk.notice_id == notice_id)).scalar_one()
    if notice.cascade_chunks is not None and done >= notice.cascade_chunks and notice.cascade_done_at is None:
        notice.cascade_done_at = utcnow()
    if new_ids:
        from federation.push import sender

        enqueue_after_commit(sender.push_deliveries, notice_id, new_ids, job_id=f"push-{notice_id}-{chunk}")
    db.session.commit()


RESUME_CHUNK_BASE = 1_000_000  # chunk numbers of a resumed cascade, apart from the original ones


@job
def resume_cascade(notice_id: int) -> None:
    """Finish a cascade whose delivery jobs were lost (retries exhausted, Redis emptied): deliver to every target
    union that has no delivery yet, deciding F2 now as any delivery does, then mark the cascade done."""
    notice = db.session.get(Notice, notice_id)
    if notice is None or notice.status != "published" or notice.cascade_done_at is not None:
        return
    reached = set(db.session.execute(select(Delivery.tenant_id).where(Delivery.notice_id == notice_id)).scalars())
    missing = [t.union_id for t in audience.resolve(notice.audience, notice.tenant) if t.union_id not in reached]
    record("notice.resume", actor="system:scheduler", tenant=notice.tenant.slug,
           data={"notice_id": notice_id, "unions": len(missing)})
    if reached:
        # Whatever emptied the queue of delivery jobs took the push jobs of the deliveries already written with it.
        # push_deliveries skips every device already pushed, so this sends only what never went out.
        from federation.push import sender

        earlier = list(db.session.execute(select(Delivery.id).where(Delivery.notice_id == notice_id)).scalars())
        enqueue_after_commit(sender.push_deliveries, notice_id, earlier, job_id=f"push-{notice_id}-resumed")
    db.session.commit()
    size = current_app.config["MUSUBI"].cascade_chunk or CHUNK_UNIONS
    for n, start in enumerate(range(0, len(missing), size)):
        deliver_chunk(notice_id, RESUME_CHUNK_BASE + n, missing[start:start + size])
    notice = db.session.get(Notice, notice_id)
    if notice is not None and notice.cascade_done_at is None:
        notice.cascade_done_at = utcnow()
        db.session.commit()
