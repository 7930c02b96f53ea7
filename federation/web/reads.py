"""What the pages read beyond the service functions: each takes the tenant that `access_tenant` returned (or the
signed-in user) and filters by it, so no page ever reads across a tenant boundary on its own."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from federation.audit.chain import AuditEntry
from federation.dbutil import MAX_ROW_ID
from federation.extensions import db
from federation.firewall import Subject
from federation.notices import audience as aud
from federation.notices.models import Delivery, Notice
from federation.push.records import PushSubscription
from tenants.models import Affiliation, OrgUnit, Tenant, User


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
    units = list(db.session.execute(select(OrgUnit).where(OrgUnit.tenant_id == tenant.id)
                                    .order_by(OrgUnit.path)).scalars())
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
            .order_by(Tenant.slug))
        for slug, name, cascade, council_id in rows:
            if council_id in nodes and inside(council_id):
                nodes[council_id].unions.append(TreeUnion(slug, name, cascade))
    return roots, scope is None


def units_by_id(tenant: Tenant) -> dict[int, OrgUnit]:
    return {u.id: u for u in db.session.execute(select(OrgUnit).where(OrgUnit.tenant_id == tenant.id)).scalars()}


def own_notices(tenant: Tenant, *, status: str | None, limit: int = 100) -> list[Notice]:
    stmt = select(Notice).where(Notice.tenant_id == tenant.id)
    if status:
        stmt = stmt.where(Notice.status == status)
    return list(db.session.execute(stmt.order_by(Notice.id.desc()).limit(limit)).scalars())


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


def reached_union(union: Tenant, notice: Notice) -> bool:
    """The union wrote the notice or received it: only then may its officers see who of theirs read it."""
    return notice.tenant_id == union.id or db.session.execute(select(Delivery.id).where(
        Delivery.notice_id == notice.id, Delivery.tenant_id == union.id)).first() is not None


def live_affiliation_of(union: Tenant) -> Affiliation | None:
    return db.session.execute(select(Affiliation).where(
        Affiliation.union_id == union.id, Affiliation.status != "ended")).scalar_one_or_none()


def my_devices(user: User) -> list[PushSubscription]:
    return list(db.session.execute(select(PushSubscription).where(PushSubscription.user_id == user.id)
                                   .order_by(PushSubscription.id)).scalars())


def my_device(user: User, device_id: int) -> PushSubscription | None:
    sub = db.session.get(PushSubscription, device_id)
    return sub if sub is not None and sub.user_id == user.id else None


def tenant_names(slugs: set[str]) -> dict[str, str]:
    if not slugs:
        return {}
    return dict(db.session.execute(select(Tenant.slug, Tenant.name).where(Tenant.slug.in_(slugs))).all())


def all_tenants() -> list[Tenant]:
    """For the auditor's pickers (after the firewall allowed `tenant read` on the platform)."""
    return list(db.session.execute(select(Tenant).order_by(Tenant.kind, Tenant.slug)).scalars())


def audit_page(*, tenant: str | None, kind: str | None, after: int | None, limit: int) -> list[AuditEntry]:
    stmt = select(AuditEntry).order_by(AuditEntry.seq.desc())
    if after is not None and after <= MAX_ROW_ID:  # beyond every sequence number: no bound at all
        stmt = stmt.where(AuditEntry.seq < after)
    if tenant:
        stmt = stmt.where((AuditEntry.tenant == tenant) | (AuditEntry.other_tenant == tenant))
    if kind:
        stmt = stmt.where(AuditEntry.kind.startswith(kind))
    return list(db.session.execute(stmt.limit(limit)).scalars())
