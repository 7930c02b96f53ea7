"""Notices, their deliveries and what members did with them.

Delivery is resolved per union, not per member (docs/architecture.md, "Why deliveries are per union"): publishing
writes one `Delivery` row per (notice, union, unit scope, mode), and a member's inbox is the deliveries that cover
their union and unit. Per-member rows (`Receipt`) exist only for what a member did: read, react. A federation notice
reaches 200,000 members by writing a few hundred rows, and F2 is still decided per union at delivery time.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from federation.extensions import UTCDateTime, db, utcnow
from tenants.models import Tenant, User

CATEGORIES = ("general", "seminar", "meeting", "urgent")
STATUSES = ("draft", "scheduled", "published", "retracted")
STAMPS = ("attend", "absent", "read")


class Notice(db.Model):
    __tablename__ = "notices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)
    category: Mapped[str] = mapped_column(String(20), default="general")
    audience: Mapped[str] = mapped_column(Text)  # canonical JSON as validated
    event_starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    event_ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    event_place: Mapped[str | None] = mapped_column(String(200))
    event_online_url: Mapped[str | None] = mapped_column(String(500))
    reminder_lead_minutes: Mapped[int | None] = mapped_column(Integer)
    # starts_at minus the lead, kept as a column so "which reminders are due" is one indexed comparison everywhere.
    reminder_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(20), default="draft")
    publish_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    retracted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The cascade's own state: how many unions it aims at, and when every delivery job has finished.
    cascade_targets: Mapped[int | None] = mapped_column(Integer)
    cascade_chunks: Mapped[int | None] = mapped_column(Integer)
    cascade_done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reminder_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Two-way (docs/two-way.md): a union notice open to its recipients' comments; a federation notice on the
    # officers' channel (audience {"officers": true}), which reaches union officers only and is never relayed.
    comments: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    officers_only: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    tenant: Mapped[Tenant] = relationship(lazy="joined")
    author: Mapped[User] = relationship(lazy="joined")

    __table_args__ = (
        CheckConstraint("category IN ('general', 'seminar', 'meeting', 'urgent')", name="category"),
        CheckConstraint("status IN ('draft', 'scheduled', 'published', 'retracted')", name="status"),
        Index("ix_notices_tenant_created", "tenant_id", "created_at"),
        Index("ix_notices_due", "status", "publish_at"),
        Index("ix_notices_reminder", "status", "reminder_at"),
    )

    @property
    def has_event(self) -> bool:
        return self.event_starts_at is not None


class Delivery(db.Model):
    """A notice delivered to one union (or to a unit of it, `unit_path`, "" for the whole union), either to its
    members or, `for_relay`, to its union admins only. Unique per (notice, union, scope, mode): a delivery job that
    runs twice writes nothing the second time."""

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    notice_id: Mapped[int] = mapped_column(ForeignKey("notices.id", ondelete="CASCADE"))
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    unit_path: Mapped[str] = mapped_column(String(400), default="")
    for_relay: Mapped[bool] = mapped_column(Boolean, default=False)
    recipients: Mapped[int] = mapped_column(Integer, default=0)
    delivered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    relayed_by: Mapped[str | None] = mapped_column(String(300))

    __table_args__ = (
        UniqueConstraint("notice_id", "tenant_id", "unit_path", "for_relay", name="uq_deliveries_scope"),
        # Covers the inbox query entirely (an index-only scan): a union's deliveries are written notice by notice,
        # so without it every row of a member's inbox sits on a different heap page.
        Index("ix_deliveries_inbox", "tenant_id", "unit_path", "delivered_at", "notice_id", "for_relay"),
    )


class Receipt(db.Model):
    """What one member did with one notice: read it, reacted. Written only when they act."""

    __tablename__ = "receipts"

    notice_id: Mapped[int] = mapped_column(ForeignKey("notices.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reaction: Mapped[str | None] = mapped_column(String(10))
    reacted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # F4: an `attend` to a federation seminar shares name, kana and union with the organizer; nothing else does.
    shared_with_organizer: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (
        CheckConstraint("reaction IS NULL OR reaction IN ('attend', 'absent', 'read')", name="reaction"),
        Index("ix_receipts_notice_tenant", "notice_id", "tenant_id"),
        Index("ix_receipts_user", "user_id"),
    )


class CascadeChunk(db.Model):
    """One finished delivery job of a notice's cascade: how far the cascade has got, and when it is complete."""

    __tablename__ = "cascade_chunks"

    notice_id: Mapped[int] = mapped_column(ForeignKey("notices.id", ondelete="CASCADE"), primary_key=True)
    chunk: Mapped[int] = mapped_column(Integer, primary_key=True)
    unions: Mapped[int] = mapped_column(Integer)
    delivered: Mapped[int] = mapped_column(Integer)
    done_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
