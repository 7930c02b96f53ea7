"""Browser push subscriptions, and one record per (notice, subscription, kind) of what was sent, so a retried job
never pushes the same message to the same device twice."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, delete, func, select
from sqlalchemy.orm import Mapped, mapped_column

from federation.extensions import UTCDateTime, db, utcnow


class PushSubscription(db.Model):
    __tablename__ = "push_subscriptions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    endpoint: Mapped[str] = mapped_column(String(1000), unique=True)
    p256dh: Mapped[str] = mapped_column(String(120))
    auth: Mapped[str] = mapped_column(String(60))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    # The sign-in it was registered in: signing out removes it (forget_session), so a shared PC's browser stops
    # getting the previous person's notices.
    session_id: Mapped[int | None] = mapped_column(ForeignKey("auth_sessions.id", ondelete="SET NULL"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def info(self) -> dict[str, object]:
        return {"endpoint": self.endpoint, "keys": {"p256dh": self.p256dh, "auth": self.auth}}


class PushSend(db.Model):
    """A push that the push service accepted. Written right after the 201, checked before every send."""

    __tablename__ = "push_sends"

    notice_id: Mapped[int] = mapped_column(ForeignKey("notices.id", ondelete="CASCADE"), primary_key=True)
    subscription_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), primary_key=True)  # notice | reminder | update
    user_id: Mapped[int] = mapped_column(Integer)
    tenant_id: Mapped[int] = mapped_column(Integer)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_push_sends_notice_tenant", "notice_id", "tenant_id"),)


def delivered_counts(notice_id: int) -> dict[int, int]:
    """Per union: how many recipients have the notice on at least one device (a push the service accepted)."""
    rows = db.session.execute(
        select(PushSend.tenant_id, func.count(func.distinct(PushSend.user_id)))
        .where(PushSend.notice_id == notice_id, PushSend.kind == "notice").group_by(PushSend.tenant_id))
    return {tenant_id: count for tenant_id, count in rows}


def forget_session(session_id: int) -> None:
    """Remove the push subscriptions registered in this sign-in; the caller's commit (ending the session) keeps it."""
    db.session.execute(delete(PushSubscription).where(PushSubscription.session_id == session_id))
