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
from sqlalchemy import func, select, union_all

from federation.audit.chain import record, record_many
from federation.auth.service import subject_of
from federation.dbutil import insert_ignore
from federation.extensions import db, utcnow
from federation.firewall import Subject, firewall
from federation.firewall.service import Snapshot
from federation.jobs import enqueue_after_commit, job
from federation.notices import audience, inbox_cache
from federation.notices.models import CascadeChunk, Delivery, Notice
from tenants.login_ids import login_key
from tenants.models import RoleGrant, Tenant, User

log = logging.getLogger("musubi.cascade")

CHUNK_UNIONS = 250  # a chunk costs a few statements whatever its size; two chunks at 200,000 members, ten at 1,000,000


# --- whom a notice may reach now ------------------------------------------------------------------------------------
# The one firewall path of every job that sends a notice on: the delivery jobs above, and every push job (the
# notice's own push, its reminder, each batch right before it is sent). Asked at the moment of sending, never
# remembered from publish time (F2, F7).

MEMBERS, RELAY = "members", "relay"


def author_may_publish(snap: Snapshot, notice: Notice) -> bool:
    """The author may still publish in the notice's tenant: not suspended, the role not taken away."""
    return snap.allowed(subject_of(notice.author), notice.tenant.slug, "notices", "publish")


def union_mode(snap: Snapshot, author: Subject, union: str, *, officers_only: bool = False) -> str | None:
    """How a notice of `author` reaches `union` now: to its members (MEMBERS: for a federation notice, while the
    union is affiliated and opted in), to its union admins for relay (RELAY: affiliated, not opted in), or not at
    all (None: the affiliation ended). A notice on the officers' channel reaches the union admins of every
    affiliated union, opted in or not, through the same `relay` link (and can never be relayed on)."""
    if officers_only:
        return RELAY if snap.allowed(author, union, "notices", "relay") else None
    if snap.allowed(author, union, "notices", "deliver"):
        return MEMBERS
    if snap.allowed(author, union, "notices", "relay"):
        return RELAY
    return None


def _relayer(key: str) -> Subject | None:
    """The union admin who relayed a delivery, from its subject key `user:{tenant}/{login_id}`, as they are now."""
    tenant, _, login_id = key.removeprefix("user:").partition("/")
    user = db.session.execute(select(User).join(Tenant, Tenant.id == User.tenant_id)
                              .where(Tenant.slug == tenant, User.login_key == login_key(login_id))).scalar_one_or_none()
    return subject_of(user) if user is not None else None


def recipients_now(notice: Notice, delivery_ids: list[int] | None = None, *,  # type: ignore[no-untyped-def]
                   unions: list[int] | None = None, snap: Snapshot | None = None):
    """A select of the ids of the users the notice's deliveries (all, those given, or those to the given unions)
    may reach right now, or None for nobody. Per delivery, the firewall is asked as deliver_chunk asks it: the
    author still may publish; the union still takes the notice for its members (else only its active union
    admins, or nobody once the affiliation ended); a relayed delivery, that its relaying admin still may relay
    there. Recipients are active users only, read now."""
    snap = snap or firewall.current()
    if notice.status != "published" or not author_may_publish(snap, notice):
        return None
    author = subject_of(notice.author)
    stmt = select(Delivery).where(Delivery.notice_id == notice.id)
    if delivery_ids is not None:
        stmt = stmt.where(Delivery.id.in_(delivery_ids))
    if unions is not None:
        stmt = stmt.where(Delivery.tenant_id.in_(unions))
    deliveries = list(db.session.execute(stmt).scalars())
    unions = dict(db.session.execute(select(Tenant.id, Tenant.slug).where(
        Tenant.id.in_({d.tenant_id for d in deliveries}))).all())
    modes: dict[int, str | None] = {}
    selects = []
    for d in deliveries:
        slug = unions.get(d.tenant_id)
        if slug is None:
            continue
        if d.relayed_by:
            relayer = _relayer(d.relayed_by)
            if relayer is None or not (snap.allowed(relayer, slug, "notices", "relay")
                                       and snap.allowed(relayer, slug, "notices", "publish")):
                continue
            mode = MEMBERS
        else:
            if d.tenant_id not in modes:
                modes[d.tenant_id] = union_mode(snap, author, slug, officers_only=notice.officers_only)
            mode = modes[d.tenant_id]
        if mode is None:
            continue
        if d.for_relay or mode == RELAY:
            selects.append(select(RoleGrant.user_id).join(User, User.id == RoleGrant.user_id).where(
                RoleGrant.tenant_id == d.tenant_id, RoleGrant.role == "union_admin", User.status == "active"))
        else:
            selects.append(audience.members_in_scope(d.tenant_id, (d.unit_path,)))
    if not selects:
        return None
    return union_all(*selects) if len(selects) > 1 else selects[0]


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
    may_publish = author_may_publish(snap, notice)
    wanted = set(union_ids)
    targets = [t for t in audience.resolve(notice.audience, notice.tenant) if t.union_id in wanted]
    # The firewall decides per union, in memory (F2); the counts and the rows then go in one statement each, so a
    # chunk costs a handful of round trips however many unions it holds.
    modes = ({t.union_id: union_mode(snap, author, t.union, officers_only=notice.officers_only) for t in targets}
             if may_publish else {})
    whole = [t.union_id for t in targets if modes.get(t.union_id) == MEMBERS and t.unit_paths == ("",)]
    member_counts = audience.count_members_by_union(whole)
    admin_counts = audience.count_union_admins_by_union([u for u, m in modes.items() if m == RELAY])
    rows: list[dict[str, object]] = []
    for target in targets:
        mode = modes.get(target.union_id)
        if mode == MEMBERS:
            for_relay, scopes = False, ({"": member_counts.get(target.union_id, 0)} if target.unit_paths == ("",) else
                                        {p: audience.count_members(target.union_id, (p,)) for p in target.unit_paths})
        elif mode == RELAY:
            for_relay, scopes = True, {"": admin_counts.get(target.union_id, 0)}
        else:
            continue
        now = utcnow()
        rows += [{"notice_id": notice_id, "tenant_id": target.union_id, "unit_path": path, "for_relay": for_relay,
                  "recipients": count, "delivered_at": now} for path, count in scopes.items()]
    # Only the rows really inserted come back: those an earlier run of this chunk wrote are neither audited nor
    # pushed again.
    inserted = list(db.session.execute(insert_ignore(Delivery).returning(Delivery.id, Delivery.tenant_id),
                                       rows).all()) if rows else []
    new_ids = [row.id for row in inserted]
    touched = sorted({row.tenant_id for row in inserted})
    delivered = len(touched)
    recipients: dict[int, int] = {}
    for r in rows:
        recipients[r["tenant_id"]] = recipients.get(r["tenant_id"], 0) + r["recipients"]
    reached = set(touched)
    entries = [{"other_tenant": t.union,
                "data": {"notice_id": notice_id, "mode": "relay" if modes[t.union_id] == RELAY else "members",
                         "recipients": recipients[t.union_id]}}
               for t in targets if t.union_id in reached and t.union != origin]
    record_many("notice.deliver", entries, actor=author.key, tenant=origin)
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
