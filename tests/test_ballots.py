"""Secret ballots end to end: the lifecycle, secrecy over every table, verifiability, eligibility, bad input.

Every case lives in the shared world: a federation and three unions; the ballot is union-a's, and union-b, the
federation, the platform admin and the auditor are the neighbours who must learn nothing."""
from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import World
from flask import Flask
from sqlalchemy import inspect, select, text

from federation.ballots import crypto

PROJECT = Path(__file__).resolve().parent.parent
T = "/api/v1/tenants/union-a/ballots"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "cli.py", *args], cwd=PROJECT, capture_output=True, text=True,
                          timeout=120)


def _officer(world: World, tenant: str = "union-a", login: str = "aelect") -> None:
    from federation.extensions import db
    from tenants import service as ts
    from tenants.models import Tenant

    with world.app.app_context():
        t = db.session.execute(select(Tenant).where(Tenant.slug == tenant)).scalar_one()
        u = ts.create_user(t, login_id=login, display_name="選管 委員長", name_kana="せんかん いいんちょう",
                           password=None, password_hash=_hash(), unit_id=None, actor="operator:test")
        ts.grant_role(t, u, "election_officer", None, actor="operator:test")


def _hash() -> str:
    from conftest import PW

    from federation.auth.passwords import hash_password

    return hash_password(PW)


def _ballot_body(**over) -> dict:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    body = {"title": "2027年度 執行委員長選挙", "kind": "election",
            "options": [{"label": "青木 健"}, {"label": "加藤 翔"}, {"label": "渡辺 恵"}],
            "choose": {"min": 1, "max": 1}, "electorate": {"all": True},
            "opens_at": now.isoformat(), "closes_at": (now + timedelta(days=3)).isoformat()}
    body.update(over)
    return {k: v for k, v in body.items() if v is not None}  # None: leave the field out


def _with_trustees(world: World, ballot_id: int, n: int = 2, tenant: str = "union-a") -> list[crypto.TrusteeKey]:
    officer = world.as_(tenant, "aelect")
    keys = []
    for i in range(n):
        key = crypto.new_trustee_key()
        proof = crypto.prove_key(key, f"{tenant}/{ballot_id}/trustee")
        r = officer.post(f"/api/v1/tenants/{tenant}/ballots/{ballot_id}/trustees",
                         json={"name": f"管理委員{i + 1}", "public_key": crypto.hx(key.public), "key_proof": proof})
        assert r.status_code == 201, r.json
        keys.append(key)
    return keys


def _open_ballot(world: World, **over) -> tuple[int, list[crypto.TrusteeKey]]:  # type: ignore[no-untyped-def]
    _officer(world)
    officer = world.as_("union-a", "aelect")
    r = officer.post(T, json=_ballot_body(**over))
    assert r.status_code == 201, r.json
    bid = r.json["id"]
    keys = _with_trustees(world, bid)
    r = officer.post(f"{T}/{bid}/open")
    assert r.status_code == 200 and r.json["status"] == "open", r.json
    return bid, keys


def _decrypt_and_tally(world: World, bid: int, keys: list[crypto.TrusteeKey]) -> dict:
    officer = world.as_("union-a", "aelect")
    board = officer.get(f"{T}/{bid}/board").json
    sums = [(bytes.fromhex(c["a"]), bytes.fromhex(c["b"])) for c in board["encrypted_tally"]]
    for i, key in enumerate(keys):
        factors = crypto.partial_decryption(key, sums, board["fingerprint"])
        r = officer.post(f"{T}/{bid}/decryptions", json={"trustee": f"管理委員{i + 1}", "factors": factors})
        assert r.status_code == 201, r.json
    r = officer.post(f"{T}/{bid}/tally")
    assert r.status_code == 200, r.json
    return r.json


def _vote(world: World, login: str, choices: list[int], bid: int):  # type: ignore[no-untyped-def]
    return world.as_("union-a", login).post(f"{T}/{bid}/votes", json={"choices": choices})


def test_a_ballot_runs_from_draft_to_a_verified_result(world: World):
    bid, keys = _open_ballot(world)
    receipts = {}
    for login, choice in (("a1", [1]), ("a2", [2]), ("a3", [2]), ("aadmin", [3])):
        r = _vote(world, login, choice, bid)
        assert r.status_code == 201, r.json
        receipts[login] = r.json["receipt"]
    # Re-casting replaces the earlier ballot: a1 changes their mind, the board still holds one ballot of theirs.
    r = _vote(world, "a1", [2], bid)
    assert r.status_code == 201 and r.json["receipt"] != receipts["a1"]
    member = world.as_("union-a", "a1")
    board = member.get(f"{T}/{bid}/board").json
    on_board = {i["receipt"] for i in board["items"]}
    assert r.json["receipt"] in on_board and receipts["a1"] not in on_board and receipts["a2"] in on_board
    assert board["eligible"] == 6 and board["voted"] == 4 and len(board["items"]) == 4
    # Nothing of the result before the close and the tally.
    assert member.get(f"{T}/{bid}/result").status_code == 409
    assert board["counts"] is None and board["encrypted_tally"] is None
    officer = world.as_("union-a", "aelect")
    assert officer.post(f"{T}/{bid}/tally").status_code == 409  # still open
    assert officer.post(f"{T}/{bid}/close").json["status"] == "closed"
    assert _vote(world, "a3", [1], bid).status_code == 409  # no vote after the close
    result = _decrypt_and_tally(world, bid, keys)
    assert [o["votes"] for o in result["options"]] == [0, 3, 1]
    assert result["eligible"] == 6 and result["voted"] == 4 and result["quorum_met"] is True
    assert result["units"] == []  # no unit has 10 voters: no per-unit turnout at all
    assert member.get(f"{T}/{bid}/result").json == result
    board = member.get(f"{T}/{bid}/board").json
    from federation.ballots.verify import verify_board

    report = verify_board(board)
    assert report.ok, report.problems
    assert report.counts == [0, 3, 1]
    done = _cli("ballot", "verify", "union-a", str(bid))
    assert done.returncode == 0, done.stderr
    assert "ok: 4 ballots" in done.stdout


def test_nobody_can_link_a_voter_to_a_choice_reading_every_table(world: World, app: Flask):
    """a1 and a2 vote differently. Every row of every table that names a1 (by id, login or subject) must be the
    same, up to that identity, as the rows that name a2; the board rows name nobody and carry no time."""
    bid, keys = _open_ballot(world)
    from federation.extensions import db

    with app.app_context():
        before = db.session.execute(text("SELECT count(*) FROM audit_entries")).scalar_one()
    assert _vote(world, "a1", [1], bid).status_code == 201
    assert _vote(world, "a2", [3], bid).status_code == 201
    with app.app_context():
        # Casting leaves no trace in the audit chain (a trace there would order voters against the board).
        assert db.session.execute(text("SELECT count(*) FROM audit_entries")).scalar_one() == before
        ids = dict(db.session.execute(text("SELECT login_id, id FROM users WHERE login_id IN ('a1', 'a2') AND "
                                           "tenant_id = (SELECT id FROM tenants WHERE slug = 'union-a')")).all())
        insp = inspect(db.engine)
        about: dict[str, list[str]] = {"a1": [], "a2": []}
        for table in insp.get_table_names():
            if table in ("users",):
                continue
            cols = [c["name"] for c in insp.get_columns(table)]
            for row in db.session.execute(text(f'SELECT * FROM "{table}"')).all():
                values = dict(zip(cols, row, strict=True))
                if values.get("kind") == "policy.files":  # the policy files in force name test users as examples
                    continue
                for login, uid in ids.items():
                    hit = any(c.endswith("user_id") and v == uid for c, v in values.items()) or any(
                        isinstance(v, str) and f"union-a/{login}" in v for v in values.values())
                    if hit:
                        other = "a2" if login == "a1" else "a1"
                        shown = {c: ("<me>" if v == uid and c.endswith("user_id") else v) for c, v in values.items()
                                 if c not in ("id", "token_hash", "created_at", "last_seen_at", "expires_at",
                                              "csrf_token", "seq", "hash", "prev_hash", "mac", "at",
                                              "unit_id")}  # where the member works is who they are, not a vote
                        text_form = json.dumps(shown, default=str, sort_keys=True).replace(f"union-a/{login}",
                                                                                           "<me>")
                        assert f"union-a/{other}" not in text_form
                        about[login].append(f"{table}:{text_form}")
        assert sorted(about["a1"]) == sorted(about["a2"]), (about["a1"], about["a2"])
        assert any(entry.startswith("ballot_voters:") for entry in about["a1"])
        board_cols = {c["name"] for c in insp.get_columns("ballot_votes")}
        assert board_cols == {"slot", "ballot_id", "tenant_id", "receipt", "content"}
        roll_cols = {c["name"] for c in insp.get_columns("ballot_voters")}
        assert roll_cols == {"ballot_id", "user_id", "tenant_id", "unit_id", "voted"}
        contents = [json.loads(c) for c in db.session.execute(text("SELECT content FROM ballot_votes")).scalars()]
        # No stored ballot decrypts with anything the database holds: the trustees' secrets are only in `keys`.
        secrets_in_db = json.dumps([list(r) for r in db.session.execute(text(
            "SELECT public_key, key_proof, decryption FROM ballot_trustees")).all()])
        for key in keys:
            assert crypto.sx(key.secret) not in secrets_in_db
    assert len(contents) == 2
    # One trustee's share alone decrypts nothing: a single ballot's count stays hidden.
    sums = [(bytes.fromhex(c["a"]), bytes.fromhex(c["b"])) for c in contents[0]["ciphertexts"]]
    one_share = crypto.partial_decryption(keys[0], sums, "x")
    factors = [bytes.fromhex(p["factor"]) for p in one_share]
    with pytest.raises(crypto.ProofError):
        crypto.decrypt_counts(sums, [factors], 1)


def test_every_role_outside_the_electorate_sees_nothing_of_the_ballot(world: World):
    bid, _ = _open_ballot(world)
    assert _vote(world, "a1", [1], bid).status_code == 201
    for tenant, login in (("union-b", "badmin"), ("union-b", "b1"), ("fed", "fadmin"), ("fed", "staff"),
                          ("fed", "tokyo"), ("platform", "ops")):
        api = world.as_(tenant, login)
        assert api.get(T).status_code == 404, (tenant, login)
        for path in ("", "/board", "/result", "/roll"):
            assert api.get(f"{T}/{bid}{path}").status_code == 404, (tenant, login, path)
        assert api.post(f"{T}/{bid}/votes", json={"choices": [1]}).status_code == 404
        assert api.post(f"{T}/{bid}/close").status_code == 404
    # The auditor: the board (receipts, keys, proofs), never the title or the labels; no result, no roll.
    auditor = world.as_("platform", "aud")
    board = auditor.get(f"{T}/{bid}/board")
    assert board.status_code == 200
    assert board.json["definition"]["title"] is None
    assert all(o["label"] is None for o in board.json["definition"]["options"])
    assert "執行委員長" not in json.dumps(board.json, ensure_ascii=False)
    assert auditor.get(f"{T}/{bid}").status_code == 404
    assert auditor.get(f"{T}/{bid}/result").status_code == 404
    assert auditor.get(f"{T}/{bid}/roll").status_code == 404
    # The election officer sees who voted, never how: the roll has no choice in it.
    roll = world.as_("union-a", "aelect").get(f"{T}/{bid}/roll").json
    assert roll["voted"] == 1 and {r["login_id"] for r in roll["items"] if r["voted"]} == {"a1"}
    assert set(roll["items"][0]) == {"login_id", "display_name", "name_kana", "voted"}
    # A member of the union who is not the officer cannot see the roll.
    assert world.as_("union-a", "a2").get(f"{T}/{bid}/roll").status_code == 403


def test_verify_fails_after_a_stored_ballot_the_tally_or_a_proof_is_altered(world: World, app: Flask):
    bid, keys = _open_ballot(world)
    for login, choice in (("a1", [1]), ("a2", [2]), ("a3", [1])):
        assert _vote(world, login, choice, bid).status_code == 201
    world.as_("union-a", "aelect").post(f"{T}/{bid}/close")
    _decrypt_and_tally(world, bid, keys)
    assert _cli("ballot", "verify", "union-a", str(bid)).returncode == 0
    from federation.extensions import db

    def tamper(sql: str, **params) -> None:  # type: ignore[no-untyped-def]
        with app.app_context():
            db.session.execute(text(sql), params)
            db.session.commit()

    with app.app_context():
        slot, content = db.session.execute(text("SELECT slot, content FROM ballot_votes ORDER BY receipt")).first()
        result = db.session.execute(text("SELECT result FROM ballots WHERE id = :b"), {"b": bid}).scalar_one()
        decryption = db.session.execute(text("SELECT id, decryption FROM ballot_trustees WHERE ballot_id = :b "
                                             "ORDER BY id"), {"b": bid}).first()
    # 1. One stored ballot swapped for another encryption (with its own valid proofs, made with the key).
    altered = json.loads(content)
    other = crypto.encrypt_ballot(bytes.fromhex(world.as_("union-a", "a1").get(f"{T}/{bid}").json["public_key"]),
                                  "forged", [0, 1, 0], 1, 1)
    altered["ciphertexts"][0] = other["ciphertexts"][0]
    tamper("UPDATE ballot_votes SET content = :c WHERE slot = :s", c=json.dumps(altered), s=slot)
    bad = _cli("ballot", "verify", "union-a", str(bid))
    assert bad.returncode != 0 and "does not verify" in bad.stderr
    tamper("UPDATE ballot_votes SET content = :c WHERE slot = :s", c=content, s=slot)
    assert _cli("ballot", "verify", "union-a", str(bid)).returncode == 0
    # 2. The published counts changed.
    counts = json.loads(result)
    tamper("UPDATE ballots SET result = :r WHERE id = :b", r=json.dumps({"counts": [1, 2, 0]}), b=bid)
    bad = _cli("ballot", "verify", "union-a", str(bid))
    assert bad.returncode != 0 and "published counts" in bad.stderr
    tamper("UPDATE ballots SET result = :r WHERE id = :b", r=json.dumps(counts), b=bid)
    # 3. A decryption proof altered.
    parts = json.loads(decryption[1])
    parts[0]["s"] = crypto.sx(crypto.scalar(parts[0]["s"], "s") + 1)
    tamper("UPDATE ballot_trustees SET decryption = :d WHERE id = :i", d=json.dumps(parts), i=decryption[0])
    bad = _cli("ballot", "verify", "union-a", str(bid))
    assert bad.returncode != 0 and "decryption by" in bad.stderr
    # 4. A ballot removed from the board: the count of ballots no longer matches the voters.
    tamper("UPDATE ballot_trustees SET decryption = :d WHERE id = :i", d=decryption[1], i=decryption[0])
    tamper("DELETE FROM ballot_votes WHERE slot = :s", s=slot)
    bad = _cli("ballot", "verify", "union-a", str(bid))
    assert bad.returncode != 0 and "voters voted" in bad.stderr


def test_the_roll_is_frozen_at_opening_and_casting_twice_replaces(world: World, app: Flask):
    bid, _ = _open_ballot(world)
    from federation.extensions import db
    from tenants import service as ts
    from tenants.models import Tenant, User

    with app.app_context():
        union = db.session.execute(select(Tenant).where(Tenant.slug == "union-a")).scalar_one()
        ts.create_user(union, login_id="late", display_name="遅参 者", name_kana="ちさん しゃ", password=None,
                       password_hash=_hash(), unit_id=None, actor="operator:test")
    late = world.as_("union-a", "late")
    assert late.get(f"{T}/{bid}").status_code == 404  # added after opening: not on the roll
    assert late.post(f"{T}/{bid}/votes", json={"choices": [1]}).status_code == 404
    assert late.get(T).json["items"] == []
    # Another union's member, even with the same option ids, cannot reach it.
    assert world.as_("union-b", "b1").post(f"{T}/{bid}/votes", json={"choices": [1]}).status_code == 404
    # A member suspended after the opening is refused.
    a3 = world.as_("union-a", "a3")
    with app.app_context():
        union = db.session.execute(select(Tenant).where(Tenant.slug == "union-a")).scalar_one()
        user = db.session.execute(select(User).where(User.tenant_id == union.id, User.login_id == "a3")).scalar_one()
        ts.set_user_status(union, user, "suspended", actor="operator:test")
    assert a3.post(f"{T}/{bid}/votes", json={"choices": [1]}).status_code in (401, 403)
    # Casting twice: one ballot counted.
    assert _vote(world, "a1", [1], bid).status_code == 201
    assert _vote(world, "a1", [3], bid).status_code == 201
    board = world.as_("union-a", "a1").get(f"{T}/{bid}/board").json
    assert board["voted"] == 1 and len(board["items"]) == 1
    me = world.as_("union-a", "a1").get(f"{T}/{bid}").json
    assert me["eligible"] is True and me["voted"] is True


@pytest.mark.parametrize("body, field", [
    ({"choices": [9]}, "choices"),
    ({"choices": [1, 2]}, "choices"),
    ({"choices": []}, "choices"),
    ({"choices": [1, 1]}, "choices"),
    ({"choices": ["1"]}, "choices"),
    ({"choices": [1], "extra": True}, "extra"),
    ({}, "choices"),
    ({"ballot": {"ciphertexts": [], "proofs": [], "overall": []}}, "ballot"),
])
def test_bad_votes_are_refused_with_the_field_and_store_nothing(world: World, body: dict, field: str):
    bid, _ = _open_ballot(world)
    r = world.as_("union-a", "a1").post(f"{T}/{bid}/votes", json=body)
    assert r.status_code == 422, r.json
    assert field in json.dumps(r.json["error"].get("fields", {})), r.json
    board = world.as_("union-a", "a1").get(f"{T}/{bid}/board").json
    assert board["voted"] == 0 and board["items"] == []


def test_an_encrypted_ballot_from_the_client_is_checked_and_a_forged_one_refused(world: World):
    bid, _ = _open_ballot(world)
    a1 = world.as_("union-a", "a1")
    info = a1.get(f"{T}/{bid}").json
    pk = bytes.fromhex(info["public_key"])
    good = crypto.encrypt_ballot(pk, info["fingerprint"], [0, 0, 1], 1, 1)
    # A ballot made for another ballot's fingerprint does not verify here.
    foreign = crypto.encrypt_ballot(pk, "another ballot", [0, 0, 1], 1, 1)
    r = a1.post(f"{T}/{bid}/votes", json={"ballot": foreign})
    assert r.status_code == 422 and "ballot" in r.json["error"]["fields"]
    # A ballot that marks two candidates cannot carry a valid proof: forge one by swapping in a second "1".
    forged = json.loads(json.dumps(good))
    forged["ciphertexts"][0] = forged["ciphertexts"][2]
    assert a1.post(f"{T}/{bid}/votes", json={"ballot": forged}).status_code == 422
    r = a1.post(f"{T}/{bid}/votes", json={"ballot": good})
    assert r.status_code == 201
    # Replaying someone's ballot (a copy attack) is refused: the same ciphertext is on the board already.
    assert world.as_("union-a", "a2").post(f"{T}/{bid}/votes", json={"ballot": good}).status_code == 409


def test_the_lifecycle_refuses_what_is_out_of_order(world: World):
    _officer(world)
    officer = world.as_("union-a", "aelect")
    bid = officer.post(T, json=_ballot_body()).json["id"]
    assert officer.post(f"{T}/{bid}/open").status_code == 409  # no trustee yet
    _with_trustees(world, bid, n=1)
    r = officer.post(f"{T}/{bid}/open")
    assert r.status_code == 409 and "trustees" in r.json["error"]["fields"]
    # A key with a proof made for another ballot is refused.
    key = crypto.new_trustee_key()
    r = officer.post(f"{T}/{bid}/trustees", json={"name": "x", "public_key": crypto.hx(key.public),
                                                  "key_proof": crypto.prove_key(key, "union-a/999/trustee")})
    assert r.status_code == 422
    key = crypto.new_trustee_key()
    r = officer.post(f"{T}/{bid}/trustees", json={"name": "管理委員2", "public_key": crypto.hx(key.public),
                                                  "key_proof": crypto.prove_key(key, f"union-a/{bid}/trustee")})
    assert r.status_code == 201
    assert officer.post(f"{T}/{bid}/open").status_code == 200
    assert officer.post(f"{T}/{bid}/open").status_code == 409
    assert officer.delete(f"{T}/{bid}").status_code == 409  # opened: stays on record
    assert officer.post(f"{T}/{bid}/close").status_code == 200
    r = officer.post(f"{T}/{bid}/tally")
    assert r.status_code == 409 and "trustees" in r.json["error"]["fields"]
    r = officer.post(f"{T}/{bid}/decryptions", json={"trustee": "管理委員2", "factors": [{"factor": "00" * 32,
                                                                                       "c": "00" * 32,
                                                                                       "s": "00" * 32}] * 3})
    assert r.status_code == 422 and "factors" in r.json["error"]["fields"]


@pytest.mark.parametrize("body, field", [
    ({"kind": "vote"}, "kind"),
    ({"options": [{"label": "a"}]}, "options"),
    ({"options": [{"label": "a"}, {"label": "a"}]}, "options"),
    ({"choose": {"min": 2, "max": 1}}, "choose"),
    ({"choose": {"min": 1, "max": 4}}, "choose"),
    ({"electorate": {"units": [999999]}}, "electorate.units"),
    ({"electorate": {}}, "electorate"),
    ({"quorum": 0}, "quorum"),
    ({"kind": "strike", "options": [{"label": "賛成"}, {"label": "反対"}, {"label": "棄権"}]}, "options"),
])
def test_bad_ballot_definitions_are_422_with_the_field(world: World, body: dict, field: str):
    _officer(world)
    r = world.as_("union-a", "aelect").post(T, json=_ballot_body(**body))
    assert r.status_code == 422, r.json
    assert field.split(".")[0] in json.dumps(r.json["error"]["fields"]), r.json


def test_a_strike_vote_needs_a_majority_of_the_eligible_and_units_of_ten_show_turnout(world: World, app: Flask):
    from federation.extensions import db
    from tenants import service as ts
    from tenants.models import Tenant

    with app.app_context():
        union = db.session.execute(select(Tenant).where(Tenant.slug == "union-a")).scalar_one()
        unit = ts.create_unit(union, name="a大阪支部", kind="branch", parent_id=None, prefecture=None,
                              actor="operator:test")
        for i, kana in enumerate("あいうえおかきくけこ"):
            ts.create_user(union, login_id=f"osaka{i}", display_name=f"大阪 {i}", name_kana=f"おおさか {kana}",
                           password=None, password_hash=_hash(), unit_id=unit.id, actor="operator:test")
    bid, keys = _open_ballot(world, kind="strike", title="スト権確立投票", options=None, choose=None)
    ballot = world.as_("union-a", "a1").get(f"{T}/{bid}").json
    assert [o["label"] for o in ballot["options"]] == ["賛成", "反対"]
    # 16 eligible; 8 yes is not a majority of the members.
    for i in range(8):
        assert _vote(world, f"osaka{i}", [1], bid).status_code == 201
    assert _vote(world, "osaka8", [2], bid).status_code == 201
    world.as_("union-a", "aelect").post(f"{T}/{bid}/close")
    result = _decrypt_and_tally(world, bid, keys)
    assert result["eligible"] == 16 and [o["votes"] for o in result["options"]] == [8, 1]
    assert result["rule"] == "majority_of_eligible" and result["passed"] is False
    assert [(u["unit"], u["eligible"], u["voted"]) for u in result["units"]] == [("a大阪支部", 10, 9)]


def test_quorum_is_reported(world: World):
    bid, keys = _open_ballot(world, quorum=50)
    assert _vote(world, "a1", [1], bid).status_code == 201
    world.as_("union-a", "aelect").post(f"{T}/{bid}/close")
    result = _decrypt_and_tally(world, bid, keys)
    assert result["quorum"] == 50 and result["quorum_met"] is False  # 1 of 6


def test_the_trustee_cli_keeps_the_secret_in_a_file_and_tallies_with_it(world: World, tmp_path: Path):
    _officer(world)
    officer = world.as_("union-a", "aelect")
    bid = officer.post(T, json=_ballot_body()).json["id"]
    files = [tmp_path / "t1.json", tmp_path / "t2.json"]
    env_done = _cli("ballot", "trustee", "union-a", str(bid), "委員A", "--out", str(files[0]))
    assert env_done.returncode == 0, env_done.stderr
    import os

    os.environ["MUSUBI_TEST_TRUSTEE_PASS"] = "長い合言葉 correct horse"
    try:
        done = _cli("ballot", "trustee", "union-a", str(bid), "委員B", "--out", str(files[1]),
                    "--passphrase-env", "MUSUBI_TEST_TRUSTEE_PASS")
        assert done.returncode == 0, done.stderr
        assert (files[0].stat().st_mode & 0o777) == 0o600
        sealed = json.loads(files[1].read_text())
        assert isinstance(sealed["secret"], dict)
        again = _cli("ballot", "trustee", "union-a", str(bid), "委員C", "--out", str(files[0]))
        assert again.returncode != 0 and "exists" in again.stderr
        assert officer.post(f"{T}/{bid}/open").status_code == 200
        assert _vote(world, "a1", [3], bid).status_code == 201
        assert _vote(world, "a2", [3], bid).status_code == 201
        officer.post(f"{T}/{bid}/close")
        no_pass = _cli("ballot", "tally", "union-a", str(bid), "--key", str(files[1]))
        assert no_pass.returncode != 0 and "sealed" in no_pass.stderr
        done = _cli("ballot", "tally", "union-a", str(bid), "--key", str(files[0]), "--key", str(files[1]),
                    "--passphrase-env", "MUSUBI_TEST_TRUSTEE_PASS")
        assert done.returncode == 0, done.stderr
        assert "voted 2" in done.stdout
    finally:
        os.environ.pop("MUSUBI_TEST_TRUSTEE_PASS", None)
    assert [o["votes"] for o in officer.get(f"{T}/{bid}/result").json["options"]] == [0, 0, 2]
    assert _cli("ballot", "verify", "union-a", str(bid)).returncode == 0
    missing = _cli("ballot", "verify", "union-b", str(bid))
    assert missing.returncode != 0 and len(missing.stderr.strip().splitlines()) == 1


def test_reminders_go_only_to_active_members_on_the_roll_who_have_not_voted(world: World, app: Flask):
    bid, _ = _open_ballot(world)
    assert _vote(world, "a1", [1], bid).status_code == 201
    from federation.ballots import notify
    from federation.ballots.models import Ballot
    from federation.extensions import db
    from tenants import service as ts
    from tenants.models import Tenant, User

    with app.app_context():
        union = db.session.execute(select(Tenant).where(Tenant.slug == "union-a")).scalar_one()
        a2 = db.session.execute(select(User).where(User.tenant_id == union.id, User.login_id == "a2")).scalar_one()
        ts.set_user_status(union, a2, "suspended", actor="operator:test")
        ballot = db.session.get(Ballot, bid)
        logins = {db.session.get(User, uid).login_id for uid in notify._recipients(ballot, union, True)}
        assert logins == {"a3", "aadmin", "aeditor", "aelect"}
        everyone = {db.session.get(User, uid).login_id for uid in notify._recipients(ballot, union, False)}
        assert everyone == {"a1", "a3", "aadmin", "aeditor", "aelect"}
        # The scheduler reminds once, a day before the close.
        assert notify.remind_due() == []
        ballot.closes_at = datetime.now(UTC) + timedelta(hours=2)
        db.session.commit()
        assert notify.remind_due() == [bid]
        assert notify.remind_due() == []


def test_the_scheduler_closes_a_ballot_whose_time_is_up(world: World, app: Flask):
    bid, _ = _open_ballot(world)
    assert _vote(world, "a1", [2], bid).status_code == 201
    from federation.ballots import service
    from federation.ballots.models import Ballot
    from federation.extensions import db

    with app.app_context():
        ballot = db.session.get(Ballot, bid)
        ballot.closes_at = datetime.now(UTC) - timedelta(seconds=1)
        db.session.commit()
        assert service.close_due() == [bid]
        assert db.session.get(Ballot, bid).status == "closed"
    assert _vote(world, "a2", [2], bid).status_code == 409


def test_a_member_votes_on_the_pages_with_a_confirm_step_and_sees_the_receipt(world: World):
    from web_support import Browser

    bid, _ = _open_ballot(world)
    page = f"/t/union-a/ballots/{bid}"
    member = Browser(world.app, "union-a", "a1")
    text_of = member.get(page).get_data(as_text=True)
    assert "加藤 翔" in text_of and "無記名投票" in text_of
    # Choosing shows the choice back and stores nothing yet.
    r = member.post(f"{page}/confirm", {"choice": "2"})
    assert r.status_code == 200 and "加藤 翔" in r.get_data(as_text=True)
    assert world.as_("union-a", "aelect").get(f"{T}/{bid}/board").json["voted"] == 0
    # Two choices in a choose-one ballot are refused on the confirm step, nothing stored.
    r = member.post(f"{page}/confirm", {"choice": ["1", "2"]})
    assert r.status_code == 422
    r = member.post(f"{page}/vote", {"choice": "2"})
    body = r.get_data(as_text=True)
    assert r.status_code == 200
    import re

    receipt = re.search(r'<code id="receipt">([0-9a-f]{64})</code>', body).group(1)
    board = world.as_("union-a", "a1").get(f"{T}/{bid}/board").json
    assert [i["receipt"] for i in board["items"]] == [receipt]
    # The committee's console shows turnout, never a choice; another union's officer gets nothing.
    console = Browser(world.app, "union-a", "aelect").get(page).get_data(as_text=True)
    assert '<dd id="turnout">1 / 6</dd>' in console
    assert Browser(world.app, "union-b", "badmin").get(page).status_code == 404
    assert Browser(world.app, "fed", "staff").get(page).status_code == 404
    # The push link lands on the member's own union's page.
    r = member.get(f"/ballots/{bid}")
    assert r.status_code == 302 and r.headers["Location"].endswith(page)


def test_the_printable_result_notice_after_the_tally(world: World):
    from web_support import Browser

    bid, keys = _open_ballot(world)
    assert _vote(world, "a1", [3], bid).status_code == 201
    officer = Browser(world.app, "union-a", "aelect")
    assert officer.get(f"/t/union-a/ballots/{bid}/result").status_code == 409
    assert officer.post(f"/t/union-a/ballots/{bid}/close").status_code == 302
    _decrypt_and_tally(world, bid, keys)
    notice = Browser(world.app, "union-a", "a2").get(f"/t/union-a/ballots/{bid}/result").get_data(as_text=True)
    assert "選挙結果公示" in notice and "渡辺 恵" in notice
    assert re_votes(notice) == ["0", "0", "1"]


def re_votes(html: str) -> list[str]:
    import re

    table = html.split('id="result-votes"')[1].split("</table>")[0]
    return re.findall(r"<td>(\d+)</td>", table)

