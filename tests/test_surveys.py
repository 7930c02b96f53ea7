"""Surveys through the API: answering once inside the dates, anonymous answers that cannot be tied to a member,
results and response rates per branch, the CSV export, and the isolation matrix (F1, F5, F8)."""
from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from conftest import World
from sqlalchemy import inspect, select, text

BASE = "/api/v1/tenants/union-a/surveys"


def _when(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


def survey_body(**over):  # type: ignore[no-untyped-def]
    body = {
        "title": "2026年 職場環境アンケート",
        "anonymous": False,
        "opens_at": _when(-1),
        "closes_at": _when(7),
        "questions": [
            {"kind": "single", "text": "残業は増えましたか", "options": ["増えた", "変わらない", "減った"]},
            {"kind": "multiple", "text": "要求したいこと", "options": ["賃上げ", "休暇", "在宅勤務"]},
            {"kind": "text", "text": "ご意見", "required": False},
        ],
    }
    body.update(over)
    return body


def create(world: World, **over) -> dict:  # type: ignore[no-untyped-def]
    r = world.as_("union-a", "aeditor").post(BASE, json=survey_body(**over))
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def answers_for(survey: dict, single: int, multiple: list[int], free: str | None) -> dict:
    q = [str(x["id"]) for x in survey["questions"]]
    return {"answers": {q[0]: single, q[1]: multiple, q[2]: free}}


def test_member_answers_once_and_officer_sees_results(world: World) -> None:
    s = create(world)
    a1, a2 = world.as_("union-a", "a1"), world.as_("union-a", "a2")
    assert a1.post(f"{BASE}/{s['id']}/answers", json=answers_for(s, 0, [0, 1], "休憩室がほしい")).status_code == 201
    assert a2.post(f"{BASE}/{s['id']}/answers", json=answers_for(s, 0, [1], None)).status_code == 201
    again = a1.post(f"{BASE}/{s['id']}/answers", json=answers_for(s, 2, [2], "二度目"))
    assert again.status_code == 409
    assert "survey" in again.get_json()["error"]["fields"]
    assert a1.get(f"{BASE}/{s['id']}").get_json()["answered"] is True
    res = world.as_("union-a", "aeditor").get(f"{BASE}/{s['id']}/results").get_json()
    assert res["members"] == 5 and res["answered"] == 2 and res["rate"] == 0.4
    q1, q2, q3 = res["questions"]
    assert [o["count"] for o in q1["options"]] == [2, 0, 0]
    assert [o["count"] for o in q2["options"]] == [1, 2, 0]
    # A named survey shows who wrote what.
    assert q3["texts"] == [{"text": "休憩室がほしい", "login_id": "a1", "display_name": "A渡辺 恵"}]
    units = {u["unit_id"]: u for u in res["units"]}
    branch, branch2 = world.ids["union-a:branch"], world.ids["union-a:branch2"]
    assert (units[branch]["members"], units[branch]["answered"]) == (3, 1)
    assert (units[branch2]["members"], units[branch2]["answered"]) == (2, 1)


def test_anonymous_answers_cannot_be_linked_to_a_member(world: World) -> None:
    s = create(world, anonymous=True)
    for login_id, choice in (("a1", 0), ("a2", 2), ("a3", 1), ("aadmin", 0), ("aeditor", 1)):
        r = world.as_("union-a", login_id).post(f"{BASE}/{s['id']}/answers",
                                                json=answers_for(s, choice, [choice], f"意見{login_id}"))
        assert r.status_code == 201, r.get_json()
    from federation.extensions import db
    from tenants.models import User

    with world.app.app_context():
        engine = inspect(db.engine)
        # Nothing in an answer row names a member or records when it was written.
        assert {c["name"] for c in engine.get_columns("survey_responses")} == {"id", "survey_id", "user_id",
                                                                                "answers"}
        assert {c["name"] for c in engine.get_columns("survey_participants")} == {"survey_id", "user_id"}
        rows = db.session.execute(text("SELECT id, user_id, answers FROM survey_responses WHERE survey_id = :s"),
                                  {"s": s["id"]}).all()
        users = db.session.execute(select(User.id, User.login_id)).all()
        assert len(rows) == 5
        for row_id, user_id, answers in rows:
            assert user_id is None
            assert len(row_id) == 32 and not row_id.isdigit()
            assert not any(str(uid) == row_id for uid, _ in users)
            # The text itself is the member's own words; nothing else in the row comes from their account.
            assert not any(f'"{login}"' in answers for _, login in users)
        participants = db.session.execute(text("SELECT user_id FROM survey_participants WHERE survey_id = :s"),
                                          {"s": s["id"]}).scalars().all()
        assert len(participants) == 5
    res = world.as_("union-a", "aeditor").get(f"{BASE}/{s['id']}/results").get_json()
    assert all(t["login_id"] is None and t["display_name"] is None for t in res["questions"][2]["texts"])
    assert len(res["questions"][2]["texts"]) == 5 and res["withheld"] is False
    # Both branches have fewer than five respondents: their figures are withheld, their sizes are not.
    units = {u["unit_id"]: u for u in res["units"]}
    assert [tuple(units[world.ids[f"union-a:{b}"]][k] for k in ("members", "answered", "rate", "withheld"))
         for b in ("branch", "branch2")] == [(3, None, None, True), (2, None, None, True)]
    again = world.as_("union-a", "a1").post(f"{BASE}/{s['id']}/answers", json=answers_for(s, 1, [1], None))
    assert again.status_code == 409


def test_answers_refused_outside_the_dates(world: World) -> None:
    early = create(world, opens_at=_when(1), closes_at=_when(2))
    late = create(world, opens_at=_when(-3), closes_at=_when(-1))
    a1 = world.as_("union-a", "a1")
    r = a1.post(f"{BASE}/{early['id']}/answers", json=answers_for(early, 0, [0], None))
    assert r.status_code == 409 and "opens_at" in r.get_json()["error"]["fields"]
    r = a1.post(f"{BASE}/{late['id']}/answers", json=answers_for(late, 0, [0], None))
    assert r.status_code == 409 and "closes_at" in r.get_json()["error"]["fields"]
    listed = {s["id"]: s["is_open"] for s in a1.get(BASE).get_json()["items"]}
    assert listed == {early["id"]: False, late["id"]: False}


def test_csv_export_has_bom_and_counts(world: World) -> None:
    s = create(world, anonymous=True)
    world.as_("union-a", "a1").post(f"{BASE}/{s['id']}/answers", json=answers_for(s, 1, [0, 2], "=HYPERLINK(1)"))
    # Enough respondents for an anonymous survey's counts and texts to be shown at all.
    for who in ("a2", "a3", "aadmin", "aeditor"):
        world.as_("union-a", who).post(f"{BASE}/{s['id']}/answers", json=answers_for(s, 0, [0], None))
    r = world.as_("union-a", "aadmin").get(f"{BASE}/{s['id']}/results.csv")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/csv")
    assert r.data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(r.data.decode("utf-8-sig"))))
    assert rows[0][0] == "section"
    assert ["option", "1", "残業は増えましたか", "", "変わらない", "1"] == rows[rows.index(next(
        row for row in rows if row[:5] == ["option", "1", "残業は増えましたか", "", "変わらない"]))][:6]
    texts = [row for row in rows if row[0] == "text"]
    # A formula typed as an answer stays text in Excel.
    assert texts[0][4] == "'=HYPERLINK(1)" and texts[0][8] == "" and texts[0][9] == ""


def test_officer_closes_a_survey_early_and_answers_stop(world: World) -> None:
    s = create(world)
    a1, a2 = world.as_("union-a", "a1"), world.as_("union-a", "a2")
    assert a1.post(f"{BASE}/{s['id']}/answers", json=answers_for(s, 0, [0], None)).status_code == 201
    closed = world.as_("union-a", "aeditor").post(f"{BASE}/{s['id']}/close")
    assert closed.status_code == 200 and closed.get_json()["is_open"] is False
    assert datetime.fromisoformat(closed.get_json()["closes_at"]) <= datetime.now(UTC)
    r = a2.post(f"{BASE}/{s['id']}/answers", json=answers_for(s, 1, [1], None))
    assert r.status_code == 409 and "closes_at" in r.get_json()["error"]["fields"]
    # The answer given before closing stays counted; closing again changes nothing.
    results = world.as_("union-a", "aadmin").get(f"{BASE}/{s['id']}/results").get_json()
    assert results["answered"] == 1
    again = world.as_("union-a", "aeditor").post(f"{BASE}/{s['id']}/close").get_json()
    assert again["closes_at"] == closed.get_json()["closes_at"]
    # A survey that has not opened yet closes at its opening time: it never took an answer.
    future = create(world, opens_at=_when(1), closes_at=_when(3))
    shut = world.as_("union-a", "aeditor").post(f"{BASE}/{future['id']}/close").get_json()
    assert shut["closes_at"] == shut["opens_at"] and shut["is_open"] is False


def test_delete_survey(world: World) -> None:
    s = create(world)
    assert world.as_("union-a", "a1").delete(f"{BASE}/{s['id']}").status_code == 403
    assert world.as_("union-a", "aeditor").delete(f"{BASE}/{s['id']}").status_code == 204
    assert world.as_("union-a", "a1").get(f"{BASE}/{s['id']}").status_code == 404


# --- isolation matrix -------------------------------------------------------------------------------------------

OUTSIDERS = [("fed", "fadmin"), ("fed", "staff"), ("platform", "aud"), ("platform", "ops"), ("union-b", "badmin"),
             ("union-b", "b1")]


@pytest.fixture(scope="module")
def survey_in_a(_module_world: World) -> dict:
    r = _module_world.as_("union-a", "aeditor").post(BASE, json=survey_body(title="秘密のアンケート"))
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def _endpoints(s: dict) -> list[tuple[str, str, dict | None]]:
    sid = s["id"]
    return [("GET", BASE, None), ("POST", BASE, survey_body()), ("GET", f"{BASE}/{sid}", None),
            ("DELETE", f"{BASE}/{sid}", None), ("POST", f"{BASE}/{sid}/answers", answers_for(s, 0, [0], None)),
            ("GET", f"{BASE}/{sid}/results", None), ("GET", f"{BASE}/{sid}/results.csv", None),
            ("POST", f"{BASE}/{sid}/reminders", None), ("POST", f"{BASE}/{sid}/close", None)]


@pytest.mark.parametrize("tenant,login_id", OUTSIDERS)
def test_outsiders_get_404_on_every_survey_endpoint(shared_world: World, survey_in_a: dict, tenant: str,
                                                     login_id: str) -> None:
    api = shared_world.as_(tenant, login_id)
    for method, path, body in _endpoints(survey_in_a):
        r = api.client.open(path, method=method, json=body, headers=api._headers())
        assert r.status_code == 404, (tenant, login_id, method, path, r.status_code)
        assert "秘密" not in r.get_data(as_text=True)


def test_plain_member_gets_403_on_officer_endpoints(shared_world: World, survey_in_a: dict) -> None:
    member = shared_world.as_("union-a", "a1")
    sid = survey_in_a["id"]
    assert member.post(BASE, json=survey_body()).status_code == 403
    assert member.get(f"{BASE}/{sid}/results").status_code == 403
    assert member.get(f"{BASE}/{sid}/results.csv").status_code == 403
    assert member.delete(f"{BASE}/{sid}").status_code == 403
    assert member.post(f"{BASE}/{sid}/reminders").status_code == 403
    assert member.post(f"{BASE}/{sid}/close").status_code == 403


def test_neighbour_survey_id_is_404_through_own_union(shared_world: World, survey_in_a: dict) -> None:
    r = shared_world.as_("union-b", "b1").get(f"/api/v1/tenants/union-b/surveys/{survey_in_a['id']}")
    assert r.status_code == 404


# --- bad input -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("over,field", [
    ({"title": ""}, "title"),
    ({"opens_at": "tomorrow"}, "opens_at"),
    ({"opens_at": "2026-01-01T00:00:00"}, "opens_at"),
    ({"closes_at": _when(-5)}, "closes_at"),
    ({"questions": []}, "questions"),
    ({"questions": [{"kind": "rating", "text": "?"}]}, "questions"),
    ({"questions": [{"kind": "single", "text": "?", "options": ["only one"]}]}, "questions"),
    ({"questions": [{"kind": "text", "text": "?", "options": ["x", "y"]}]}, "questions"),
    ({"anonymous": "maybe"}, "anonymous"),
    ({"colour": "red"}, "colour"),
])
def test_bad_survey_names_the_field(shared_world: World, over: dict, field: str) -> None:
    r = shared_world.as_("union-a", "aeditor").post(BASE, json=survey_body(**over))
    assert r.status_code == 422, r.get_json()
    assert field in r.get_json()["error"]["fields"]


def test_bad_answers_name_the_field(shared_world: World, survey_in_a: dict) -> None:
    q = [str(x["id"]) for x in survey_in_a["questions"]]
    path = f"{BASE}/{survey_in_a['id']}/answers"
    member = shared_world.as_("union-a", "a3")
    cases = [
        ({"answers": {q[0]: 5, q[1]: [0]}}, f"answers.{q[0]}"),
        ({"answers": {q[0]: True, q[1]: [0]}}, f"answers.{q[0]}"),
        ({"answers": {q[0]: 0, q[1]: [0, 0]}}, f"answers.{q[1]}"),
        ({"answers": {q[0]: 0, q[1]: "賃上げ"}}, f"answers.{q[1]}"),
        ({"answers": {q[0]: 0}}, f"answers.{q[1]}"),
        ({"answers": {q[0]: 0, q[1]: [0], q[2]: 12}}, f"answers.{q[2]}"),
        ({"answers": {q[0]: 0, q[1]: [0], q[2]: "x" * 5001}}, f"answers.{q[2]}"),
        ({"answers": {q[0]: 0, q[1]: [0], "999999": "x"}}, "answers.999999"),
        ({"answers": {q[0]: 0, q[1]: [0]}, "name": "me"}, "name"),
        ({}, "answers"),
        ({"answers": [1, 2]}, "answers"),
    ]
    for body, field in cases:
        r = member.post(path, json=body)
        assert r.status_code == 422, (body, r.get_json())
        assert field in r.get_json()["error"]["fields"], (body, r.get_json())
    assert member.post(path, data="not json", content_type="application/json").status_code == 400


def test_huge_or_unknown_ids_are_404_not_500(shared_world: World) -> None:
    editor = shared_world.as_("union-a", "aeditor")
    for path in (f"{BASE}/{2**40}", f"{BASE}/{2**40}/results", f"{BASE}/0/answers"):
        method = "post" if path.endswith("answers") else "get"
        r = getattr(editor, method)(path, json={"answers": {}} if method == "post" else None)
        assert r.status_code == 404, (path, r.status_code)


# --- reminders --------------------------------------------------------------------------------------------------


def test_reminder_reaches_only_members_who_have_not_answered(world: World,
                                                            push_service) -> None:  # type: ignore[no-untyped-def]
    import json

    from federation import jobs

    s = create(world, anonymous=True)
    devices = {}
    for login_id in ("a1", "a2"):
        sub = push_service.new_subscription()
        assert world.as_("union-a", login_id).post("/api/v1/me/push-subscriptions", json=sub).status_code == 201
        devices[login_id] = sub["endpoint"]
    world.as_("union-a", "a1").post(f"{BASE}/{s['id']}/answers", json=answers_for(s, 0, [0], None))
    assert world.as_("union-a", "a1").post(f"{BASE}/{s['id']}/reminders").status_code == 403
    r = world.as_("union-a", "aeditor").post(f"{BASE}/{s['id']}/reminders")
    assert r.status_code == 202, r.get_json()
    assert r.get_json()["members"] == 4  # admin, editor, a2, a3
    jobs.drain()
    got = [(m.endpoint, json.loads(m.payload)) for m in push_service.messages()]
    assert [e for e, _ in got] == [devices["a2"]]
    assert got[0][1]["kind"] == "survey_reminder" and got[0][1]["title"] == "2026年 職場環境アンケート"


def test_reminder_for_a_closed_survey_is_refused(world: World) -> None:
    s = create(world, opens_at=_when(-3), closes_at=_when(-1))
    r = world.as_("union-a", "aeditor").post(f"{BASE}/{s['id']}/reminders")
    assert r.status_code == 409 and "closes_at" in r.get_json()["error"]["fields"]


def _add_members(world: World, unit_name: str | None, logins: list[str]) -> int | None:
    """Active members of union A in a new branch (or in none), as an officer would set them up."""
    from conftest import PW

    from federation.auth.passwords import hash_password
    from federation.extensions import db
    from tenants import service as ts
    from tenants.models import Tenant

    with world.app.app_context():
        tenant = db.session.execute(select(Tenant).where(Tenant.slug == "union-a")).scalar_one()
        unit_id = None
        if unit_name:
            unit_id = ts.create_unit(tenant, name=unit_name, kind="branch", parent_id=None, prefecture=None,
                                     actor="operator:test").id
        for login in logins:
            ts.create_user(tenant, login_id=login, display_name=login, name_kana="て すと", password=None,
                           password_hash=hash_password(PW), unit_id=unit_id,
                           actor="operator:test")
    return unit_id


def test_a_one_person_unit_does_not_say_whether_its_member_answered(world: World) -> None:
    """The de-anonymising trick: put one member in a unit of their own and read that unit's response rate."""
    lone = _add_members(world, "一人支部", ["lone"])
    big = _add_members(world, "大支部", [f"big{i}" for i in range(6)])
    from conftest import login

    s = create(world, anonymous=True)
    for who in ["lone"] + [f"big{i}" for i in range(6)]:
        api = login(world.client, "union-a", who)
        assert api.post(f"{BASE}/{s['id']}/answers", json=answers_for(s, 0, [0], "意見")).status_code == 201
    officer = world.as_("union-a", "aeditor")
    res = officer.get(f"{BASE}/{s['id']}/results").get_json()
    units = {u["unit_id"]: u for u in res["units"]}
    assert units[lone]["members"] == 1
    assert (units[lone]["answered"], units[lone]["rate"], units[lone]["withheld"]) == (None, None, True)
    # Total minus the units shown must not give the lone member away either: the withheld units together reach
    # the threshold, or the big unit is withheld as well.
    hidden = [u for u in res["units"] if u["withheld"]]
    assert len(hidden) >= 2
    shown = sum(u["answered"] for u in res["units"] if not u["withheld"])
    assert res["answered"] - shown >= 5 or not any(not u["withheld"] for u in res["units"])
    assert units[big]["members"] == 6
    rows = list(csv.reader(io.StringIO(officer.get(f"{BASE}/{s['id']}/results.csv").data.decode("utf-8-sig"))))
    lone_row = next(r for r in rows if r[0] == "unit_rate" and r[3] == "一人支部")
    assert (lone_row[5], lone_row[6], lone_row[7]) == ("", "1", "")


def test_an_anonymous_survey_with_few_answers_shows_no_counts_or_texts(world: World) -> None:
    s = create(world, anonymous=True)
    for who in ("a1", "a2"):
        r = world.as_("union-a", who).post(f"{BASE}/{s['id']}/answers", json=answers_for(s, 1, [2], f"秘密{who}"))
        assert r.status_code == 201
    officer = world.as_("union-a", "aeditor")
    res = officer.get(f"{BASE}/{s['id']}/results").get_json()
    assert res["answered"] == 2 and res["withheld"] is True and res["min_respondents"] == 5
    assert all(o["count"] is None for q in res["questions"] for o in q["options"])
    assert all(q["texts"] == [] for q in res["questions"])
    body = officer.get(f"{BASE}/{s['id']}/results.csv").data.decode("utf-8-sig")
    assert "秘密" not in body
    assert all(r[5] == "" for r in csv.reader(io.StringIO(body)) if r[0] == "option")
    # A named survey is not anonymous to begin with: its few answers are shown as they are.
    named = create(world)
    world.as_("union-a", "a1").post(f"{BASE}/{named['id']}/answers", json=answers_for(named, 1, [2], "名前つき"))
    res = officer.get(f"{BASE}/{named['id']}/results").get_json()
    assert res["withheld"] is False and res["questions"][0]["options"][1]["count"] == 1
