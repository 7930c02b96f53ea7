"""Reading notices as an officer or an author: the one path for the API views and the pages alike.

Every function takes the tenant that `access_tenant` returned and the caller (`Subject`), and narrows by both:

- the tenant: a notice is its author tenant's, or it was delivered to the union asking;
- the officer's scope: a block or council officer (`unit_editor`) reads only the notices they may edit themselves
  (`service.may_edit`: the ones they wrote), in lists, in the single view, in stats and in receipts alike. Before
  this module each of those asked its own question, and the list with `?status=draft`, the stats and the receipts
  answered for the whole federation while the single view said 404.

A notice outside the caller's reach is `Denied(404)`, exactly as a notice that does not exist (F8).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from federation.dbutil import get_row
from federation.extensions import db
from federation.firewall import Denied, Subject
from federation.notices import audience as aud
from federation.notices import inbox
from federation.notices.models import Delivery, Notice
from tenants.models import Affiliation, OrgUnit, Tenant
from tenants.ordering import TENANT_ORDER, tree_order


def whole_tenant(subject: Subject) -> bool:
    """Whether the caller reads every notice of their tenant (fed_editor, union_editor...), or only their own."""
    return aud.writes_for_whole_tenant(subject)


def _officer_filter(stmt, subject: Subject):  # type: ignore[no-untyped-def]
    # The same rule as service.may_edit: a unit officer's notices are the ones they wrote.
    return stmt if whole_tenant(subject) else stmt.where(Notice.author_id == subject.user_id)


def officer_notices(tenant: Tenant, subject: Subject, *, status: str | None = None, before_id: int | None = None,
                    limit: int = 100) -> list[Notice]:
    """The tenant's own notices an officer may see (every status), newest first, `limit + 1` at most for paging."""
    stmt = _officer_filter(select(Notice).where(Notice.tenant_id == tenant.id), subject)
    if status:
        stmt = stmt.where(Notice.status == status)
    if before_id is not None:
        stmt = stmt.where(Notice.id < before_id)
    return list(db.session.execute(stmt.order_by(Notice.id.desc()).limit(limit)).scalars())


def received_ids(union: Tenant):  # type: ignore[no-untyped-def]
    """Federation notices delivered to this union (to its members or to its officers for relay), as a subquery."""
    return select(Delivery.notice_id).where(Delivery.tenant_id == union.id)


def received_notices_page(union: Tenant, *, before_id: int | None, limit: int) -> list[Notice]:
    stmt = select(Notice).where(Notice.id.in_(received_ids(union)), Notice.tenant_id != union.id,
                                Notice.status == "published")
    if before_id is not None:
        stmt = stmt.where(Notice.id < before_id)
    return list(db.session.execute(stmt.order_by(Notice.id.desc()).limit(limit)).scalars())


def recipient_notices_page(tenant: Tenant, caller: Any, subject: Subject, *, before_id: int | None,
                           limit: int) -> list[Notice]:
    """The tenant's notices that are in the caller's inbox, however many there are."""
    stmt = select(Notice).where(Notice.tenant_id == tenant.id, Notice.id.in_(inbox.visible_ids(caller, subject)))
    if before_id is not None:
        stmt = stmt.where(Notice.id < before_id)
    return list(db.session.execute(stmt.order_by(Notice.id.desc()).limit(limit)).scalars())


def officer_notice(tenant: Tenant, subject: Subject, notice_id: int) -> Notice:
    """One of the tenant's own notices, for an officer who may see it: its editors, stats and organizer's list."""
    notice = get_row(Notice, notice_id)
    if notice is None or notice.tenant_id != tenant.id:
        raise Denied(404)
    if not whole_tenant(subject) and notice.author_id != subject.user_id:
        raise Denied(404)  # another council's notice: as if it did not exist (F8)
    return notice


def in_inbox(caller: Any, subject: Subject, notice_id: int) -> inbox.Target:
    """A notice in the caller's own inbox, with their receipt: what a read mark or a stamp needs. Not in it (another
    union's, retracted, never sent to them): as if it did not exist (F5)."""
    found = inbox.receipt_target(caller, subject, notice_id)
    if found is None:
        raise Denied(404)
    return found


def opened_notice(caller: Any, subject: Subject, notice_id: int) -> tuple[inbox.Target, Notice]:
    """A notice a member opens from their inbox, as delivered to them."""
    target = in_inbox(caller, subject, notice_id)
    return target, db.session.get(Notice, target.id)


def recipient_notice(tenant: Tenant, caller: Any, subject: Subject, notice_id: int) -> Notice:
    """A notice as it reached the caller: only while it is in their inbox, so a union's notice never leaks by id
    (F1, F5), and only under the tenant that wrote it or the caller's own."""
    notice = get_row(Notice, notice_id)
    if notice is None or inbox.receipt_target(caller, subject, notice_id) is None:
        raise Denied(404)
    if notice.tenant_id != tenant.id and tenant.slug != subject.tenant:
        raise Denied(404)
    return notice


def reached_union(union: Tenant, notice: Notice) -> bool:
    """The union wrote the notice or received it: only then may its officers see who of theirs read it."""
    return notice.tenant_id == union.id or db.session.execute(select(Delivery.id).where(
        Delivery.notice_id == notice.id, Delivery.tenant_id == union.id)).first() is not None


@dataclass
class Receipts:
    notice: Notice
    organizer: bool  # a federation's own notice: only the members who shared their attendance (F4)
    items: list[dict[str, Any]]


def receipts(tenant: Tenant, subject: Subject, notice_id: int, *, reaction: str | None = None) -> Receipts:
    """Who read or reacted. A union's officers: their own members, for a notice their union wrote or received.
    A federation's officers: the attendees of their own notices who chose to share (F4). Nothing else."""
    if tenant.kind == "federation":
        notice = officer_notice(tenant, subject, notice_id)
        return Receipts(notice, True, inbox.attendees_for_organizer(notice))
    notice = get_row(Notice, notice_id)
    if notice is None or not reached_union(tenant, notice):
        raise Denied(404)
    if notice.tenant_id == tenant.id:
        notice = officer_notice(tenant, subject, notice_id)
    return Receipts(notice, False, inbox.receipts_for_union(tenant, notice, reaction=reaction))


def stats(tenant: Tenant, subject: Subject, notice_id: int) -> dict[str, Any]:
    """Counts only (F4) of one of the tenant's own notices the officer may see."""
    return inbox.stats(officer_notice(tenant, subject, notice_id))


# --- what the pages show around notices ----------------------------------------------------------------------------

@dataclass
class TreeUnion:
    slug: str
    name: str
    cascade: str


@dataclass
class TreeNode:
    id: int
    name: str
    kind: str
    prefecture: str | None
    selectable: bool = True
    children: list[TreeNode] = field(default_factory=list)
    unions: list[TreeUnion] = field(default_factory=list)


def audience_tree(tenant: Tenant, subject: Subject) -> tuple[list[TreeNode], bool]:
    """The tree an author targets (block → council → union, or branch → workplace) and whether "everyone" is open
    to them. A block or council officer sees only their own subtree: the audience check would refuse the rest."""
    units = tree_order(db.session.execute(select(OrgUnit).where(OrgUnit.tenant_id == tenant.id)).scalars())
    scope = aud.unit_scope(subject)
    scope_paths = [u.path for u in scope] if scope is not None else None
    nodes = {u.id: TreeNode(u.id, u.name, u.kind, u.prefecture) for u in units}
    paths = {u.id: u.path for u in units}

    def inside(unit_id: int) -> bool:
        return scope_paths is None or any(paths[unit_id].startswith(p) for p in scope_paths)

    roots: list[TreeNode] = []
    for u in units:
        if not inside(u.id):
            continue
        if u.parent_id is not None and u.parent_id in nodes and inside(u.parent_id):
            nodes[u.parent_id].children.append(nodes[u.id])
        else:
            roots.append(nodes[u.id])
    if tenant.kind == "federation":
        rows = db.session.execute(
            select(Tenant.slug, Tenant.name, Affiliation.cascade, Affiliation.council_id).select_from(Affiliation)
            .join(Tenant, Tenant.id == Affiliation.union_id)
            .where(Affiliation.federation_id == tenant.id, Affiliation.status == "active")
            .order_by(*TENANT_ORDER))
        for slug, name, cascade, council_id in rows:
            if council_id in nodes and inside(council_id):
                nodes[council_id].unions.append(TreeUnion(slug, name, cascade))
    return roots, scope is None


@dataclass
class Received:
    notice: Notice
    delivered_at: datetime
    to_members: bool  # the members already have it (opted in, or relayed)
    relayed_by: str | None


def received_notices(union: Tenant, *, limit: int = 100) -> list[Received]:
    """Federation notices delivered to this union, newest first, with whether its members have them yet."""
    rows = db.session.execute(
        select(Delivery.notice_id, func.min(Delivery.delivered_at), Delivery.for_relay, func.max(Delivery.relayed_by))
        .join(Notice, Notice.id == Delivery.notice_id)
        .where(Delivery.tenant_id == union.id, Notice.tenant_id != union.id, Notice.status == "published")
        .group_by(Delivery.notice_id, Delivery.for_relay)).all()
    by_notice: dict[int, dict[str, Any]] = {}
    for notice_id, at, for_relay, relayed_by in rows:
        entry = by_notice.setdefault(notice_id, {"at": at, "members": False, "relayed_by": None})
        entry["at"] = min(entry["at"], at)
        if not for_relay:
            entry["members"] = True
            entry["relayed_by"] = relayed_by
    if not by_notice:
        return []
    notices = {n.id: n for n in db.session.execute(select(Notice).where(Notice.id.in_(by_notice))).scalars()}
    out = [Received(notices[nid], e["at"], e["members"], e["relayed_by"]) for nid, e in by_notice.items()]
    out.sort(key=lambda r: (r.delivered_at, r.notice.id), reverse=True)
    return out[:limit]
