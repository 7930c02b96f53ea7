"""Surveys, their questions, and answers.

Anonymity (why two unlinked tables): an anonymous survey must let officers count who has not answered (response
rate per branch, reminders) and must refuse a second answer, yet nobody, an officer or someone reading the database,
may tie an answer to a member. So an answer (`SurveyResponse`) carries no user id, a random id rather than a
sequence, and no timestamp; the fact that a member answered (`SurveyParticipant`) is a separate row keyed by
(survey, user) with no timestamp either. Nothing is shared between the two rows but the survey id, and neither
records when it was written, so they cannot be joined by id or by clock. On SQLite both tables are WITHOUT ROWID,
so even the hidden row number gives no order of insertion: answers are stored in the order of their random ids,
participants in the order of user ids. (PostgreSQL keeps heap order; what remains is documented in
docs/documents-and-surveys.md.)
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from federation.extensions import UTCDateTime, db, utcnow

KINDS = ("single", "multiple", "text")


class Survey(db.Model):
    __tablename__ = "surveys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    anonymous: Mapped[bool] = mapped_column(Boolean, default=False)
    opens_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closes_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # When the push saying it is open went out; claimed once by a conditional UPDATE (see reminders.announce_due).
    announced_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (Index("ix_surveys_tenant_created", "tenant_id", "created_at"),)


class SurveyQuestion(db.Model):
    __tablename__ = "survey_questions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    survey_id: Mapped[int] = mapped_column(ForeignKey("surveys.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(10))
    text: Mapped[str] = mapped_column(String(500))
    options: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of labels; [] for free text
    required: Mapped[bool] = mapped_column(Boolean, default=True)

    __table_args__ = (CheckConstraint("kind IN ('single', 'multiple', 'text')", name="kind"),)


class SurveyResponse(db.Model):
    """One member's answers. `user_id` is set only for named surveys; see the module note for anonymous ones."""

    __tablename__ = "survey_responses"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # random, never a sequence
    survey_id: Mapped[int] = mapped_column(ForeignKey("surveys.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    answers: Mapped[str] = mapped_column(Text)  # JSON {question_id: option index | [indexes] | text}

    __table_args__ = ({"sqlite_with_rowid": False},)


class SurveyParticipant(db.Model):
    """That a member has answered a survey: what makes "only once" and the response rate work, and nothing else."""

    __tablename__ = "survey_participants"

    survey_id: Mapped[int] = mapped_column(ForeignKey("surveys.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)

    __table_args__ = ({"sqlite_with_rowid": False},)
