"""F6: every change to roles, affiliations and cascade settings writes one hash-chained audit entry; the chain is
verified end to end (API, CLI, an exported copy) and names the first entry that was edited, deleted, reordered or
cut off."""
from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import World
from flask import Flask
from sqlalchemy import delete, func, select, text, update

PROJECT = Path(__file__).resolve().parent.parent


def _entries_after(app: Flask, seq: int) -> list[dict[str, Any]]:
    from federation.audit.chain import AuditEntry
    from federation.extensions import db

    with app.app_context():
        rows = db.session.execute(select(AuditEntry).where(AuditEntry.seq > seq).order_by(AuditEntry.seq)).scalars()
        return [r.as_dict() for r in rows]


def _last_seq(app: Flask) -> int:
    from federation.audit.chain import AuditEntry
    from federation.extensions import db

    with app.app_context():
        return db.session.execute(select(func.coalesce(func.max(AuditEntry.seq), 0))).scalar_one()


class Changes:
    """Make a change through the API and return exactly the audit entries it wrote."""

    def __init__(self, world: World) -> None:
        self.world = world

    def __call__(self, who: tuple[str, str], method: str, path: str, body: Any = None,
                 status: int = 200) -> list[dict[str, Any]]:
        before = _last_seq(self.world.app)
        api = self.world.as_(*who)
        r = getattr(api, method.lower())(path, **({"json": body} if body is not None else {}))
        assert r.status_code == status, r.get_json()
        return _entries_after(self.world.app, before)


def _one(entries: list[dict[str, Any]], kind: str, actor: str, tenant: str, other: str | None = None,
         **data: Any) -> dict[str, Any]:
    assert len(entries) == 1, [e["kind"] for e in entries]
    entry = entries[0]
    assert (entry["kind"], entry["actor"], entry["tenant"], entry["other_tenant"]) == (kind, actor, tenant, other)
    for key, value in data.items():
        assert entry["data"][key] == value, (key, entry["data"])
    return entry


def test_role_grant_and_revoke_each_write_one_entry_naming_the_officer(world: World) -> None:
    change = Changes(world)
    aadmin = ("union-a", "aadmin")
    granted = change(aadmin, "POST", "/api/v1/tenants/union-a/roles", {"login_id": "a1", "role": "union_editor"},
                     201)
    _one(granted, "role.grant", "user:union-a/aadmin", "union-a", subject="user:union-a/a1", role="union_editor")
    # Granting a role the user already holds changes nothing, so records nothing.
    assert change(aadmin, "POST", "/api/v1/tenants/union-a/roles", {"login_id": "a1", "role": "union_editor"},
                  201) == []
    revoked = change(aadmin, "DELETE", "/api/v1/tenants/union-a/roles", {"login_id": "a1", "role": "union_editor"},
                     204)
    _one(revoked, "role.revoke", "user:union-a/aadmin", "union-a", subject="user:union-a/a1", role="union_editor")
    assert revoked[0]["data"]["grant_id"] == granted[0]["data"]["grant_id"]

    scoped = change(("fed", "fadmin"), "POST", "/api/v1/tenants/fed/roles",
                    {"login_id": "staff", "role": "unit_editor", "unit_id": world.ids["council2"]}, 201)
    _one(scoped, "role.grant", "user:fed/fadmin", "fed", subject="user:fed/staff", role="unit_editor",
         unit_id=world.ids["council2"])
    platform = change(("platform", "ops"), "POST", "/api/v1/tenants/platform/roles",
                      {"login_id": "aud", "role": "platform_admin"}, 201)
    _one(platform, "role.grant", "user:platform/ops", "platform", subject="user:platform/aud", role="platform_admin")


def test_affiliation_invite_accept_and_end_each_write_one_entry_on_both_sides(world: World) -> None:
    change = Changes(world)
    fadmin, cadmin = ("fed", "fadmin"), ("union-c", "cadmin")
    invited = change(fadmin, "POST", "/api/v1/federations/fed/affiliations",
                     {"union": "union-c", "council_id": world.ids["council2"]}, 201)
    entry = _one(invited, "affiliation.invite", "user:fed/fadmin", "fed", "union-c",
                 council_id=world.ids["council2"])
    affiliation_id = entry["data"]["affiliation_id"]
    accepted = change(cadmin, "POST", "/api/v1/unions/union-c/affiliation/accept")
    _one(accepted, "affiliation.accept", "user:union-c/cadmin", "union-c", "fed", affiliation_id=affiliation_id,
         cascade="opted_out")
    ended = change(cadmin, "DELETE", "/api/v1/unions/union-c/affiliation")
    _one(ended, "affiliation.end", "user:union-c/cadmin", "union-c", "fed", affiliation_id=affiliation_id,
         ended_by_side="union")
    from_federation = change(fadmin, "DELETE", "/api/v1/federations/fed/affiliations/union-b")
    _one(from_federation, "affiliation.end", "user:fed/fadmin", "union-b", "fed", ended_by_side="federation")


def test_each_cascade_change_writes_one_entry_and_a_repeat_writes_none(world: World) -> None:
    change = Changes(world)
    badmin = ("union-b", "badmin")
    body = {"cascade": "opted_in"}
    flipped = change(badmin, "PUT", "/api/v1/unions/union-b/affiliation/cascade", body)
    _one(flipped, "cascade.set", "user:union-b/badmin", "union-b", "fed", **{"from": "opted_out", "to": "opted_in"})
    assert change(badmin, "PUT", "/api/v1/unions/union-b/affiliation/cascade", body) == []
    back = change(badmin, "PUT", "/api/v1/unions/union-b/affiliation/cascade", {"cascade": "opted_out"})
    _one(back, "cascade.set", "user:union-b/badmin", "union-b", "fed", **{"from": "opted_in", "to": "opted_out"})


def test_a_refused_change_writes_nothing(world: World) -> None:
    change = Changes(world)
    assert change(("fed", "fadmin"), "PUT", "/api/v1/unions/union-b/affiliation/cascade", {"cascade": "opted_in"},
                  404) == []
    assert change(("union-a", "aeditor"), "POST", "/api/v1/tenants/union-a/roles",
                  {"login_id": "a1", "role": "union_admin"}, 403) == []


# --- verification --------------------------------------------------------------------------------------------------

def _verify(app: Flask):  # type: ignore[no-untyped-def]
    from federation.audit.chain import verify
    from federation.extensions import db

    with app.app_context():
        db.session.expire_all()
        return verify()


def _head(app: Flask) -> tuple[int, str]:
    from federation.audit.chain import AuditHead
    from federation.extensions import db

    with app.app_context():
        head = db.session.get(AuditHead, 1)
        assert head is not None
        return head.seq, head.hash


def test_an_untouched_chain_verifies_and_its_head_is_the_last_hash(shared_world: World) -> None:
    result = _verify(shared_world.app)
    entries = _entries_after(shared_world.app, 0)
    assert len(entries) > 40  # the world alone: tenants, units, users, grants, affiliations
    assert result.ok and result.broken_at is None
    assert result.entries == len(entries) == _head(shared_world.app)[0]
    assert result.head == entries[-1]["hash"] == _head(shared_world.app)[1]
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
    assert all(later["prev_hash"] == earlier["hash"] for earlier, later in zip(entries, entries[1:], strict=False))


def _edit(app: Flask, seq: int) -> None:
    from federation.audit.chain import AuditEntry
    from federation.extensions import db

    with app.app_context():
        # What a tamperer would do: rewrite who was granted what, straight in the table.
        db.session.execute(text("UPDATE audit_entries SET data = :d WHERE seq = :s"),
                           {"d": json.dumps({"role": "union_admin", "subject": "user:union-a/a1"}), "s": seq})
        db.session.commit()
        assert db.session.get(AuditEntry, seq) is not None


def _delete(app: Flask, *seqs: int) -> None:
    from federation.audit.chain import AuditEntry
    from federation.extensions import db

    with app.app_context():
        db.session.execute(delete(AuditEntry).where(AuditEntry.seq.in_(seqs)))
        db.session.commit()


def _swap(app: Flask, first: int, second: int) -> None:
    """Two entries trade places: every column but the sequence number."""
    from federation.audit.chain import AuditEntry
    from federation.extensions import db

    columns = ("at", "actor", "tenant", "other_tenant", "kind", "data", "prev_hash", "hash")
    with app.app_context():
        a = db.session.execute(select(AuditEntry).where(AuditEntry.seq == first)).scalar_one()
        b = db.session.execute(select(AuditEntry).where(AuditEntry.seq == second)).scalar_one()
        va = {c: getattr(a, c) for c in columns}
        vb = {c: getattr(b, c) for c in columns}
        db.session.execute(update(AuditEntry).where(AuditEntry.seq == first).values(**vb))
        db.session.execute(update(AuditEntry).where(AuditEntry.seq == second).values(**va))
        db.session.commit()


TAMPERING: dict[str, tuple[Callable[[Flask, int], None], Callable[[int], int], str]] = {
    # name: (what is done to a chain of n entries, the entry verify must name, a word of its reason)
    "edited-entry": (lambda app, n: _edit(app, 7), lambda n: 7, "hash"),
    "edited-first-entry": (lambda app, n: _edit(app, 1), lambda n: 1, "hash"),
    "deleted-entry": (lambda app, n: _delete(app, 7), lambda n: 7, "missing"),
    "reordered-entries": (lambda app, n: _swap(app, 7, 8), lambda n: 7, "prev_hash"),
    "truncated-tail": (lambda app, n: _delete(app, n - 1, n), lambda n: n - 1, "head"),
    "last-entry-edited": (lambda app, n: _edit(app, n), lambda n: n, "hash"),
}


@pytest.mark.parametrize("tamper", list(TAMPERING), ids=[f"detects-{t}" for t in TAMPERING])
def test_verify_names_the_first_entry_that_was_tampered_with(world: World, tamper: str) -> None:
    act, expected, word = TAMPERING[tamper]
    n = _head(world.app)[0]
    act(world.app, n)
    result = _verify(world.app)
    assert not result.ok
    assert result.broken_at == expected(n), result
    assert word in result.reason
    assert result.entries == expected(n) - 1  # everything before it still verifies

    r = world.as_("platform", "aud").get("/api/v1/audit/log/verify")
    assert r.status_code == 200
    body = r.get_json()
    assert body["ok"] is False and body["broken_at"] == expected(n) and body["entries"] == expected(n) - 1


# --- an exported copy, checked with nothing but the file ---------------------------------------------------------

def _export(app: Flask, path: Path) -> tuple[int, str]:
    from federation.audit.chain import iter_entries

    with app.app_context():
        with path.open("w", encoding="utf-8") as fh:
            for entry in iter_entries(batch=7):  # a small batch, so the export crosses batch boundaries
                fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
    return _head(app)


def _read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _export_swap(rows: list[dict[str, Any]], i: int, j: int) -> list[dict[str, Any]]:
    rows[i], rows[j] = rows[j], rows[i]
    return rows


EXPORT_TAMPERING: dict[str, tuple[Callable[[list[dict[str, Any]]], list[dict[str, Any]]], Callable[[int], int]]] = {
    # seq k sits at index k - 1
    "edited-line": (lambda rows: [r if r["seq"] != 7 else {**r, "actor": "user:fed/fadmin"} for r in rows],
                    lambda n: 7),
    "deleted-line": (lambda rows: [r for r in rows if r["seq"] != 7], lambda n: 7),
    "swapped-lines": (lambda rows: _export_swap(rows, 6, 7), lambda n: 7),
    "swapped-contents": (lambda rows: [{**rows[7], "seq": 7} if r["seq"] == 7 else
                                       {**rows[6], "seq": 8} if r["seq"] == 8 else r for r in rows],
                         lambda n: 7),
    "cut-tail": (lambda rows: rows[:-2], lambda n: n - 1),
}


def _record_mixed(app: Flask) -> list[int]:
    """record and record_many interleaved, in two transactions, with an empty record_many between them; returns the
    seqs written by record_many."""
    from federation.audit.chain import record, record_many
    from federation.extensions import db

    many: list[int] = []
    with app.app_context():
        before = _last_seq(app)
        record("test.single", actor="system", tenant="union-a", data={"n": 1})
        assert record_many("test.many", [{"data": {"n": 2}}, {"data": {"n": 3}, "other_tenant": "union-b"},
                                         {"data": {"n": 4, "text": "学習会"}}], actor="system", tenant="union-a") == 3
        many += [before + 2, before + 3, before + 4]
        record("test.single", actor="system", tenant="union-a", data={"n": 5})
        db.session.commit()
        assert record_many("test.many", [], actor="system", tenant="union-a") == 0
        assert record_many("test.many", [{"data": {"n": 6}}, {"data": {"n": 7}}], actor="system",
                           tenant="union-b") == 2
        many += [before + 6, before + 7]
        record("test.single", actor="system", tenant="union-b", data={"n": 8})
        db.session.commit()
    return many


def test_record_many_interleaved_with_record_keeps_one_unbroken_chain(world: World) -> None:
    before = _last_seq(world.app)
    many = _record_mixed(world.app)
    written = _entries_after(world.app, before)
    # The empty record_many wrote nothing: eight items, eight entries, in the order they were given.
    assert [e["data"]["n"] for e in written] == list(range(1, 9))
    assert [e["seq"] for e in written] == list(range(before + 1, before + 9))
    assert [e["seq"] for e in written if e["kind"] == "test.many"] == many
    assert written[2]["other_tenant"] == "union-b"
    assert written[0]["prev_hash"] == _entries_after(world.app, before - 1)[0]["hash"]
    assert all(later["prev_hash"] == earlier["hash"] for earlier, later in zip(written, written[1:], strict=False))
    result = _verify(world.app)
    assert result.ok, result
    assert result.entries == before + 8 and result.head == written[-1]["hash"] == _head(world.app)[1]


def test_an_empty_record_many_writes_nothing(world: World) -> None:
    from federation.audit.chain import record_many
    from federation.extensions import db

    before, head = _last_seq(world.app), _head(world.app)
    with world.app.app_context():
        assert record_many("test.many", [], actor="system", tenant="union-a") == 0
        db.session.commit()
    assert _last_seq(world.app) == before and _head(world.app) == head
    assert _verify(world.app).ok


@pytest.mark.parametrize("which", [0, 2, 4], ids=["first-of-a-batch", "last-of-a-batch", "last-of-the-second"])
def test_tampering_with_an_entry_written_by_record_many_is_detected(world: World, which: int) -> None:
    many = _record_mixed(world.app)
    seq = many[which]
    _edit(world.app, seq)
    result = _verify(world.app)
    assert not result.ok
    assert result.broken_at == seq, result
    assert "hash" in result.reason
    assert result.entries == seq - 1


def test_an_exported_copy_verifies_on_its_own(world: World, tmp_path: Path) -> None:
    from federation.audit.chain import verify_records

    export = tmp_path / "audit.jsonl"
    head = _export(world.app, export)
    result = verify_records(_read(export), head)
    assert result.ok and result.entries == head[0] and result.head == head[1]


@pytest.mark.parametrize("tamper", list(EXPORT_TAMPERING), ids=[f"detects-{t}" for t in EXPORT_TAMPERING])
def test_verify_records_detects_tampering_in_an_exported_copy(world: World, tmp_path: Path, tamper: str) -> None:
    from federation.audit.chain import verify_records

    export = tmp_path / "audit.jsonl"
    head = _export(world.app, export)
    change, expected = EXPORT_TAMPERING[tamper]
    tampered = change(_read(export))
    export.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in tampered), encoding="utf-8")
    result = verify_records(_read(export), head)
    assert not result.ok
    assert result.broken_at == expected(head[0]), result


def test_the_same_tampering_in_the_database_and_in_an_export_names_the_same_entry(world: World,
                                                                                 tmp_path: Path) -> None:
    from federation.audit.chain import verify_records

    _swap(world.app, 10, 11)
    export = tmp_path / "audit.jsonl"
    head = _export(world.app, export)
    in_db, in_file = _verify(world.app), verify_records(_read(export), head)
    assert (in_db.ok, in_db.broken_at, in_db.entries) == (in_file.ok, in_file.broken_at, in_file.entries) == (
        False, 10, 9)


# --- the CLI -----------------------------------------------------------------------------------------------------

def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    # DATABASE_URL, MUSUBI_INSTANCE and SECRET_KEY are this test's (the app fixture set them in the environment).
    return subprocess.run([sys.executable, "cli.py", *args], cwd=PROJECT, capture_output=True, text=True,
                          timeout=60)


def test_cli_verify_log_says_ok_then_names_the_broken_entry(world: World) -> None:
    n = _head(world.app)[0]
    done = _cli("audit", "verify-log")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok") and f"{n} entries" in done.stdout

    _edit(world.app, 5)
    done = _cli("audit", "verify-log")
    assert done.returncode != 0
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "entry 5" in done.stderr


# --- the auditor's log API -----------------------------------------------------------------------------------------

def test_audit_log_pages_with_a_cursor_through_every_entry_once(shared_world: World) -> None:
    aud = shared_world.as_("platform", "aud")
    seen: list[int] = []
    cursor, pages = None, 0
    while True:
        r = aud.get("/api/v1/audit/log", query_string={"limit": 7, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200
        page = r.get_json()
        assert len(page["items"]) <= 7
        seen += [item["seq"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    n = _head(shared_world.app)[0]
    assert seen == list(range(1, n + 1))
    assert pages == -(-n // 7)
    item = aud.get("/api/v1/audit/log", query_string={"limit": 1}).get_json()["items"][0]
    assert set(item) == {"seq", "at", "actor", "tenant", "other_tenant", "kind", "data", "prev_hash", "hash",
                         "mac"}


def test_audit_log_filters_by_tenant_and_kind(shared_world: World) -> None:
    aud = shared_world.as_("platform", "aud")
    everything = _entries_after(shared_world.app, 0)

    union_b = aud.get("/api/v1/audit/log", query_string={"tenant": "union-b", "limit": 1000}).get_json()["items"]
    assert union_b and all("union-b" in (e["tenant"], e["other_tenant"]) for e in union_b)
    assert [e["seq"] for e in union_b] == [e["seq"] for e in everything if "union-b" in (e["tenant"],
                                                                                          e["other_tenant"])]
    # The federation's side of an affiliation shows under both tenants.
    assert any(e["kind"] == "affiliation.invite" and e["tenant"] == "fed" for e in union_b)

    grants = aud.get("/api/v1/audit/log", query_string={"kind": "role.grant", "limit": 1000}).get_json()["items"]
    assert grants and {e["kind"] for e in grants} == {"role.grant"}
    assert len(grants) == sum(1 for e in everything if e["kind"] == "role.grant")

    both = aud.get("/api/v1/audit/log", query_string={"tenant": "union-a", "kind": "affiliation",
                                                      "limit": 1000}).get_json()["items"]
    assert {e["kind"] for e in both} == {"affiliation.invite", "affiliation.accept"}

    paged = aud.get("/api/v1/audit/log", query_string={"kind": "role.grant", "limit": 2}).get_json()
    rest = aud.get("/api/v1/audit/log", query_string={"kind": "role.grant", "limit": 1000,
                                                      "cursor": paged["next_cursor"]}).get_json()["items"]
    assert [e["seq"] for e in paged["items"] + rest] == [e["seq"] for e in grants]


def test_audit_log_verify_returns_ok_entries_and_head(shared_world: World) -> None:
    r = shared_world.as_("platform", "aud").get("/api/v1/audit/log/verify")
    assert r.status_code == 200
    body = r.get_json()
    n, head = _head(shared_world.app)
    # The SPEC's shape, plus what the keyed chain adds.
    assert {k: body[k] for k in ("ok", "entries", "head")} == {"ok": True, "entries": n, "head": head}
    assert body["macs_checked"] is True and body["keyed_from"] == 1 and body["unkeyed"] == 0
