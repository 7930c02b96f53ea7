"""The audit chain: every entry carries the hash of the one before it, so an edit, a deletion or a reordering breaks
the chain at a point `verify` can name.

Hashing rule (documented in docs/firewall.md so an outside tool can check an export with nothing else):

    canonical = JSON of {"seq", "at", "actor", "tenant", "other_tenant", "kind", "data"} with sorted keys,
                separators (",", ":"), UTF-8, non-ASCII kept as is; "at" is ISO 8601 UTC with microseconds and "Z"
    hash      = hex(SHA-256(prev_hash + "\\n" + canonical)), prev_hash of the first entry = 64 zeros

Entries are appended inside the caller's transaction, after taking a row lock on the one-row head table, so two
writers never chain onto the same predecessor and a rolled-back change leaves no entry behind.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Integer, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column

from federation.extensions import UTCDateTime, db, utcnow

GENESIS = "0" * 64


class AuditEntry(db.Model):
    __tablename__ = "audit_entries"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(300))
    tenant: Mapped[str | None] = mapped_column(String(40), index=True)
    other_tenant: Mapped[str | None] = mapped_column(String(40), index=True)
    kind: Mapped[str] = mapped_column(String(60), index=True)
    data: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq, "at": iso(self.at), "actor": self.actor, "tenant": self.tenant,
            "other_tenant": self.other_tenant, "kind": self.kind, "data": json.loads(self.data),
            "prev_hash": self.prev_hash, "hash": self.hash,
        }


class AuditHead(db.Model):
    """One row: the last sequence number and hash. Locked by every append; compared by verify (a truncated tail
    leaves the head pointing past the end)."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, default=0)
    hash: Mapped[str] = mapped_column(String(64), default=GENESIS)


def iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(seq: int, at: str, actor: str, tenant: str | None, other_tenant: str | None, kind: str,
              data: Any) -> str:
    return json.dumps({"seq": seq, "at": at, "actor": actor, "tenant": tenant, "other_tenant": other_tenant,
                       "kind": kind, "data": data}, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def entry_hash(prev_hash: str, canonical_text: str) -> str:
    return hashlib.sha256((prev_hash + "\n" + canonical_text).encode("utf-8")).hexdigest()


def record(kind: str, *, actor: str, tenant: str | None, data: dict[str, Any],
           other_tenant: str | None = None) -> AuditEntry:
    """Append one entry in the current transaction. The caller commits (or rolls back) with its own change."""
    session = db.session
    head = session.execute(select(AuditHead).where(AuditHead.id == 1).with_for_update()).scalar_one_or_none()
    if head is None:
        head = AuditHead(id=1, seq=0, hash=GENESIS)
        session.add(head)
        session.flush()
    at = utcnow()
    seq = head.seq + 1
    # Round-trip data through JSON now, so what is hashed is exactly what is stored and read back.
    data = json.loads(json.dumps(data, ensure_ascii=False, default=str))
    text = canonical(seq, iso(at), actor, tenant, other_tenant, kind, data)
    digest = entry_hash(head.hash, text)
    entry = AuditEntry(seq=seq, at=at, actor=actor, tenant=tenant, other_tenant=other_tenant, kind=kind,
                       data=json.dumps(data, ensure_ascii=False, sort_keys=True), prev_hash=head.hash, hash=digest)
    session.add(entry)
    head.seq, head.hash = seq, digest
    return entry


@dataclass
class Verification:
    ok: bool
    entries: int
    head: str
    broken_at: int | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ok": self.ok, "entries": self.entries, "head": self.head}
        if not self.ok:
            out["broken_at"] = self.broken_at
            out["reason"] = self.reason
        return out


def verify_records(records: Iterable[dict[str, Any]], head: tuple[int, str] | None = None) -> Verification:
    """Check a sequence of exported entries (dicts as `AuditEntry.as_dict` gives them) end to end."""
    prev, expected_seq, count = GENESIS, 1, 0
    for rec in records:
        seq = rec["seq"]
        if seq != expected_seq:
            # Name the entry that is not where it should be (the deleted one, or the first of two swapped), as a
            # cut tail names its first missing entry below: `broken_at` is always the first entry not verified.
            return Verification(False, count, prev, expected_seq,
                                f"entry {expected_seq} is missing or out of order (entry {seq} is in its place)")
        if rec["prev_hash"] != prev:
            return Verification(False, count, prev, seq, "prev_hash does not match the entry before")
        text = canonical(seq, rec["at"], rec["actor"], rec["tenant"], rec.get("other_tenant"), rec["kind"],
                         rec["data"])
        if entry_hash(prev, text) != rec["hash"]:
            return Verification(False, count, prev, seq, "the entry's content does not match its hash")
        prev, expected_seq, count = rec["hash"], expected_seq + 1, count + 1
    if head is not None and (head[0] != count or head[1] != prev):
        return Verification(False, count, prev, count + 1 if head[0] > count else head[0],
                            "the chain ends before the recorded head" if head[0] > count
                            else "the recorded head does not match the last entry")
    return Verification(True, count, prev)


def iter_entries(batch: int = 2000) -> Iterator[dict[str, Any]]:
    """Every entry in storage order, by seq, in batches so a long chain does not sit in memory at once."""
    last = 0
    while True:
        rows = db.session.execute(
            select(AuditEntry).where(AuditEntry.seq > last).order_by(AuditEntry.seq).limit(batch)
        ).scalars().all()
        if not rows:
            return
        for row in rows:
            yield row.as_dict()
        last = rows[-1].seq
        db.session.expunge_all()


def verify() -> Verification:
    head_row = db.session.get(AuditHead, 1)
    head = (head_row.seq, head_row.hash) if head_row else (0, GENESIS)
    # Walked by seq: a reordering shows up as a prev_hash mismatch, a deletion as a gap, a cut tail at the head.
    return verify_records(iter_entries(), head)
