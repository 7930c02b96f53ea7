"""What someone with write access to the database (and not the audit key) can no longer hide: a cut tail with the
head row moved back, a chain rewritten with every SHA-256 hash recomputed, an emptied log. And the policy files in
force are part of the chain, so the past is replayed with the templates of the day (F6)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from conftest import World
from flask import Flask
from sqlalchemy import text

PROJECT = Path(__file__).resolve().parent.parent
AUDITOR = ("platform", "aud")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    # DATABASE_URL, MUSUBI_INSTANCE, SECRET_KEY and MUSUBI_AUDIT_KEY are this test's (set by the app fixture).
    return subprocess.run([sys.executable, "cli.py", *args], cwd=PROJECT, capture_output=True, text=True,
                          timeout=60)


def _rows(app: Flask) -> list[dict[str, Any]]:
    from federation.extensions import db

    with app.app_context():
        rows = db.session.execute(text("SELECT * FROM audit_entries ORDER BY seq")).mappings().all()
        return [dict(r) for r in rows]


def _head(app: Flask) -> tuple[int, str]:
    from federation.extensions import db

    with app.app_context():
        seq, digest = db.session.execute(text("SELECT seq, hash FROM audit_head WHERE id = 1")).one()
        return seq, digest


def _verify(app: Flask) -> dict[str, Any]:
    from federation.audit.chain import verify
    from federation.extensions import db

    with app.app_context():
        db.session.expire_all()
        return verify().as_dict()


def _set_head(app: Flask, seq: int, digest: str) -> None:
    from federation.extensions import db

    with app.app_context():
        db.session.execute(text("UPDATE audit_head SET seq = :s, hash = :h WHERE id = 1"), {"s": seq, "h": digest})
        db.session.commit()


def _cut_tail(app: Flask, keep: int) -> None:
    """Delete every entry after `keep` and move the head row back onto the new last entry: no gap, no head
    mismatch, a chain that is a perfect prefix of the real one."""
    from federation.extensions import db

    rows = _rows(app)
    with app.app_context():
        db.session.execute(text("DELETE FROM audit_entries WHERE seq > :k"), {"k": keep})
        db.session.commit()
    _set_head(app, keep, rows[keep - 1]["hash"])


def _grant_more(world: World) -> None:
    r = world.as_("union-a", "aadmin").post("/api/v1/tenants/union-a/roles",
                                            json={"login_id": "a1", "role": "union_admin"})
    assert r.status_code == 201, r.get_json()


def test_a_cut_tail_with_the_head_row_moved_back_fails_against_an_anchor(world: World, tmp_path: Path) -> None:
    anchors = tmp_path / "anchors.jsonl"
    done = _cli("audit", "anchor", "--out", str(anchors))
    assert done.returncode == 0, done.stderr
    n, head = _head(world.app)
    line = json.loads(anchors.read_text(encoding="utf-8"))
    assert (line["seq"], line["hash"]) == (n, head) and line["mac"] and line["at"]

    _cut_tail(world.app, n - 3)  # e.g. the last grants, taken back out of the record
    assert _verify(world.app)["ok"] is True  # the database alone cannot tell: the chain left is a valid prefix

    done = _cli("audit", "verify-log", "--anchor", str(anchors))
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert f"entry {n - 2}" in done.stderr and "anchors.jsonl:1" in done.stderr
    done = _cli("audit", "verify-log", "--expect-head", f"{n}:{head}")
    assert done.returncode != 0 and f"entry {n - 2}" in done.stderr

    r = world.as_(*AUDITOR).get("/api/v1/audit/log/verify", query_string={"expect_head": f"{n}:{head}"})
    assert r.status_code == 200
    body = r.get_json()
    assert body["ok"] is False and body["broken_at"] == n - 2 and body["entries"] == n - 3


def test_the_tail_after_the_last_anchor_is_what_an_insider_can_still_cut(world: World, tmp_path: Path) -> None:
    """The documented limit (docs/firewall.md): entries written after the last exported anchor are protected by
    nothing the database owner cannot reach."""
    anchors = tmp_path / "anchors.jsonl"
    assert _cli("audit", "anchor", "--out", str(anchors)).returncode == 0
    n, _ = _head(world.app)
    _grant_more(world)
    _cut_tail(world.app, n)
    done = _cli("audit", "verify-log", "--anchor", str(anchors))
    assert done.returncode == 0, done.stderr
    assert "1 anchors matched" in done.stdout


def test_anchoring_refuses_a_broken_chain_and_a_forged_anchor_line(world: World, tmp_path: Path) -> None:
    anchors = tmp_path / "anchors.jsonl"
    assert _cli("audit", "anchor", "--out", str(anchors)).returncode == 0
    _grant_more(world)
    assert _cli("audit", "anchor", "--out", str(anchors)).returncode == 0
    assert len(anchors.read_text(encoding="utf-8").splitlines()) == 2
    assert _cli("audit", "verify-log", "--anchor", str(anchors)).returncode == 0

    # A line written by someone without the key (to bless a rewritten chain) is refused.
    n, head = _head(world.app)
    forged = tmp_path / "forged.jsonl"
    forged.write_text(json.dumps({"seq": n, "hash": head, "at": "2026-01-01T00:00:00.000000Z", "mac": "0" * 64})
                      + "\n", encoding="utf-8")
    done = _cli("audit", "verify-log", "--anchor", str(forged))
    assert done.returncode != 0 and "forged.jsonl:1" in done.stderr and "MAC" in done.stderr

    _cut_tail(world.app, n - 1)
    done = _cli("audit", "anchor", "--out", str(anchors))
    assert done.returncode != 0 and "not anchoring" in done.stderr
    assert len(anchors.read_text(encoding="utf-8").splitlines()) == 2


def _rewrite(app: Flask, *, from_seq: int, strip_macs: bool, edit: bool = True) -> int | None:
    """Edit one entry and recompute every SHA-256 hash from there to the end, as a tamperer who read the documented
    hashing rule would; move the head row onto the new last hash. Returns the seq edited (None: none, only the
    MACs stripped)."""
    from federation.audit.chain import GENESIS, canonical, entry_hash
    from federation.extensions import db

    rows = _rows(app)
    grant = next(r for r in rows if r["seq"] >= from_seq and r["kind"] == "role.grant") if edit else None
    prev = GENESIS if from_seq == 1 else rows[from_seq - 2]["hash"]
    with app.app_context():
        for row in rows[from_seq - 1:]:
            data = json.loads(row["data"])
            if grant is not None and row["seq"] == grant["seq"]:
                data["role"] = "union_editor" if data["role"] != "union_editor" else "union_admin"
            at = row["at"] if isinstance(row["at"], str) else None
            if at is None:
                at = row["at"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            elif not at.endswith("Z"):
                at = datetime.fromisoformat(at).replace(tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            digest = entry_hash(prev, canonical(row["seq"], at, row["actor"], row["tenant"], row["other_tenant"],
                                                row["kind"], data))
            db.session.execute(text("UPDATE audit_entries SET data = :d, prev_hash = :p, hash = :h"
                                    + (", mac = NULL" if strip_macs else "") + " WHERE seq = :s"),
                               {"d": json.dumps(data, ensure_ascii=False, sort_keys=True), "p": prev, "h": digest,
                                "s": row["seq"]})
            prev = digest
        db.session.commit()
    _set_head(app, rows[-1]["seq"], prev)
    return grant["seq"] if grant is not None else None


def test_a_chain_rewritten_with_recomputed_hashes_fails_on_the_first_rewritten_mac(world: World) -> None:
    edited = _rewrite(world.app, from_seq=1, strip_macs=False)
    assert edited is not None
    result = _verify(world.app)
    assert result["ok"] is False
    # Every hash is consistent again; the edited entry's MAC (made with a key the tamperer lacks) is not.
    assert result["broken_at"] == edited and "MAC" in result["reason"]
    assert result["entries"] == edited - 1

    r = world.as_(*AUDITOR).get("/api/v1/audit/log/verify")
    assert r.status_code == 200 and r.get_json()["ok"] is False and r.get_json()["broken_at"] == edited
    done = _cli("audit", "verify-log")
    assert done.returncode != 0 and f"entry {edited}" in done.stderr


def test_a_chain_rewritten_from_the_middle_fails_where_the_rewrite_begins(world: World) -> None:
    n, _ = _head(world.app)
    edited = _rewrite(world.app, from_seq=n // 2, strip_macs=False)
    result = _verify(world.app)
    assert result["ok"] is False and "MAC" in result["reason"]
    assert result["broken_at"] == edited and edited >= n // 2


def test_a_rewritten_chain_stripped_of_its_macs_fails(world: World) -> None:
    _rewrite(world.app, from_seq=1, strip_macs=True)
    result = _verify(world.app)
    assert result["ok"] is False and result["broken_at"] == 1 and "no entry carries a MAC" in result["reason"]


def test_stripping_the_macs_of_the_tail_fails(world: World) -> None:
    n, _ = _head(world.app)
    _rewrite(world.app, from_seq=n - 5, strip_macs=True, edit=False)
    result = _verify(world.app)
    assert result["ok"] is False and result["broken_at"] == n - 5 and "no MAC" in result["reason"]


def test_an_emptied_log_with_its_head_row_deleted_fails(world: World) -> None:
    from federation.extensions import db

    with world.app.app_context():
        db.session.execute(text("DELETE FROM audit_entries"))
        db.session.execute(text("DELETE FROM audit_head"))
        db.session.commit()
    result = _verify(world.app)
    assert result["ok"] is False and result["entries"] == 0 and "empty" in result["reason"]
    r = world.as_(*AUDITOR).get("/api/v1/audit/log/verify")
    assert r.status_code == 200 and r.get_json()["ok"] is False
    done = _cli("audit", "verify-log")
    assert done.returncode != 0 and "empty" in done.stderr


def test_a_new_chain_starts_keyed_with_the_policy_files_in_force(shared_world: World) -> None:
    rows = _rows(shared_world.app)
    assert rows[0]["kind"] == "audit.genesis" and rows[1]["kind"] == "policy.files"
    assert all(r["mac"] for r in rows)
    files = json.loads(rows[1]["data"])["files"]
    assert set(files) == {"model.conf", "roles.csv", "assertions.txt"}
    assert files["roles.csv"]["content"] == (PROJECT / "policies" / "roles.csv").read_text(encoding="utf-8")
    # Nothing changed since: no second policy.files entry.
    assert [r["kind"] for r in rows].count("policy.files") == 1
    body = shared_world.as_(*AUDITOR).get("/api/v1/audit/log/verify").get_json()
    assert body["ok"] is True and body["keyed_from"] == 1 and body["macs_checked"] is True


# --- policy files in the chain, and the past replayed with them -------------------------------------------------

LEAK = "p, fed_admin, affiliated, members, read\n"


def test_a_policy_file_change_is_recorded_and_exposure_at_a_past_time_uses_the_old_templates(
        world: World, tmp_path: Path) -> None:
    from federation.firewall import firewall

    aud = world.as_(*AUDITOR)
    before = aud.get("/api/v1/audit/exposure").get_json()
    moment = datetime.now(UTC)

    # A deployment ships a roles.csv that lets the federation read the member lists of its unions.
    changed = tmp_path / "policies"
    shutil.copytree(PROJECT / "policies", changed)
    with (changed / "roles.csv").open("a", encoding="utf-8") as fh:
        fh.write(LEAK)
    with world.app.app_context():
        firewall.configure(changed)
    # The next change anyone makes is preceded by a record of the files now in force.
    r = world.as_("union-b", "badmin").put("/api/v1/unions/union-b/affiliation/cascade", json={"cascade": "opted_in"})
    assert r.status_code == 200, r.get_json()
    rows = _rows(world.app)
    policy = [r for r in rows if r["kind"] == "policy.files"]
    assert len(policy) == 2
    assert rows[-2]["kind"] == "policy.files" and rows[-1]["kind"] == "cascade.set"
    assert json.loads(policy[-1]["data"])["files"]["roles.csv"]["content"].endswith(LEAK)

    now = aud.get("/api/v1/audit/exposure").get_json()
    past = aud.get("/api/v1/audit/exposure", query_string={"at": moment.isoformat()}).get_json()
    leak = "fed_admin: members/read"

    def crossing(result: dict[str, Any], union: str) -> list[str]:
        return next(c["permissions"] for c in result["crossings"] if (c["from"], c["to"]) == ("fed", union))

    # Today the federation reads both affiliated unions' members; then it read neither. union-c (not affiliated)
    # is reached by nothing, at either time.
    assert leak in crossing(now, "union-a") and leak in crossing(now, "union-b")
    assert leak not in crossing(past, "union-a") and leak not in crossing(past, "union-b")
    assert crossing(past, "union-a") == crossing(before, "union-a")
    assert not any(c["to"] == "union-c" for c in now["crossings"] + past["crossings"])
    assert past["templates"]["source"] == "audit log" and past["templates"]["seq"] == policy[0]["seq"]

    diff = aud.get("/api/v1/audit/exposure/diff", query_string={"from": moment.isoformat(),
                                                                "to": datetime.now(UTC).isoformat()}).get_json()
    gained = {(c["from"], c["to"]): c["gained"] for c in diff["crossings"]}
    assert leak in gained[("fed", "union-a")]

    # The chain still verifies with the new entry in it; restoring the files records them once more.
    assert _verify(world.app)["ok"] is True
    with world.app.app_context():
        firewall.configure(PROJECT / "policies")
    _grant_more(world)
    assert [r["kind"] for r in _rows(world.app)].count("policy.files") == 3


def test_init_db_records_changed_policy_files_without_waiting_for_a_change(world: World, tmp_path: Path,
                                                                          monkeypatch) -> None:  # type: ignore[no-untyped-def]
    changed = tmp_path / "policies"
    shutil.copytree(PROJECT / "policies", changed)
    with (changed / "roles.csv").open("a", encoding="utf-8") as fh:
        fh.write(LEAK)
    monkeypatch.setenv("MUSUBI_POLICY_DIR", str(changed))
    done = _cli("init-db")
    assert done.returncode == 0, done.stderr
    rows = _rows(world.app)
    assert rows[-1]["kind"] == "policy.files" and rows[-1]["actor"] == "system:policy"
    assert _cli("init-db").returncode == 0
    assert len(_rows(world.app)) == len(rows)  # unchanged files: nothing more


# --- a database from before the key ---------------------------------------------------------------------------------

def test_a_database_migrated_from_before_the_key_is_keyed_from_an_audit_keyed_entry(world: World) -> None:
    from alembic import command

    from federation.audit.chain import verify
    from federation.database import alembic_config, upgrade
    from federation.extensions import db

    app = world.app
    with app.app_context():
        db.session.remove()
        with db.engine.begin() as connection:
            command.downgrade(alembic_config(connection), "0005_application_attachments")  # drops `mac`
        db.session.remove()
        upgrade()  # init-db on the new release: the column comes back empty, and the chain is keyed from here on
    rows = _rows(app)
    n = len(rows) - 1
    assert rows[-1]["kind"] == "audit.keyed" and json.loads(rows[-1]["data"])["unkeyed_through"] == n
    assert all(r["mac"] is None for r in rows[:-1]) and rows[-1]["mac"]
    result = _verify(app)
    assert result["ok"] is True and result["keyed_from"] == n + 1 and result["unkeyed"] == n
    assert "unkeyed" in _cli("audit", "verify-log").stdout

    # The unkeyed history is covered by the first keyed entry: rewriting it, hashes and all, still fails.
    _rewrite(app, from_seq=1, strip_macs=False)
    with app.app_context():
        db.session.expire_all()
        broken = verify()
    assert broken.ok is False and broken.broken_at == n + 1 and "MAC" in (broken.reason or "")


def test_anchor_appends_to_the_configured_anchor_file(world: World, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "shipped" / "anchors.jsonl"
    target.parent.mkdir()
    done = _cli("audit", "anchor")
    assert done.returncode != 0 and "MUSUBI_AUDIT_ANCHOR_FILE" in done.stderr
    monkeypatch.setenv("MUSUBI_AUDIT_ANCHOR_FILE", str(target))
    assert _cli("audit", "anchor").returncode == 0
    _grant_more(world)
    assert _cli("audit", "anchor").returncode == 0
    lines = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert [line["seq"] for line in lines] == [lines[0]["seq"], lines[0]["seq"] + 1]
    assert len({line["key_id"] for line in lines}) == 1
    printed = _cli("audit", "anchor", "--out", "-")
    assert printed.returncode == 0 and json.loads(printed.stdout)["seq"] == lines[-1]["seq"]
