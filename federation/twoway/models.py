"""What comes back up a notice: comments, questions, officers' replies and the answers to them.

Every row lives in one thread, and a thread belongs to one union (`tenant_id`): the union whose notice it is, the
union of the member who asked, or the union whose officers reply on the officers' channel. Nothing in one union's
thread is ever read by another union (F5); what the federation sees of a thread is what was addressed to it.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from federation.extensions import UTCDateTime, db, utcnow
from tenants.models import Tenant, User

# comment   a recipient's comment on a union notice that allows comments, seen by every recipient in the union
# question  a member's question on a federation notice, sent to the author tenant's editors with name and union
# officer   a message in one union's thread of the officers' channel (a federation notice to officers only)
# answer    an editor's answer to a question or officer message; `public` publishes it to every recipient
KINDS = ("comment", "question", "officer", "answer")


class Comment(db.Model):
    __tablename__ = "notice_comments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    notice_id: Mapped[int] = mapped_column(ForeignKey("notices.id", ondelete="CASCADE"))
    # The union whose thread this is (never the federation: a federation editor's answer sits in the union's thread).
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("notice_comments.id", ondelete="CASCADE"))
    public: Mapped[bool] = mapped_column(Boolean, default=False)
    body: Mapped[str] = mapped_column(Text)
    # A question is sent only after the member agreed that their name and union go with it (F4).
    consent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    hidden_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    hidden_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    author: Mapped[User] = relationship(foreign_keys=[author_id], lazy="joined")
    tenant: Mapped[Tenant] = relationship(lazy="joined")

    __table_args__ = (
        CheckConstraint("kind IN ('comment', 'question', 'officer', 'answer')", name="kind"),
        Index("ix_notice_comments_thread", "notice_id", "tenant_id", "id"),
        Index("ix_notice_comments_parent", "parent_id"),
    )
