"""Application form types, the applications filed with them, and the history of every step each one took."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from federation.extensions import UTCDateTime, db, utcnow
from tenants.models import User

FIELD_KINDS = ("text", "number", "date", "choice")
# `first_approved` exists only for two-step types: the first approver said yes, the second has not spoken yet.
STATUSES = ("pending", "first_approved", "approved", "rejected", "withdrawn")
OPEN = ("pending", "first_approved")


class ApplicationType(db.Model):
    """A form such as 慶弔費申請: its fields (JSON, as validated) and the role that approves each step."""

    __tablename__ = "application_types"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    fields: Mapped[str] = mapped_column(Text)
    approver_role: Mapped[str] = mapped_column(String(40))
    second_approver_role: Mapped[str | None] = mapped_column(String(40))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_application_types_tenant", "tenant_id"),)


class Application(db.Model):
    __tablename__ = "applications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    type_id: Mapped[int] = mapped_column(ForeignKey("application_types.id", ondelete="CASCADE"))
    applicant_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    values: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    type: Mapped[ApplicationType] = relationship(lazy="joined")
    applicant: Mapped[User] = relationship(lazy="joined")

    __table_args__ = (
        CheckConstraint("status IN ('pending', 'first_approved', 'approved', 'rejected', 'withdrawn')",
                        name="status"),
        Index("ix_applications_tenant_status", "tenant_id", "status"),
        Index("ix_applications_applicant", "applicant_id"),
    )


class ApplicationStep(db.Model):
    """One change of an application's status. Rows are only ever added, so the history cannot be rewritten by a
    later decision."""

    __tablename__ = "application_steps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id", ondelete="CASCADE"))
    actor_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    comment: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    actor: Mapped[User] = relationship(lazy="joined")

    __table_args__ = (Index("ix_application_steps_application", "application_id", "id"),)


class ApplicationAttachment(db.Model):
    """A file sent with an application (会葬礼状, 診断書). The bytes live in the document storage under a random key;
    tenant_id is kept on the row so a lookup can never cross unions even if an id is guessed."""

    __tablename__ = "application_attachments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id", ondelete="CASCADE"))
    storage_key: Mapped[str] = mapped_column(String(100))
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(50))
    size: Mapped[int] = mapped_column(Integer)
    uploaded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_application_attachments_application", "application_id", "id"),)
