"""A federation's report request, and every version of each union's answer to it.

An answer is never updated in place: each submission is a new row (`version` 1, 2, ...), the current answer is the
highest version. `values` is JSON keyed by the request's field keys; nothing else of the union is stored here.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from federation.extensions import UTCDateTime, db, utcnow

TYPES = ("integer", "decimal", "text", "choice")


class ReportRequest(db.Model):
    __tablename__ = "report_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))  # the federation
    title: Mapped[str] = mapped_column(String(200))
    fields: Mapped[str] = mapped_column(Text)  # JSON [{key, label, type, choices?, unit?, required}]
    audience: Mapped[str] = mapped_column(Text)  # JSON, as for federation notices
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_report_requests_tenant", "tenant_id", "id"),)


class ReportAnswer(db.Model):
    __tablename__ = "report_answers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("report_requests.id", ondelete="CASCADE"))
    union_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    values: Mapped[str] = mapped_column(Text)  # JSON {key: value}
    submitted_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("report_id", "union_id", "version", name="uq_report_answers_version"),
                      Index("ix_report_answers_union", "union_id", "report_id"))
