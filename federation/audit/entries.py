"""Reading the audit log: the one query behind the API's /audit/log and the auditor's log page. Entries carry
only who did what to which tenant (no content), and only the auditor's roles reach them (`audit read`)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select

from federation.audit.chain import AuditEntry
from federation.dbutil import MAX_ROW_ID
from federation.extensions import db


def page(*, tenant: str | None = None, actor: str | None = None, kind: str | None = None,
         since: datetime | None = None, after: int | None = None, before: int | None = None, limit: int,
         newest_first: bool = False) -> list[AuditEntry]:
    """Up to `limit` entries after sequence number `after` (oldest first) or before `before` (newest first)."""
    order = AuditEntry.seq.desc() if newest_first else AuditEntry.seq
    stmt = select(AuditEntry).order_by(order)
    if after is not None:
        stmt = stmt.where(AuditEntry.seq > min(after, MAX_ROW_ID))
    if before is not None and before <= MAX_ROW_ID:  # beyond every sequence number: no bound at all
        stmt = stmt.where(AuditEntry.seq < before)
    if tenant:
        stmt = stmt.where(or_(AuditEntry.tenant == tenant, AuditEntry.other_tenant == tenant))
    if actor:
        stmt = stmt.where(AuditEntry.actor == actor)
    if kind:
        stmt = stmt.where(AuditEntry.kind.startswith(kind, autoescape=True))
    if since is not None:
        stmt = stmt.where(AuditEntry.at >= since)
    return list(db.session.execute(stmt.limit(limit)).scalars())
