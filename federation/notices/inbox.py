"""Reading: a member's inbox, read marks and stamps; officers' receipts; authors' counts.

A member's inbox is every published notice with a delivery to their union whose scope covers their unit (the whole
union, or their unit or one of its ancestors), plus deliveries "for relay" if the firewall lets them relay.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Protocol

from sqlalchemy import and_, bindparam, case, exists, func, or_, select

from federation.extensions import UTCDateTime, db, utcnow
from federation.firewall import Subject, firewall
from federation.notices.audience import members_in_scope
from federation.notices.inbox_cache import touch_user
from federation.notices.models import CascadeChunk, Delivery, Notice, Receipt
from federation.privacy import too_small
from tenants.models import Tenant, User
from tenants.ordering import tenant_key


@dataclass(frozen=True)
class Scope:
    tenant_id: int
    paths: tuple[str, ...]
    relays: bool


class Member(Protocol):
    """What the inbox reads of a member: a User row, or the request's Caller (which needs no second query)."""

    @property
    def id(self) -> int: ...
    @property
    def tenant_id(self) -> int: ...
    @property
    def unit_path(self) -> str | None: ...


def scope_of(user: Member, subject: Subject) -> Scope:
    paths = [""]
    parts = [p for p in (user.unit_path or "").split("/") if p]
    paths += ["/" + "/".join(parts[: i + 1]) + "/" for i in range(len(parts))]
    relays = firewall.allowed(subject, subject.tenant, "notices", "relay")
    return Scope(user.tenant_id, tuple(paths), relays)


def _visible_conditions(relays: bool) -> list:  # type: ignore[type-arg]
    """What puts a delivery in a member's inbox, with the tenant and unit paths as bound parameters: the one
    definition the inbox page, its unread count and the single-notice lookup are all built from."""
    conds = [Delivery.tenant_id == bindparam("tenant_id"), Delivery.unit_path.in_(bindparam("paths", expanding=True)),
             Notice.status == "published"]
    if not relays:
        conds.append(Delivery.for_relay.is_(False))
    return conds


def _scope_params(scope: Scope) -> dict[str, Any]:
    return {"tenant_id": scope.tenant_id, "paths": list(scope.paths)}


def _grouped(conds: list):  # type: ignore[no-untyped-def]
    return (select(Delivery.notice_id.label("notice_id"),
                   func.min(Delivery.delivered_at).label("delivered_at"),
                   func.min(case((Delivery.for_relay, 1), else_=0)).label("relay_only"))
            .join(Notice, Notice.id == Delivery.notice_id).where(*conds).group_by(Delivery.notice_id))


@lru_cache(maxsize=8)
def _inbox_statements(relays: bool, with_cursor: bool):  # type: ignore[no-untyped-def]
    """The inbox page and its unread count, built once per shape with bound parameters: constructing the statement
    cost more Python time per request than PostgreSQL spent running it."""
    visible = _grouped(_visible_conditions(relays)).cte("visible")
    page = select(visible)
    if with_cursor:
        page = page.where(or_(visible.c.delivered_at < bindparam("at", type_=UTCDateTime),
                              and_(visible.c.delivered_at == bindparam("at", type_=UTCDateTime),
                                   visible.c.notice_id < bindparam("nid"))))
    page = page.order_by(visible.c.delivered_at.desc(), visible.c.notice_id.desc()).limit(
        bindparam("lim")).subquery("p")
    unread = (select(func.count()).select_from(visible).where(~exists().where(
        Receipt.notice_id == visible.c.notice_id, Receipt.user_id == bindparam("user_id"),
        Receipt.read_at.is_not(None))))
    stmt = (select(page.c.notice_id, page.c.delivered_at, page.c.relay_only, Notice.title, Notice.category,
                   Notice.body_html, Notice.event_starts_at, Notice.event_ends_at, Notice.event_place,
                   Notice.event_online_url, Notice.published_at, Notice.officers_only, Tenant.slug, Tenant.name,
                   Receipt.read_at, Receipt.reaction, unread.scalar_subquery().label("unread"))
            .join(Notice, Notice.id == page.c.notice_id).join(Tenant, Tenant.id == Notice.tenant_id)
            .outerjoin(Receipt, and_(Receipt.notice_id == page.c.notice_id, Receipt.user_id == bindparam("user_id")))
            .order_by(page.c.delivered_at.desc(), page.c.notice_id.desc()))
    return stmt, unread


def inbox_page(user: Member, subject: Subject, *, limit: int, after: tuple[datetime, int] | None) -> dict[str, Any]:
    """One round trip: the page (with each notice, its tenant and the member's receipt) and the unread count.

    The inbox is the hottest read of the service (every member, after every shift): one prepared SQL statement
    and plain rows, no ORM objects (docs/benchmarks.md, inbox)."""
    scope = scope_of(user, subject)
    stmt, unread = _inbox_statements(scope.relays, after is not None)
    params: dict[str, Any] = {**_scope_params(scope), "user_id": user.id, "lim": limit + 1}
    if after is not None:
        params["at"], params["nid"] = after
    rows = db.session.execute(stmt, params).all()
    more = len(rows) > limit
    rows = rows[:limit]
    if rows:
        unread_count = rows[0].unread
    else:
        unread_count = db.session.execute(unread, params).scalar_one()
    items = []
    for r in rows:
        event = None
        if r.event_starts_at is not None:
            event = {"starts_at": r.event_starts_at, "ends_at": r.event_ends_at, "place": r.event_place,
                     "online_url": r.event_online_url}
        items.append({"notice": {"id": r.notice_id, "tenant": r.slug, "tenant_name": r.name, "title": r.title,
                                 "category": r.category, "body_html": r.body_html, "event": event,
                                 "published_at": r.published_at},
                      "delivered_at": r.delivered_at, "read_at": r.read_at, "reaction": r.reaction,
                      "for_relay": bool(r.relay_only) and not r.officers_only,
                      "officers": bool(r.officers_only)})
    cursor = (rows[-1].delivered_at, rows[-1].notice_id) if more else None
    return {"items": items, "cursor": cursor, "unread": unread_count}


def awaiting_rsvp(items: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """The meetings and seminars on an inbox page that the member has not said 出席 or 欠席 to, while there is still
    time (the event has not started): what the inbox lists as 出欠未回答. A notice held for relay is the officers'
    to pass on, not theirs to answer."""
    return [item for item in items
            if item["notice"]["event"] is not None and item["notice"]["event"]["starts_at"] > now
            and item["reaction"] not in ("attend", "absent") and not item["for_relay"]]


@dataclass(frozen=True)
class Target:
    """A notice in this member's inbox, with what they already did with it: all a read mark or a stamp needs, in
    the one round trip `receipt_target` makes. Named like the Notice columns it carries, so either can be passed."""

    id: int
    category: str
    tenant_id: int
    delivered_at: datetime
    relay_only: bool
    read_at: datetime | None
    reaction: str | None
    shared_with_organizer: bool


@lru_cache(maxsize=4)
def _target_statement(relays: bool):  # type: ignore[no-untyped-def]
    # The same visibility as the inbox page, narrowed to one notice.
    visible = _grouped([*_visible_conditions(relays), Delivery.notice_id == bindparam("nid")]).subquery("v")
    return (select(Notice.id, Notice.category, Notice.tenant_id, visible.c.delivered_at, visible.c.relay_only,
                   Receipt.read_at, Receipt.reaction, Receipt.shared_with_organizer)
            .select_from(visible).join(Notice, Notice.id == visible.c.notice_id)
            .outerjoin(Receipt, and_(Receipt.notice_id == visible.c.notice_id,
                                     Receipt.user_id == bindparam("user_id"))))


def receipt_target(user: Member, subject: Subject, notice_id: int) -> Target | None:
    """The notice if it is in this user's inbox (else None), with their receipt, in one statement."""
    scope = scope_of(user, subject)
    row = db.session.execute(_target_statement(scope.relays), {
        **_scope_params(scope), "nid": notice_id, "user_id": user.id}).first()
    if row is None:
        return None
    return Target(row.id, row.category, row.tenant_id, row.delivered_at, bool(row.relay_only), row.read_at,
                  row.reaction, bool(row.shared_with_organizer))


def visible_ids(user: Member, subject: Subject):  # type: ignore[no-untyped-def]
    """The ids of the notices in this member's inbox, as a subquery with its values bound: the same conditions as
    the inbox page, for a list that narrows them further (a tenant's notices as a member sees them)."""
    scope = scope_of(user, subject)
    return (select(Delivery.notice_id).join(Notice, Notice.id == Delivery.notice_id)
            .where(*_visible_conditions(scope.relays)).params(**_scope_params(scope)))


def _state(notice_id: int, read_at: datetime | None, reaction: str | None, shared: bool) -> dict[str, Any]:
    return {"notice_id": notice_id, "read_at": read_at, "reaction": reaction, "shared_with_organizer": bool(shared)}


_READ_VALUES = ("read_at", "shared_with_organizer")
_STAMP_VALUES = ("reaction", "reacted_at", "shared_with_organizer", "read_at")


@lru_cache(maxsize=4)
def _upsert_statement(dialect: str, stamp: bool):  # type: ignore[no-untyped-def]
    """Insert the member's receipt or update it, in one statement that returns what is stored: two taps at once
    (two phones, a double tap) meet in the database's conflict rule instead of failing on the primary key. The
    first read time always stays. Built once per shape, like the inbox statements."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    names = _STAMP_VALUES if stamp else _READ_VALUES
    ins = insert(Receipt).values(notice_id=bindparam("notice_id"), user_id=bindparam("user_id"),
                                 tenant_id=bindparam("tenant_id"),
                                 **{n: bindparam(n, type_=Receipt.__table__.c[n].type) for n in names})
    new = ins.excluded
    changes: dict[str, Any] = {"read_at": func.coalesce(Receipt.read_at, new.read_at)}
    if stamp:
        changes.update(reaction=new.reaction, reacted_at=new.reacted_at,
                       shared_with_organizer=new.shared_with_organizer)
    return (ins.on_conflict_do_update(index_elements=[Receipt.notice_id, Receipt.user_id], set_=changes)
            .returning(Receipt.read_at, Receipt.reaction, Receipt.shared_with_organizer))


def _upsert(user: Member, notice_id: int, values: dict[str, Any], *, stamp: bool) -> dict[str, Any]:
    stmt = _upsert_statement(db.session.get_bind().dialect.name, stamp)
    row = db.session.execute(stmt, {"notice_id": notice_id, "user_id": user.id, "tenant_id": user.tenant_id,
                                    **values}).one()
    touch_user(user.id)
    db.session.commit()
    return _state(notice_id, row.read_at, row.reaction, row.shared_with_organizer)


def mark_read(user: Member, notice: Notice | Target) -> dict[str, Any]:
    """Mark read (idempotent): the first read time stays. Already read, as a Target knows, writes nothing."""
    if isinstance(notice, Target) and notice.read_at is not None:
        return _state(notice.id, notice.read_at, notice.reaction, notice.shared_with_organizer)
    return _upsert(user, notice.id, {"read_at": utcnow(), "shared_with_organizer": False}, stamp=False)


def react(user: Member, notice: Notice | Target, stamp: str | None) -> dict[str, Any]:
    now = utcnow()
    # F4: only an `attend` to a federation seminar shares the member's name, kana and union with the organizer.
    shared = bool(stamp == "attend" and notice.category == "seminar" and notice.tenant_id != user.tenant_id)
    values = {"reaction": stamp, "reacted_at": now if stamp else None, "shared_with_organizer": shared,
              "read_at": now if stamp else None}  # pressing a stamp means it was read
    return _upsert(user, notice.id, values, stamp=True)


# --- officers and authors -----------------------------------------------------------------------------------------

def _zero_reactions() -> dict[str, int]:
    return {"attend": 0, "absent": 0, "read": 0}


def stats(notice: Notice) -> dict[str, Any]:
    """Counts only (F4): per union for federation notices, never who."""
    per: dict[int, dict[str, Any]] = {}
    order: dict[int, tuple[str, str]] = {}
    for tenant_id, slug, kana_key, for_relay, recipients in db.session.execute(
        select(Delivery.tenant_id, Tenant.slug, Tenant.kana_key, Delivery.for_relay, func.sum(Delivery.recipients))
        .join(Tenant, Tenant.id == Delivery.tenant_id).where(Delivery.notice_id == notice.id)
        .group_by(Delivery.tenant_id, Tenant.slug, Tenant.kana_key, Delivery.for_relay)
    ):
        order[tenant_id] = tenant_key(kana_key, slug)
        entry = per.setdefault(tenant_id, {"union": slug, "recipients": 0, "delivered": 0, "read": 0,
                                           "reactions": _zero_reactions(), "mode": "relay"})
        if not for_relay:
            entry["mode"] = "members"
            entry["recipients"] = int(recipients or 0)
        elif entry["mode"] == "relay":
            entry["recipients"] = int(recipients or 0)
    for tenant_id, read in db.session.execute(
        select(Receipt.tenant_id, func.count()).where(Receipt.notice_id == notice.id, Receipt.read_at.is_not(None))
        .group_by(Receipt.tenant_id)
    ):
        if tenant_id in per:
            per[tenant_id]["read"] = read
    for tenant_id, reaction, count in db.session.execute(
        select(Receipt.tenant_id, Receipt.reaction, func.count()).where(
            Receipt.notice_id == notice.id, Receipt.reaction.is_not(None)).group_by(Receipt.tenant_id,
                                                                                    Receipt.reaction)
    ):
        if tenant_id in per:
            per[tenant_id]["reactions"][reaction] = count
    from federation.push.records import delivered_counts

    for tenant_id, delivered in delivered_counts(notice.id).items():
        if tenant_id in per:
            per[tenant_id]["delivered"] = delivered
    unions = [per[tenant_id] for tenant_id in sorted(per, key=order.__getitem__)]  # 50-on order of the reading
    total = {"recipients": sum(e["recipients"] for e in unions), "delivered": 0, "read": 0,
             "reactions": _zero_reactions()}
    federation_notice = notice.tenant.kind == "federation"
    # The small-group rule (F4): the federation sees counts per union, but a union reached with fewer than
    # SMALL_GROUP people (a tiny union, or its officers only) would show what one or two persons did. Their read,
    # push and stamp figures are withheld per union, and from the totals too unless the withheld unions together
    # are no small group (else the totals minus the shown rows would give them away).
    withheld = [e for e in unions if federation_notice and too_small(e["recipients"])]
    in_totals = [e for e in unions if e not in withheld]
    if not too_small(sum(e["recipients"] for e in withheld)):
        in_totals = unions
    for e in in_totals:
        total["delivered"] += e["delivered"]
        total["read"] += e["read"]
        for k, v in e["reactions"].items():
            total["reactions"][k] += v
    for e in unions:
        e["withheld"] = e in withheld
        if e["withheld"]:
            e["delivered"] = e["read"] = e["reactions"] = None
    total["withheld_recipients"] = sum(e["recipients"] for e in withheld if e not in in_totals)
    chunks_done = db.session.execute(select(func.count()).select_from(CascadeChunk)
                                     .where(CascadeChunk.notice_id == notice.id)).scalar_one()
    total["progress"] = {"status": notice.status, "unions_targeted": notice.cascade_targets,
                         "unions_reached": len(unions), "jobs": notice.cascade_chunks, "jobs_done": chunks_done,
                         "done": notice.cascade_done_at is not None, "done_at": notice.cascade_done_at}
    if notice.tenant.kind == "federation":
        total["unions"] = unions
    return total


def receipts_for_union(union: Tenant, notice: Notice, *, reaction: str | None = None) -> list[dict[str, Any]]:
    """Who in this union read or reacted, in 50-on order of their reading: the union's own officers only."""
    deliveries = db.session.execute(select(Delivery.unit_path, Delivery.for_relay).where(
        Delivery.notice_id == notice.id, Delivery.tenant_id == union.id)).all()
    member_paths = tuple(sorted({d.unit_path for d in deliveries if not d.for_relay}))
    if member_paths:
        people = members_in_scope(union.id, member_paths)
    else:
        from tenants.models import RoleGrant

        people = select(RoleGrant.user_id).where(RoleGrant.tenant_id == union.id, RoleGrant.role == "union_admin")
    stmt = (select(User.login_id, User.display_name, User.name_kana, Receipt.read_at, Receipt.reaction)
            .outerjoin(Receipt, and_(Receipt.user_id == User.id, Receipt.notice_id == notice.id))
            .where(User.id.in_(people), User.tenant_id == union.id))
    if reaction:
        stmt = stmt.where(Receipt.reaction == reaction)
    rows = db.session.execute(stmt.order_by(User.kana_key, User.id)).all()
    return [dict(r._mapping) for r in rows]


def attendees_for_organizer(notice: Notice) -> list[dict[str, Any]]:
    """F4: the members who chose to share by pressing attend on a federation seminar: name, kana and union."""
    rows = db.session.execute(
        select(User.display_name, User.name_kana, Tenant.slug.label("union"), Receipt.reaction)
        .join(User, User.id == Receipt.user_id).join(Tenant, Tenant.id == Receipt.tenant_id)
        .where(Receipt.notice_id == notice.id, Receipt.shared_with_organizer.is_(True),
               Receipt.reaction == "attend")
        .order_by(User.kana_key, User.id)).all()
    return [{"login_id": None, "display_name": r.display_name, "name_kana": r.name_kana, "union": r.union,
             "read_at": None, "reaction": r.reaction} for r in rows]
