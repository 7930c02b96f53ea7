"""The auditor's questions about reach and the past: what-can agrees with asking the firewall directly, exposure at
a past time matches the world as it was then (replayed from the audit chain), a diff names what was gained and lost,
and an export verifies with the documented rule alone."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from conftest import AUDIT_KEY, World

AUDITOR = ("platform", "aud")
PROJECT = Path(__file__).resolve().parent.parent


def get(w: World, path: str, **query) -> dict:  # type: ignore[no-untyped-def]
    r = w.as_(*AUDITOR).get(path, query_string=query)
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def test_exposure_at_a_past_time_matches_the_world_as_it_was_then(world: World) -> None:
    then = get(world, "/api/v1/audit/exposure")
    time.sleep(0.01)
    moment = datetime.now(UTC)
    time.sleep(0.01)
    admin_a, admin_b = world.as_("union-a", "aadmin"), world.as_("union-b", "badmin")
    assert admin_a.put("/api/v1/unions/union-a/affiliation/cascade", json={"cascade": "opted_out"}).status_code == 200
    assert admin_b.delete("/api/v1/unions/union-b/affiliation").status_code == 200
    now = get(world, "/api/v1/audit/exposure")
    assert now["crossings"] != then["crossings"]
    past = get(world, "/api/v1/audit/exposure", at=moment.isoformat())
    assert past["crossings"] == then["crossings"]
    keep = ("union", "federation", "status", "cascade", "statement")
    assert [{k: u[k] for k in keep} for u in past["unions"]] == [{k: u[k] for k in keep} for u in then["unions"]]


def test_exposure_diff_names_what_the_federation_gained_and_lost(world: World) -> None:
    start = datetime.now(UTC)
    time.sleep(0.01)
    admin_a, admin_b = world.as_("union-a", "aadmin"), world.as_("union-b", "badmin")
    assert admin_a.put("/api/v1/unions/union-a/affiliation/cascade", json={"cascade": "opted_out"}).status_code == 200
    assert admin_b.put("/api/v1/unions/union-b/affiliation/cascade", json={"cascade": "opted_in"}).status_code == 200
    time.sleep(0.01)
    diff = get(world, "/api/v1/audit/exposure/diff", **{"from": start.isoformat(), "to": datetime.now(UTC).isoformat()})
    by_pair = {(c["from"], c["to"]): c for c in diff["crossings"]}
    assert "fed_editor: notices/deliver" in by_pair[("fed", "union-a")]["lost"]
    assert by_pair[("fed", "union-a")]["gained"] == []
    assert "fed_editor: notices/deliver" in by_pair[("fed", "union-b")]["gained"]
    flips = {u["union"]: (u["before"]["cascade"], u["after"]["cascade"]) for u in diff["unions"]}
    assert flips == {"union-a": ("opted_in", "opted_out"), "union-b": ("opted_out", "opted_in")}
    r = world.as_(*AUDITOR).get("/api/v1/audit/exposure/diff",
                                query_string={"from": datetime.now(UTC).isoformat(), "to": start.isoformat()})
    assert r.status_code == 422 and "to" in r.get_json()["error"]["fields"]


def test_what_can_agrees_with_asking_the_firewall_about_every_tenant_object_and_action(world: World, app) -> None:
    from sqlalchemy import select

    from federation.audit.queries import parse_subject
    from federation.extensions import db
    from federation.firewall import firewall
    from federation.firewall.templates import ACTIONS, OBJECTS
    from tenants.models import Tenant

    for subject_text in ("user:fed/staff", "user:union-b/badmin", "user:union-a/a1", "user:platform/aud"):
        result = get(world, "/api/v1/audit/what-can", subject=subject_text)
        with app.app_context():
            subject, _ = parse_subject(subject_text)
            slugs = list(db.session.execute(select(Tenant.slug)).scalars())
            expected = {(slug, f"{o}/{a}") for slug in slugs for o in OBJECTS for a in ACTIONS
                        if firewall.allowed(subject, slug, o, a)}
        got = set()
        for group in result["reach"]:
            targets = slugs if group["tenant"] == "every tenant" else [group["tenant"]]
            got |= {(t, p) for t in targets for p in group["permissions"]}
        assert got == expected, subject_text
    staff = get(world, "/api/v1/audit/what-can", subject="user:fed/staff")
    reach = {g["tenant"]: g["permissions"] for g in staff["reach"]}
    # Into each affiliated union: the cascade, and the KPI board's counts (docs/kpi.md); never its content.
    assert reach["union-a"] == ["kpi/read", "notices/deliver", "notices/relay"]
    assert reach["union-b"] == ["kpi/read", "notices/relay"]
    assert "union-c" not in reach


def test_an_export_verifies_with_the_cli_and_an_edited_export_does_not(world: World, app, tmp_path) -> None:
    r = world.as_(*AUDITOR).get("/api/v1/audit/log/export")
    assert r.status_code == 200 and r.mimetype == "application/x-ndjson"
    lines = [json.loads(line) for line in r.get_data(as_text=True).splitlines()]
    verify = get(world, "/api/v1/audit/log/verify")
    assert len(lines) == verify["entries"] and lines[-1]["hash"] == verify["head"]
    good, bad = tmp_path / "good.jsonl", tmp_path / "bad.jsonl"
    good.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in lines), encoding="utf-8")
    lines[3]["data"]["role"] = "union_admin"
    bad.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in lines), encoding="utf-8")
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
           "MUSUBI_INSTANCE": str(tmp_path), "SECRET_KEY": "test-secret-key-0123456789abcdef",
           "MUSUBI_AUDIT_KEY": AUDIT_KEY}
    ok = subprocess.run([sys.executable, "cli.py", "audit", "verify-log", "--file", str(good)], cwd=PROJECT,
                        env=env, capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.startswith(f"ok: {len(lines)} entries"), ok.stderr
    broken = subprocess.run([sys.executable, "cli.py", "audit", "verify-log", "--file", str(bad)], cwd=PROJECT,
                            env=env, capture_output=True, text=True)
    assert broken.returncode != 0
    assert broken.stderr.count("\n") == 1 and "entry 4" in broken.stderr
    # Someone else's key cannot vouch for this export; with no key at all, only the hashes are checked.
    other = {**env, "MUSUBI_AUDIT_KEY": "another-audit-key-0123456789abcdef01234"}
    wrong = subprocess.run([sys.executable, "cli.py", "audit", "verify-log", "--file", str(good)], cwd=PROJECT,
                           env=other, capture_output=True, text=True)
    assert wrong.returncode != 0 and "entry 1" in wrong.stderr and "MAC" in wrong.stderr
    hashes = subprocess.run([sys.executable, "cli.py", "audit", "verify-log", "--no-key", "--file", str(good)],
                            cwd=PROJECT, env=other, capture_output=True, text=True)
    assert hashes.returncode == 0 and "MACs not checked" in hashes.stdout, hashes.stderr


def test_the_auditor_api_is_closed_to_everyone_else(world: World) -> None:
    # F8: the platform admin shares the platform tenant with the log (403); outsiders learn nothing (404).
    for who, status in ((("fed", "fadmin"), 404), (("union-a", "aadmin"), 404), (("platform", "ops"), 403)):
        for path in ("/api/v1/audit/what-can?subject=user:fed/staff", "/api/v1/audit/log/export",
                     "/api/v1/audit/exposure/diff?from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z"):
            assert world.as_(*who).get(path).status_code == status, (who, path)
