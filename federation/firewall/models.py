"""The policy version: one counter bumped in the same transaction as every change to roles, affiliations or cascade
states. Every request and every job reads it (one scalar, folded into the session lookup), so a change made in one
process is seen by every other on its very next request (F7)."""
from __future__ import annotations

from sqlalchemy import Integer, update
from sqlalchemy.orm import Mapped, mapped_column

from federation.extensions import db


class PolicyState(db.Model):
    __tablename__ = "policy_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=1)


def bump_policy_version() -> None:
    """Call inside the transaction that changes policy data; the commit publishes the new version atomically."""
    result = db.session.execute(update(PolicyState).where(PolicyState.id == 1).values(version=PolicyState.version + 1))
    if result.rowcount == 0:  # type: ignore[attr-defined]
        db.session.add(PolicyState(id=1, version=2))
