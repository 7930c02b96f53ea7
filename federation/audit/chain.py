"""The audit chain: every entry carries the hash of the one before it, so an edit, a deletion or a reordering breaks
the chain at a point `verify` can name.

Hashing rule (documented in docs/firewall.md so an outside tool can check an export with nothing else):

    canonical = JSON of {"seq", "at", "actor", "tenant", "other_tenant", "kind", "data"} with sorted keys,
                separators (",", ":"), UTF-8, non-ASCII kept as is; "at" is ISO 8601 UTC with microseconds and "Z"
    hash      = hex(SHA-256(prev_hash + "\\n" + canonical)), prev_hash of the first entry = 64 zeros

    mac       = hex(HMAC-SHA256(audit key, "musubi-audit-entry\n" + hash))

The hash chain alone proves nothing to someone who can rewrite the table: they can recompute every hash. The MAC
needs the audit key, which is kept outside the database (MUSUBI_AUDIT_KEY or a key file, federation/config.py), and
anchors (`audit anchor`: a keyed {seq, hash, at, mac} line appended to a file that is shipped elsewhere) pin the
chain's head at a moment, so a cut tail or a replaced chain is detected against them. Entries written before the key
existed carry no MAC ("unkeyed"); every entry from the first keyed one on must carry a valid MAC. init-db makes sure
the chain has a keyed entry (`audit.genesis` in a new database, `audit.keyed` in one upgraded from unkeyed entries),
so an empty log, or one with no MAC at all, fails verification.

Entries are appended inside the caller's transaction, after taking a row lock on the one-row head table, so two
writers never chain onto the same predecessor and a rolled-back change leaves no entry behind. The first append of a
process also records the policy files in force (`policy.files`) when their content differs from the last recorded
one, so time travel (federation/audit/history.py) replays the templates of the day.
"""
from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import current_app, has_app_context
from sqlalchemy import Integer, String, Text, insert, select
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
    mac: Mapped[str | None] = mapped_column(String(64), nullable=True)

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq, "at": iso(self.at), "actor": self.actor, "tenant": self.tenant,
            "other_tenant": self.other_tenant, "kind": self.kind, "data": json.loads(self.data),
            "prev_hash": self.prev_hash, "hash": self.hash, "mac": self.mac,
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



# --- the key ---------------------------------------------------------------------------------------------------------

def current_key() -> bytes | None:
    """The audit key of the running app (None outside one, or when a verifier chose to check hashes only)."""
    if not has_app_context():
        return None
    settings = current_app.config.get("MUSUBI")
    key = getattr(settings, "audit_key", "") if settings is not None else ""
    return key.encode("utf-8") if key else None


def entry_mac(key: bytes, digest: str) -> str:
    return hmac.new(key, ("musubi-audit-entry\n" + digest).encode("utf-8"), hashlib.sha256).hexdigest()


def key_id(key: bytes) -> str:
    """Names the key without revealing it: two anchors or entries made with different keys show different ids."""
    return hmac.new(key, b"musubi-audit-key-id", hashlib.sha256).hexdigest()[:16]


def anchor_mac(key: bytes, seq: int, digest: str, at: str) -> str:
    text = json.dumps({"seq": seq, "hash": digest, "at": at}, sort_keys=True, separators=(",", ":"))
    return hmac.new(key, ("musubi-audit-anchor\n" + text).encode("utf-8"), hashlib.sha256).hexdigest()


# --- appending -------------------------------------------------------------------------------------------------------

def _next(head: AuditHead, kind: str, *, actor: str, tenant: str | None, data: dict[str, Any],
          other_tenant: str | None, key: bytes | None) -> dict[str, Any]:
    """The column values of the entry after the head, and the head moved onto it."""
    at = utcnow()
    seq = head.seq + 1
    # Round-trip data through JSON now, so what is hashed is exactly what is stored and read back.
    data = json.loads(json.dumps(data, ensure_ascii=False, default=str))
    text = canonical(seq, iso(at), actor, tenant, other_tenant, kind, data)
    digest = entry_hash(head.hash, text)
    values = {"seq": seq, "at": at, "actor": actor, "tenant": tenant, "other_tenant": other_tenant, "kind": kind,
              "data": json.dumps(data, ensure_ascii=False, sort_keys=True), "prev_hash": head.hash, "hash": digest,
              "mac": entry_mac(key, digest) if key else None}
    head.seq, head.hash = seq, digest
    return values


def _append(head: AuditHead, kind: str, *, actor: str, tenant: str | None, data: dict[str, Any],
            other_tenant: str | None) -> AuditEntry:
    entry = AuditEntry(**_next(head, kind, actor=actor, tenant=tenant, data=data, other_tenant=other_tenant,
                               key=current_key()))
    db.session.add(entry)
    return entry


def _locked_head() -> AuditHead:
    session = db.session
    head = session.execute(select(AuditHead).where(AuditHead.id == 1).with_for_update()).scalar_one_or_none()
    if head is None:
        head = AuditHead(id=1, seq=0, hash=GENESIS)
        session.add(head)
        session.flush()
    return head


def record(kind: str, *, actor: str, tenant: str | None, data: dict[str, Any],
           other_tenant: str | None = None) -> AuditEntry:
    """Append one entry in the current transaction. The caller commits (or rolls back) with its own change."""
    head = _locked_head()
    _note_policy_files(head)
    return _append(head, kind, actor=actor, tenant=tenant, data=data, other_tenant=other_tenant)


def record_many(kind: str, entries: list[dict[str, Any]], *, actor: str, tenant: str | None) -> int:
    """Append one entry per item of `entries` (each with `data` and optionally `other_tenant`), in order, in the
    current transaction: the same entries as that many `record` calls, with the head locked and read once and the
    rows written in one statement. Returns how many were appended."""
    if not entries:
        return 0
    head = _locked_head()
    _note_policy_files(head)
    key = current_key()
    rows = [_next(head, kind, actor=actor, tenant=tenant, data=e["data"], other_tenant=e.get("other_tenant"), key=key)
            for e in entries]
    db.session.execute(insert(AuditEntry), rows)
    return len(rows)


# --- the policy files in force (item of F6: a change to the policy is a change to record) ------------------------

# (seq, digest) of the last `policy.files` entry as this process last read it. Each append reads only the newest
# such entry's seq (indexed by kind), and re-reads its content when the seq moved: another process, or a rolled-back
# transaction of this one, cannot leave a stale answer behind.
_last_policy: tuple[int, str] | None = None
_files_data: tuple[dict[str, str], dict[str, Any]] | None = None


def policy_files_data(files: dict[str, str]) -> dict[str, Any]:
    entries = {name: {"sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(), "content": text}
               for name, text in sorted(files.items())}
    digest = hashlib.sha256(json.dumps({n: e["sha256"] for n, e in entries.items()}, sort_keys=True)
                            .encode("utf-8")).hexdigest()
    return {"digest": digest, "files": entries}


def last_policy_digest() -> str | None:
    """The digest of the policy files as last recorded in the chain (None: never)."""
    global _last_policy
    seq = db.session.execute(select(AuditEntry.seq).where(AuditEntry.kind == "policy.files")
                             .order_by(AuditEntry.seq.desc()).limit(1)).scalar_one_or_none()
    if seq is None:
        return None
    if _last_policy is None or _last_policy[0] != seq:
        data = db.session.execute(select(AuditEntry.data).where(AuditEntry.seq == seq)).scalar_one()
        _last_policy = (seq, json.loads(data).get("digest"))
    return _last_policy[1]


def _note_policy_files(head: AuditHead) -> AuditEntry | None:
    """Append `policy.files` before the next entry when the files this process enforces differ from the last
    recorded ones (a deployment changed them). Called with the head locked, so two processes never both append."""
    from federation.firewall import firewall

    global _files_data
    files = firewall.policy_files
    if not files:
        return None
    if _files_data is None or _files_data[0] is not files:  # hashed once per configure, not once per append
        _files_data = (files, policy_files_data(files))
    data = _files_data[1]
    if last_policy_digest() == data["digest"]:
        return None
    return _append(head, "policy.files", actor="system:policy", tenant="platform", data=data, other_tenant=None)


def ensure_chain() -> list[str]:
    """For init-db: make sure the chain has a keyed start (so an emptied log, or one stripped of its MACs, cannot pass
    for a fresh one) and that the policy files in force are recorded. Commits; returns the kinds it appended."""
    head = _locked_head()
    added: list[str] = []
    key = current_key()
    if key is not None:
        keyed = db.session.execute(select(AuditEntry.seq).where(AuditEntry.mac.is_not(None)).limit(1)).first()
        if keyed is None:
            if head.seq == 0:
                _append(head, "audit.genesis", actor="system:init-db", tenant="platform",
                        data={"key_id": key_id(key)}, other_tenant=None)
                added.append("audit.genesis")
            else:
                _append(head, "audit.keyed", actor="system:init-db", tenant="platform",
                        data={"key_id": key_id(key), "unkeyed_through": head.seq}, other_tenant=None)
                added.append("audit.keyed")
    if _note_policy_files(head) is not None:
        added.append("policy.files")
    db.session.commit()
    return added


# --- verifying -------------------------------------------------------------------------------------------------------

@dataclass
class Verification:
    ok: bool
    entries: int
    head: str
    broken_at: int | None = None
    reason: str | None = None
    keyed_from: int | None = None  # the first entry that carries a MAC
    unkeyed: int = 0  # entries written before the key existed (hash-chained only)
    macs_checked: bool = False  # False: no key at hand, only the hashes were checked
    anchors: int = 0  # anchored (seq, hash) pairs the chain was checked against

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ok": self.ok, "entries": self.entries, "head": self.head,
                               "keyed_from": self.keyed_from, "unkeyed": self.unkeyed,
                               "macs_checked": self.macs_checked, "anchors": self.anchors}
        if not self.ok:
            out["broken_at"] = self.broken_at
            out["reason"] = self.reason
        return out


@dataclass(frozen=True)
class Anchor:
    seq: int
    hash: str
    at: str | None = None
    source: str = "anchor"


class AnchorError(ValueError):
    """An anchor line that cannot be used: malformed, or its MAC does not match."""


def make_anchor(key: bytes, seq: int, digest: str) -> dict[str, Any]:
    at = iso(utcnow())
    return {"seq": seq, "hash": digest, "at": at, "key_id": key_id(key), "mac": anchor_mac(key, seq, digest, at)}


def read_anchors(lines: Iterable[str], key: bytes | None, name: str = "anchor file") -> list[Anchor]:
    """Parse an anchor file; with the key, every line's MAC must match (a line forged by whoever could write the
    file is refused, not silently trusted)."""
    anchors = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            seq, digest, at = int(rec["seq"]), str(rec["hash"]), str(rec["at"])
        except (ValueError, KeyError, TypeError) as exc:
            raise AnchorError(f"{name}:{lineno}: not an anchor line ({exc})") from None
        if seq < 1 or len(digest) != 64:
            raise AnchorError(f"{name}:{lineno}: not an anchor line")
        if key is not None and not hmac.compare_digest(str(rec.get("mac", "")), anchor_mac(key, seq, digest, at)):
            raise AnchorError(f"{name}:{lineno}: the anchor's MAC does not match (forged, or made with another key)")
        anchors.append(Anchor(seq, digest, at, f"{name}:{lineno}"))
    return anchors


def parse_expected_head(text: str) -> Anchor:
    seq, sep, digest = text.partition(":")
    if not sep or not seq.isdigit() or int(seq) < 1 or len(digest) != 64 \
            or any(c not in "0123456789abcdef" for c in digest):
        raise AnchorError(f"expected head must be SEQ:HASH (a sequence number and 64 hex digits), got {text!r}")
    return Anchor(int(seq), digest, None, "expected head")


def verify_records(records: Iterable[dict[str, Any]], head: tuple[int, str] | None = None, *,
                   key: bytes | None = None, anchors: Iterable[Anchor] = ()) -> Verification:
    """Check a sequence of exported entries (dicts as `AuditEntry.as_dict` gives them) end to end.

    Fails on: a gap or reordering, a prev_hash or hash mismatch, an empty log, the recorded head not being the last
    entry, an anchor the chain does not reach or does not match; and, with the key: a wrong MAC, an entry without a
    MAC after the first keyed one, or no keyed entry at all."""
    pinned: dict[int, list[Anchor]] = {}
    for anchor in anchors:
        pinned.setdefault(anchor.seq, []).append(anchor)
    prev, expected_seq, count = GENESIS, 1, 0
    keyed_from: int | None = None
    unkeyed = 0

    def fail(at: int, reason: str) -> Verification:
        return Verification(False, count, prev, at, reason, keyed_from, unkeyed, key is not None,
                            sum(len(v) for s, v in pinned.items() if s < at))

    for rec in records:
        seq = rec["seq"]
        if seq != expected_seq:
            # Name the entry that is not where it should be (the deleted one, or the first of two swapped), as a
            # cut tail names its first missing entry below: `broken_at` is always the first entry not verified.
            return fail(expected_seq, f"entry {expected_seq} is missing or out of order (entry {seq} is in its place)")
        if rec["prev_hash"] != prev:
            return fail(seq, "prev_hash does not match the entry before")
        text = canonical(seq, rec["at"], rec["actor"], rec["tenant"], rec.get("other_tenant"), rec["kind"],
                         rec["data"])
        if entry_hash(prev, text) != rec["hash"]:
            return fail(seq, "the entry's content does not match its hash")
        mac = rec.get("mac")
        if key is not None:
            if mac is None:
                if keyed_from is not None:
                    return fail(seq, f"the entry carries no MAC, yet entries are keyed from {keyed_from} on")
            elif not hmac.compare_digest(str(mac), entry_mac(key, rec["hash"])):
                return fail(seq, "the entry's MAC does not match (rewritten without the key, or another key)")
        if mac is None:
            unkeyed += 1
        elif keyed_from is None:
            keyed_from = seq
        for anchor in pinned.get(seq, ()):
            if anchor.hash != rec["hash"]:
                return fail(seq, f"the entry does not match {anchor.source} (anchored hash {anchor.hash[:12]}…)")
        prev, expected_seq, count = rec["hash"], expected_seq + 1, count + 1
    if count == 0:
        return fail(1, "the log is empty: init-db starts every chain with an entry, so it was emptied")
    beyond = [a for s, v in sorted(pinned.items()) if s > count for a in v]
    if beyond:
        return fail(count + 1, f"the chain ends before the entry {beyond[0].seq} of {beyond[0].source}")
    if head is not None and (head[0] != count or head[1] != prev):
        return fail(count + 1 if head[0] > count else head[0],
                    "the chain ends before the recorded head" if head[0] > count
                    else "the recorded head does not match the last entry")
    if key is not None and keyed_from is None:
        return fail(1, "no entry carries a MAC: the chain was rewritten or stripped (or init-db was not run "
                       "since the audit key was set up)")
    return Verification(True, count, prev, None, None, keyed_from, unkeyed, key is not None,
                        sum(len(v) for v in pinned.values()))


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


def verify(anchors: Iterable[Anchor] = (), *, use_key: bool = True) -> Verification:
    head_row = db.session.get(AuditHead, 1)
    head = (head_row.seq, head_row.hash) if head_row else (0, GENESIS)
    # Walked by seq: a reordering shows up as a prev_hash mismatch, a deletion as a gap, a cut tail at the head.
    return verify_records(iter_entries(), head, key=current_key() if use_key else None, anchors=anchors)
