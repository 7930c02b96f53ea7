"""The auditor's API gives the RIGHT answers, not just answers: check explains the role chain, the cross-tenant link
and its cascade state, and what is missing for a denial; who-can agrees with asking the firewall about every user;
exposure states what crosses each boundary and follows a cascade flip; and the auditor reads no content (F1, F6)."""
from __future__ import annotations

from typing import Any

from conftest import World
from flask import Flask
from sqlalchemy import select

AUDITOR = ("platform", "aud")


def check(w: World, subject: str, tenant: str, obj: str, action: str) -> dict[str, Any]:
    r = w.as_(*AUDITOR).get("/api/v1/audit/check", query_string={"subject": subject, "tenant": tenant,
                                                                 "object": obj, "action": action})
    assert r.status_code == 200, r.get_json()
    return r.get_json()


# --- check ---------------------------------------------------------------------------------------------------------

def test_check_allow_through_inheritance_shows_the_whole_role_chain(shared_world: World) -> None:
    result = check(shared_world, "user:union-a/aadmin", "union-a", "notices", "read")
    assert result["allowed"] is True
    assert result["acting_from"] == "union-a"
    via_admin = [m for m in result["explain"] if m["role"] == "union_admin"]
    assert len(via_admin) == 1
    assert via_admin[0]["via"] == ["union_admin", "union_editor", "member"]
    assert via_admin[0]["rule"] == "p, member, self, notices, read"
    assert via_admin[0]["link"] == "self" and "affiliation" not in via_admin[0]
    assert "union_admin → union_editor → member" in result["reason"]
    roles = {(r["role"], r["source"]) for r in result["roles"]}
    assert roles == {("union_admin", "grant"), ("member", "derived")}


def test_check_names_the_rule_the_role_itself_holds_without_a_chain(shared_world: World) -> None:
    result = check(shared_world, "user:union-a/aadmin", "union-a", "cascade", "write")
    assert result["allowed"] is True
    assert [(m["role"], m["via"], m["rule"]) for m in result["explain"]] == [
        ("union_admin", ["union_admin"], "p, union_admin, self, cascade, write")]


def test_check_cross_tenant_allow_names_the_affiliation_and_its_cascade_state(shared_world: World) -> None:
    result = check(shared_world, "user:fed/staff", "union-a", "notices", "deliver")
    assert result["allowed"] is True
    assert result["acting_from"] == "fed" and result["tenant"] == "union-a"
    [match] = result["explain"]
    assert match["rule"] == "p, fed_editor, opted_in, notices, deliver"
    assert match["link"] == "opted_in" and match["via"] == ["fed_editor"]
    aff = match["affiliation"]
    assert (aff["federation"], aff["union"], aff["status"], aff["cascade"]) == ("fed", "union-a", "active",
                                                                              "opted_in")
    assert aff["cascade_changed_by"] == "operator:test"


def test_check_relay_to_an_opted_out_union_goes_through_the_affiliation_alone(shared_world: World) -> None:
    result = check(shared_world, "user:fed/staff", "union-b", "notices", "relay")
    [match] = result["explain"]
    assert match["link"] == "affiliated"
    assert (match["affiliation"]["union"], match["affiliation"]["cascade"]) == ("union-b", "opted_out")


def test_check_deny_for_an_opted_out_union_says_the_opt_in_is_missing(shared_world: World) -> None:
    result = check(shared_world, "user:fed/staff", "union-b", "notices", "deliver")
    assert result["allowed"] is False and result["explain"] == []
    nearest = {n["rule"]: n["missing"] for n in result["nearest"]}
    # The role is held, so the opt-in is the one thing missing; nothing else is as near.
    assert nearest == {"p, fed_editor, opted_in, notices, deliver": [
        "union-b opting in to fed's cascade (now: affiliated, cascade opted_out)"]}


def test_check_deny_for_an_unaffiliated_union_says_so(shared_world: World) -> None:
    result = check(shared_world, "user:fed/staff", "union-c", "notices", "deliver")
    assert result["allowed"] is False
    missing = [m for n in result["nearest"] for m in n["missing"]]
    assert missing == ["union-c opting in to fed's cascade (now: not affiliated)"]


def test_check_deny_for_union_content_says_the_federations_rule_holds_only_at_home(shared_world: World) -> None:
    result = check(shared_world, "user:fed/fadmin", "union-a", "notices", "read")
    assert result["allowed"] is False and result["explain"] == []
    # fed_admin inherits `notices read` for its own tenant; the union's member rule is further away (two misses).
    assert result["nearest"] == [{"rule": "p, fed_editor, self, notices, read",
                                  "missing": ["acting from inside union-a (the subject acts from fed)"]}]


def test_check_suspended_officer_holds_no_role(world: World) -> None:
    # An officer (a granted role, public through who-can) is answered as the user they are.
    r = world.as_("union-a", "aadmin").patch("/api/v1/tenants/union-a/members/aeditor", json={"status": "suspended"})
    assert r.status_code == 200, r.get_json()
    result = check(world, "user:union-a/aeditor", "union-a", "notices", "read")
    assert result["allowed"] is False
    assert result["roles"] == []
    assert "not active" in result["reason"]


def _as_login(result: dict[str, Any], login: str) -> dict[str, Any]:
    """The answer with the asked login written as LOGIN, so answers about two logins can be compared."""
    import json

    return json.loads(json.dumps(result).replace(login, "LOGIN"))


def test_check_does_not_tell_whether_a_union_member_exists(world: World) -> None:
    """The auditor cannot probe a union's member list (F1) through check: an unknown login, an active plain member
    and a suspended one get the same answer, in a union with neighbours (another union, the federation)."""
    r = world.as_("union-a", "aadmin").patch("/api/v1/tenants/union-a/members/a2", json={"status": "suspended"})
    assert r.status_code == 200, r.get_json()
    for tenant, obj, action in (("union-a", "notices", "read"), ("union-a", "members", "write"),
                                ("union-b", "notices", "read"), ("fed", "notices", "read")):
        answers = [_as_login(check(world, f"user:union-a/{login}", tenant, obj, action), login)
                   for login in ("a1", "a2", "NO-SUCH-EMPLOYEE-99")]
        assert answers[0] == answers[1] == answers[2], (tenant, obj, action)
        assert "note" in answers[0]
    # The same holds in the neighbouring union, and a member is still a member there.
    b = [_as_login(check(world, f"user:union-b/{login}", "union-b", "notices", "read"), login)
         for login in ("b1", "NOBODY")]
    assert b[0] == b[1] and b[0]["allowed"] is True
    # what-can answers alike too.
    aud = world.as_(*AUDITOR)
    reach = [_as_login(aud.get("/api/v1/audit/what-can", query_string={"subject": f"user:union-a/{login}"})
                       .get_json(), login) for login in ("a1", "NO-SUCH-EMPLOYEE-99")]
    assert reach[0] == reach[1]
    # A federation's staff are not a union's member list: an unknown login there is still an error.
    r = aud.get("/api/v1/audit/check", query_string={"subject": "user:fed/nobody", "tenant": "fed",
                                                     "object": "notices", "action": "read"})
    assert r.status_code == 422


def test_check_takes_role_subjects_with_and_without_a_home_tenant(shared_world: World) -> None:
    editor = check(shared_world, "role:union_editor@union-a", "union-a", "notices", "publish")
    assert editor["allowed"] is True and editor["subject"] == "role:union_editor@union-a"
    assert editor["roles"] == [{"role": "union_editor", "tenant": "union-a", "source": "asked"}]

    admin_elsewhere = check(shared_world, "role:union_admin@union-a", "union-b", "notices", "read")
    assert admin_elsewhere["allowed"] is False and admin_elsewhere["acting_from"] == "union-a"

    staff = check(shared_world, "role:fed_editor@fed", "union-a", "notices", "deliver")
    assert staff["allowed"] is True and staff["explain"][0]["affiliation"]["cascade"] == "opted_in"

    other_federation = check(shared_world, "role:fed_editor@fed2", "union-a", "notices", "deliver")
    assert other_federation["allowed"] is False
    assert other_federation["nearest"][0]["missing"] == [
        "union-a opting in to fed2's cascade (now: not affiliated)"]

    # Without @TENANT, a federation role acts from the union's federation.
    bare = check(shared_world, "role:fed_editor", "union-b", "notices", "relay")
    assert bare["allowed"] is True and bare["acting_from"] == "fed" and bare["subject"] == "role:fed_editor"

    auditor = check(shared_world, "role:auditor", "union-a", "notices", "read")
    assert auditor["allowed"] is False and auditor["acting_from"] == "platform"


# --- who-can -------------------------------------------------------------------------------------------------------

def _everyone(app: Flask) -> list[tuple[Any, str, str]]:
    """(subject, subject text, home tenant) for every user of the world, with their status read now."""
    from federation.auth.service import subject_of
    from federation.extensions import db
    from tenants.models import User

    with app.app_context():
        return [(subject_of(u), u.subject, u.tenant.slug) for u in db.session.execute(select(User)).scalars()]


def _brute_force(app: Flask, tenant: str, obj: str, action: str) -> set[str]:
    from federation.firewall import firewall

    with app.app_context():
        return {text for subject, text, _ in _everyone(app) if firewall.allowed(subject, tenant, obj, action)}


WHO_CAN_QUESTIONS = [
    ("union-a", "notices", "read"), ("union-a", "notices", "write"), ("union-a", "notices", "deliver"),
    ("union-b", "notices", "deliver"), ("union-b", "notices", "relay"), ("union-c", "notices", "relay"),
    ("union-a", "members", "read"), ("union-a", "cascade", "write"), ("union-a", "cascade", "read"),
    ("union-a", "roles", "read"), ("union-a", "documents", "read"), ("union-b", "applications", "approve"),
    ("fed", "affiliation", "write"), ("fed", "notices", "publish"), ("fed", "members", "read"),
    ("platform", "audit", "read"), ("platform", "tenant", "write"), ("fed2", "notices", "write"),
]


def test_who_can_agrees_with_asking_the_firewall_about_every_user(world: World) -> None:
    admin = world.as_("union-a", "aadmin")
    # Suspended people hold nothing: an officer and a member, so both the list and the count must leave them out.
    assert admin.patch("/api/v1/tenants/union-a/members/aeditor", json={"status": "suspended"}).status_code == 200
    assert admin.patch("/api/v1/tenants/union-a/members/a3", json={"status": "suspended"}).status_code == 200
    aud = world.as_(*AUDITOR)
    everyone = _everyone(world.app)
    for tenant, obj, action in WHO_CAN_QUESTIONS:
        r = aud.get("/api/v1/audit/who-can", query_string={"tenant": tenant, "object": obj, "action": action})
        assert r.status_code == 200
        answer = r.get_json()
        question = f"{tenant} {obj} {action}"
        listed = {u["subject"] for u in answer["users"]}
        counted: set[str] = set()
        for group in answer["groups"]:
            members = {text for subject, text, home in everyone if home == group["tenant"] and subject.active}
            assert group["count"] == len(members), question
            counted |= members
        assert listed | counted == _brute_force(world.app, tenant, obj, action), question
        # Every listed user holds a granted role; nobody is listed for merely being a member (F1).
        assert all(u["role"] != "member" for u in answer["users"]), question
        body = r.get_data(as_text=True)
        for plain in ("user:union-a/a1", "user:union-a/a2", "A渡辺 恵", "A青木 健", "user:union-b/b1"):
            assert plain not in body, question
        assert "user:union-a/aeditor" not in listed and "user:union-a/a3" not in counted, question
        pairs = [(role["role"], role["acting_from"]) for role in answer["roles"]]
        assert len(pairs) == len(set(pairs)), f"{question}: a role listed twice"
        assert all(role["rule"] for role in answer["roles"]), question


def test_who_can_for_a_union_notice_delivery_lists_both_sides_exactly(shared_world: World) -> None:
    answer = shared_world.as_(*AUDITOR).get("/api/v1/audit/who-can", query_string={
        "tenant": "union-a", "object": "notices", "action": "deliver"}).get_json()
    assert {(r["role"], r["acting_from"]) for r in answer["roles"]} == {
        ("fed_admin", "fed"), ("fed_editor", "fed"), ("unit_editor", "fed"),
        ("union_admin", "union-a"), ("union_editor", "union-a")}
    assert {u["subject"] for u in answer["users"]} == {
        "user:fed/fadmin", "user:fed/staff", "user:fed/tokyo", "user:union-a/aadmin", "user:union-a/aeditor"}
    assert answer["groups"] == []


def test_who_can_counts_members_as_a_group(shared_world: World) -> None:
    answer = shared_world.as_(*AUDITOR).get("/api/v1/audit/who-can", query_string={
        "tenant": "union-b", "object": "notices", "action": "read"}).get_json()
    assert [(g["role"], g["tenant"], g["count"]) for g in answer["groups"]] == [("member", "union-b", 5)]
    assert {u["subject"] for u in answer["users"]} == {"user:union-b/badmin", "user:union-b/beditor"}


# --- exposure -----------------------------------------------------------------------------------------------------

UNION_CONTENT = ("notices", "documents", "surveys", "applications", "members", "units", "receipts")
FED_ROLES = ("fed_admin", "fed_editor", "unit_editor")


def _exposure(w: World) -> dict[str, Any]:
    r = w.as_(*AUDITOR).get("/api/v1/audit/exposure")
    assert r.status_code == 200
    return r.get_json()


def _crossings(exposure: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    return {(c["from"], c["to"]): set(c["permissions"]) for c in exposure["crossings"]}


def _union(exposure: dict[str, Any], slug: str) -> dict[str, Any]:
    [entry] = [u for u in exposure["unions"] if u["union"] == slug]
    return entry


def test_exposure_lists_exactly_what_crosses_each_boundary(shared_world: World) -> None:
    exposure = _exposure(shared_world)
    crossings = _crossings(exposure)
    # The federation's reach: the cascade (F2) and, through the affiliation alone, the KPI board's counts.
    kpi = {f"{role}: kpi/read" for role in FED_ROLES}
    assert crossings[("fed", "union-a")] == {f"{role}: notices/{act}" for role in FED_ROLES
                                             for act in ("deliver", "relay")} | kpi
    assert crossings[("fed", "union-b")] == {f"{role}: notices/relay" for role in FED_ROLES} | kpi
    # Nothing reaches the unaffiliated union, and fed2 reaches nobody.
    assert set(crossings) == {("platform", "every tenant"), ("fed", "union-a"), ("fed", "union-b")}
    # The platform's reach into every tenant holds no content of any union (F1).
    for permission in crossings[("platform", "every tenant")]:
        assert permission.split(": ")[1].split("/")[0] not in UNION_CONTENT, permission

    a, b, c = (_union(exposure, s) for s in ("union-a", "union-b", "union-c"))
    assert (a["federation"], a["status"], a["cascade"]) == ("fed", "active", "opted_in")
    assert (b["federation"], b["status"], b["cascade"]) == ("fed", "active", "opted_out")
    assert (c["federation"], c["status"], c["cascade"]) == (None, None, None)
    assert "fed can deliver notices to all members of union-a" in a["statement"]
    assert "officers of union-b only, for relay" in b["statement"]
    for entry in (a, b):
        assert "it can read no content of this union, only its KPI counts" in entry["statement"]
        assert "it can also" not in entry["statement"]
    assert "no federation can read anything of union-c" in c["statement"]
    assert "no federation can deliver to union-c" in c["statement"]


def test_exposure_follows_a_cascade_flip_and_an_ended_affiliation(world: World) -> None:
    before = _exposure(world)
    r = world.as_("union-b", "badmin").put("/api/v1/unions/union-b/affiliation/cascade", json={"cascade": "opted_in"})
    assert r.status_code == 200
    after = _exposure(world)
    assert after["policy_version"] > before["policy_version"]
    assert _crossings(after)[("fed", "union-b")] == {f"{role}: notices/{act}" for role in FED_ROLES
                                                     for act in ("deliver", "relay")} | {
                                                         f"{role}: kpi/read" for role in FED_ROLES}
    b = _union(after, "union-b")
    assert b["cascade"] == "opted_in" and b["cascade_changed_by"] == "user:union-b/badmin"
    assert "fed can deliver notices to all members of union-b" in b["statement"]
    assert "it can read no content of this union, only its KPI counts" in b["statement"]
    # The same moment, in the same format, as check reports it.
    explained = check(world, "user:fed/staff", "union-b", "notices", "deliver")["explain"][0]["affiliation"]
    assert b["cascade_changed_at"] == explained["cascade_changed_at"]
    assert b["cascade_changed_at"][:4].isdigit() and "T" in b["cascade_changed_at"]

    assert world.as_("union-a", "aadmin").delete("/api/v1/unions/union-a/affiliation").status_code == 200
    ended = _exposure(world)
    assert ("fed", "union-a") not in _crossings(ended)
    a = _union(ended, "union-a")
    assert a["federation"] is None
    assert "no federation can deliver to union-a" in a["statement"]


# --- the auditor reads no content (F1) ---------------------------------------------------------------------------

def test_auditor_gets_404_on_a_unions_members_and_notices(world: World) -> None:
    editor = world.as_("union-a", "aeditor")
    created = editor.post("/api/v1/tenants/union-a/notices", json={
        "title": "職場集会のお知らせ", "body": "定期大会の議案について", "category": "meeting",
        "audience": {"all": True}})
    assert created.status_code == 201, created.get_json()
    notice_id = created.get_json()["id"]
    aud = world.as_(*AUDITOR)
    reads = [
        "/api/v1/tenants/union-a/members", "/api/v1/tenants/union-a/members/a1", "/api/v1/tenants/union-a/units",
        "/api/v1/tenants/union-a/notices", f"/api/v1/tenants/union-a/notices/{notice_id}",
        f"/api/v1/tenants/union-a/notices/{notice_id}/stats", f"/api/v1/tenants/union-a/notices/{notice_id}/receipts",
        "/api/v1/tenants/fed/members", "/api/v1/tenants/fed/notices",
    ]
    for path in reads:
        r = aud.get(path)
        assert r.status_code == 404, path
        assert r.get_json() == {"error": {"code": "not_found", "message": "not found", "fields": {}}}, path
        assert "職場集会" not in r.get_data(as_text=True)
    r = aud.post("/api/v1/tenants/union-a/notices", json={
        "title": "監査", "body": "x", "category": "general", "audience": {"all": True}})
    assert r.status_code == 404
    assert aud.patch("/api/v1/tenants/union-a/members/a1", json={"display_name": "x"}).status_code == 404
    # ...while what is the auditor's to see stays visible: the union's roles and its affiliation.
    assert aud.get("/api/v1/tenants/union-a/roles").status_code == 200
    assert aud.get("/api/v1/unions/union-a/affiliation").status_code == 200
