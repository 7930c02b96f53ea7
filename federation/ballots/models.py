"""Ballots, their trustees, the frozen roll, and the board of encrypted ballots.

What links whom (docs/ballots.md): the roll (`BallotVoter`) says who may vote and who has voted, nothing more. The
board (`BallotVote`) holds the encrypted ballots; a row carries no user id, no timestamp and no sequence: its key is
a slot, an HMAC of (ballot, voter) under a key that is not in the database, so a re-cast replaces the voter's
earlier ballot and someone holding the database alone cannot say whose ballot a row is. Both tables are WITHOUT
ROWID on SQLite so not even the hidden row number keeps the order of casting. A choice is never stored: only its
encryption under the trustees' joint key, whose secret parts are files outside the database.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from federation.extensions import UTCDateTime, db, utcnow

KINDS = ("election", "referendum", "strike")
STATUSES = ("draft", "open", "closed", "tallied")


class Ballot(db.Model):
    __tablename__ = "ballots"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str] = mapped_column(String(20))
    options: Mapped[str] = mapped_column(Text)  # JSON [{id, label}]
    choose_min: Mapped[int] = mapped_column(Integer)
    choose_max: Mapped[int] = mapped_column(Integer)
    electorate: Mapped[str] = mapped_column(Text)  # JSON {"all": true} | {"units": [ids]}
    opens_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closes_at: Mapped[datetime] = mapped_column(UTCDateTime)
    quorum: Mapped[int | None] = mapped_column(Integer)  # per cent of the eligible who must vote
    status: Mapped[str] = mapped_column(String(10), default="draft")
    public_key: Mapped[str | None] = mapped_column(String(64))  # the trustees' joint key, set at opening
    fingerprint: Mapped[str | None] = mapped_column(String(64))  # sha256 of the definition and keys, at opening
    encrypted_tally: Mapped[str | None] = mapped_column(Text)  # JSON [{a, b}] per option, set at closing
    result: Mapped[str | None] = mapped_column(Text)  # JSON {counts}, set by the tally
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    tallied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint("kind IN ('election', 'referendum', 'strike')", name="kind"),
        CheckConstraint("status IN ('draft', 'open', 'closed', 'tallied')", name="status"),
        Index("ix_ballots_tenant_created", "tenant_id", "created_at"),
        Index("ix_ballots_status_closes", "status", "closes_at"),
    )


class BallotTrustee(db.Model):
    """A trustee's public key and proof of knowing its secret; later their share of the tally's decryption."""

    __tablename__ = "ballot_trustees"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ballot_id: Mapped[int] = mapped_column(ForeignKey("ballots.id", ondelete="CASCADE"), index=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    public_key: Mapped[str] = mapped_column(String(64))
    key_proof: Mapped[str] = mapped_column(Text)  # JSON {c, s}
    decryption: Mapped[str | None] = mapped_column(Text)  # JSON [{factor, c, s}] per option
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class BallotVoter(db.Model):
    """One row of the frozen roll: eligible, and whether they have voted. No time, no link to a ballot."""

    __tablename__ = "ballot_voters"

    ballot_id: Mapped[int] = mapped_column(ForeignKey("ballots.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    unit_id: Mapped[int | None] = mapped_column(Integer)  # the member's unit when the roll was frozen
    voted: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = ({"sqlite_with_rowid": False},)


class BallotVote(db.Model):
    """One counted encrypted ballot on the board. See the module note for what it does not carry."""

    __tablename__ = "ballot_votes"

    slot: Mapped[str] = mapped_column(String(64), primary_key=True)
    ballot_id: Mapped[int] = mapped_column(ForeignKey("ballots.id", ondelete="CASCADE"), index=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    receipt: Mapped[str] = mapped_column(String(64))
    content: Mapped[str] = mapped_column(Text)  # JSON: the encrypted ballot with its proofs

    __table_args__ = (
        Index("uq_ballot_votes_receipt", "ballot_id", "receipt", unique=True),
        {"sqlite_with_rowid": False},
    )
