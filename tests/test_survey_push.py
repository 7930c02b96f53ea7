"""A survey tells its members' phones once when it opens: at once when it is created open, else when the scheduler
finds its opening time has come. Only members of that union who may answer and have not answered get it; a survey
closed or deleted before the job runs tells nobody. The inbox lists it, and the meetings not yet answered, under
要対応."""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from conftest import World
from sqlalchemy import update

from federation import jobs

BASE = "/api/v1/tenants/union-a/surveys"
PEOPLE = (("union-a", "a1"), ("union-a", "a2"), ("union-a", "aadmin"), ("union-b", "b1"), ("union-b", "badmin"),
          ("fed", "staff"))


def _when(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


def _body(opens: float, closes: float = 7) -> dict:
    return {"title": "夏季一時金アンケート", "anonymous": True, "opens_at": _when(opens), "closes_at": _when(closes),
            "questions": [{"kind": "single", "text": "妥結額に納得していますか", "options": ["はい", "いいえ"]}]}


def _devices(world: World, push_service) -> dict[str, str]:  # type: ignore[no-untyped-def]
    endpoints = {}
    for tenant, login_id in PEOPLE:
        sub = push_service.new_subscription()
        assert world.as_(tenant, login_id).post("/api/v1/me/push-subscriptions", json=sub).status_code == 201
        endpoints[sub["endpoint"]] = f"{tenant}/{login_id}"
    jobs.drain()
    return endpoints


def _pushed(push_service, endpoints: dict[str, str], before: int) -> list[tuple[str, dict]]:  # type: ignore[no-untyped-def]
    return sorted((endpoints[m.endpoint], json.loads(m.payload)) for m in push_service.messages()[before:])


def _tick(app) -> dict[str, list[int]]:  # type: ignore[no-untyped-def]
    from federation.scheduler.notices import tick

    with app.app_context():
        out = tick()
    jobs.drain()
    return out


def test_a_survey_open_at_once_pushes_to_its_own_members_only_once(world: World, push_service, app) -> None:
    endpoints = _devices(world, push_service)
    before = len(push_service.messages())
    a1 = world.as_("union-a", "a1")
    made = world.as_("union-a", "aeditor").post(BASE, json=_body(opens=-0.01))
    assert made.status_code == 201, made.get_json()
    survey = made.get_json()
    jobs.drain()
    got = _pushed(push_service, endpoints, before)
    # union-a's members and its admin, nobody of union-b or the federation (F1).
    assert [who for who, _ in got] == ["union-a/a1", "union-a/a2", "union-a/aadmin"]
    payload = got[0][1]
    assert payload["kind"] == "survey_opened" and payload["title"] == "夏季一時金アンケート"
    assert payload["url"] == f"/surveys/{survey['id']}"
    # The inbox says what waits for the member.
    page = a1.get("/inbox")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "要対応" in html and "夏季一時金アンケート" in html
    # Ticking again announces nothing twice.
    seen = len(push_service.messages())
    assert survey["id"] not in _tick(app)["surveys_announced"]
    assert len(push_service.messages()) == seen
    # Answering takes it off the inbox's list.
    q = str(survey["questions"][0]["id"])
    assert a1.post(f"{BASE}/{survey['id']}/answers", json={"answers": {q: 0}}).status_code == 201
    assert "夏季一時金アンケート" not in a1.get("/inbox").get_data(as_text=True)


def test_a_later_survey_is_announced_by_the_scheduler_when_it_opens_and_skips_who_answered(
        world: World, push_service, app) -> None:
    from federation.extensions import db
    from federation.space.surveys.models import Survey

    endpoints = _devices(world, push_service)
    before = len(push_service.messages())
    survey = world.as_("union-a", "aeditor").post(BASE, json=_body(opens=1)).get_json()
    jobs.drain()
    assert _tick(app)["surveys_announced"] == []
    assert _pushed(push_service, endpoints, before) == []  # not open yet: nothing
    with app.app_context():
        db.session.execute(update(Survey).where(Survey.id == survey["id"]).values(
            opens_at=datetime.now(UTC) - timedelta(minutes=1)))
        db.session.commit()
    q = str(survey["questions"][0]["id"])
    assert world.as_("union-a", "a2").post(f"{BASE}/{survey['id']}/answers", json={"answers": {q: 1}}).status_code \
        == 201
    assert _tick(app)["surveys_announced"] == [survey["id"]]
    assert [who for who, _ in _pushed(push_service, endpoints, before)] == ["union-a/a1", "union-a/aadmin"]
    assert _tick(app)["surveys_announced"] == []


def test_a_survey_closed_or_suspended_members_get_no_push(world: World, push_service, app) -> None:
    from federation.extensions import db
    from federation.space.surveys.models import Survey
    from federation.space.surveys.reminders import push_survey_opened
    from tenants.models import User

    endpoints = _devices(world, push_service)
    # One that closed while the scheduler was down is never announced.
    late = world.as_("union-a", "aeditor").post(BASE, json=_body(opens=1, closes=2)).get_json()
    with app.app_context():
        db.session.execute(update(Survey).where(Survey.id == late["id"]).values(
            opens_at=datetime.now(UTC) - timedelta(days=2), closes_at=datetime.now(UTC) - timedelta(days=1)))
        db.session.commit()
    before = len(push_service.messages())
    assert _tick(app)["surveys_announced"] == []
    # The job reads again when it runs: a suspended member gets nothing, a closed survey tells nobody.
    survey = world.as_("union-a", "aeditor").post(BASE, json=_body(opens=1)).get_json()
    with app.app_context():
        db.session.execute(update(User).where(User.login_id == "a1").values(status="suspended"))
        db.session.execute(update(Survey).where(Survey.id == survey["id"]).values(
            opens_at=datetime.now(UTC) - timedelta(minutes=1)))
        db.session.commit()
        push_survey_opened(late["id"])
    jobs.drain()
    assert _pushed(push_service, endpoints, before) == []
    assert _tick(app)["surveys_announced"] == [survey["id"]]
    assert [who for who, _ in _pushed(push_service, endpoints, before)] == ["union-a/a2", "union-a/aadmin"]


def test_the_inbox_lists_meetings_not_yet_answered_until_the_member_answers(world: World) -> None:
    staff, a1 = world.as_("fed", "staff"), world.as_("union-a", "a1")
    ids = {}
    for title, starts in (("秋季セミナー", 3), ("終わった集会", -1)):
        made = staff.post("/api/v1/tenants/fed/notices", json={
            "title": title, "body": "本文", "category": "seminar", "audience": {"all": True},
            "event": {"starts_at": _when(starts), "ends_at": _when(starts + 0.1), "place": "連合会館"}})
        assert made.status_code == 201, made.get_json()
        ids[title] = made.get_json()["id"]
        assert staff.post(f"/api/v1/tenants/fed/notices/{ids[title]}/publish").status_code in (200, 202)
    general = staff.post("/api/v1/tenants/fed/notices", json={
        "title": "機関紙のお知らせ", "body": "本文", "category": "general", "audience": {"all": True}}).get_json()
    staff.post(f"/api/v1/tenants/fed/notices/{general['id']}/publish")
    jobs.drain()
    html = a1.get("/inbox").get_data(as_text=True)
    todo = html.split('id="todo"')[1].split("</section>")[0]
    assert "出欠未回答" in todo and "秋季セミナー" in todo
    assert "終わった集会" not in todo and "機関紙のお知らせ" not in todo  # past, or nothing to answer
    # An opted-out union's member does not have it at all; its admin has it to relay, not to answer.
    assert "秋季セミナー" not in world.as_("union-b", "b1").get("/inbox").get_data(as_text=True)
    badmin = world.as_("union-b", "badmin").get("/inbox").get_data(as_text=True)
    assert "秋季セミナー" in badmin and 'id="todo"' not in badmin
    assert a1.put(f"/api/v1/me/inbox/{ids['秋季セミナー']}/reaction", json={"stamp": "absent"}).status_code == 200
    assert 'id="todo"' not in a1.get("/inbox").get_data(as_text=True)
