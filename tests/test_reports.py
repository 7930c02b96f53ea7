"""Upward reports: the federation asks, each addressed union's admins answer for their union, in versions, until the
request closes. Nothing else flows up; union B never sees union A's answer; the federation never lists a union's
reports; a council officer sees only the requests they wrote and the answers of unions in their council; members
see nothing of it. Reminders reach only the officers of unions that have not answered, as read when the job runs."""
from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

from conftest import World
from sqlalchemy import func, select

from federation import jobs

FED = "/api/v1/federations/fed/reports"


def _union(slug: str) -> str:
    return f"/api/v1/unions/{slug}/reports"


def _due(days: float = 7) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


def _body(**over) -> dict:  # type: ignore[no-untyped-def]
    body = {"title": "2027春闘 回答集計", "due_at": _due(), "audience": {"all": True}, "fields": [
        {"key": "raise_yen", "label": "賃上げ額", "type": "integer", "unit": "円"},
        {"key": "raise_pct", "label": "賃上げ率", "type": "decimal", "unit": "%"},
        {"key": "status", "label": "妥結状況", "type": "choice", "choices": ["妥結", "継続交渉"]},
        {"key": "note", "label": "備考", "type": "text", "required": False}]}
    body.update(over)
    return body


def _make(world: World, who=("fed", "staff"), **over) -> dict:  # type: ignore[no-untyped-def]
    r = world.as_(*who).post(FED, json=_body(**over))
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def _answer(world: World, slug: str, report_id: int, values: dict, who: str | None = None):  # type: ignore[no-untyped-def]
    return world.as_(slug, who or f"{slug[-1]}admin").put(f"{_union(slug)}/{report_id}/answer", json={"values": values})


A_VALUES = {"raise_yen": 12000, "raise_pct": 3.5, "status": "妥結", "note": "=HYPERLINK(\"x\")"}
B_VALUES = {"raise_yen": 8000, "raise_pct": 2.5, "status": "継続交渉"}


def _count(app, model) -> int:  # type: ignore[no-untyped-def]
    from federation.extensions import db

    with app.app_context():
        return db.session.execute(select(func.count()).select_from(model)).scalar_one()


def test_unions_answer_and_the_federation_sees_totals(world: World) -> None:
    report = _make(world)
    assert report["is_open"] and [f["key"] for f in report["fields"]] == ["raise_yen", "raise_pct", "status", "note"]
    # Union A and B see it; union C (not affiliated) does not.
    assert [r["id"] for r in world.as_("union-a", "aadmin").get(_union("union-a")).get_json()["items"]] \
        == [report["id"]]
    assert [r["id"] for r in world.as_("union-b", "badmin").get(_union("union-b")).get_json()["items"]] \
        == [report["id"]]
    assert world.as_("union-c", "cadmin").get(_union("union-c")).get_json()["items"] == []
    assert world.as_("union-c", "cadmin").get(f"{_union('union-c')}/{report['id']}").status_code == 404
    assert _answer(world, "union-c", report["id"], B_VALUES).status_code == 404

    r = _answer(world, "union-a", report["id"], A_VALUES)
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["version"] == 1
    answers = world.as_("fed", "staff").get(f"{FED}/{report['id']}/answers").get_json()
    assert answers["addressed"] == 2 and answers["answered"] == 1
    assert [u["union"] for u in answers["unanswered"]] == ["union-b"]
    assert _answer(world, "union-b", report["id"], B_VALUES).status_code == 200
    answers = world.as_("fed", "fadmin").get(f"{FED}/{report['id']}/answers").get_json()
    assert answers["unanswered"] == [] and {i["union"] for i in answers["items"]} == {"union-a", "union-b"}
    [council] = answers["councils"]
    assert council["name"] == "東京県協" and council["answered"] == 2
    assert council["fields"]["raise_yen"] == {"count": 2, "total": 20000, "average": 10000}
    assert council["fields"]["raise_pct"] == {"count": 2, "total": 6, "average": 3}
    assert answers["blocks"][0]["fields"]["raise_yen"]["total"] == 20000
    assert "status" not in council["fields"] and "note" not in council["fields"]


def test_corrections_are_versions_and_close_ends_them(world: World, app) -> None:
    from federation.reports.models import ReportAnswer

    report = _make(world)
    assert _answer(world, "union-a", report["id"], A_VALUES).get_json()["version"] == 1
    corrected = _answer(world, "union-a", report["id"], {**A_VALUES, "raise_yen": 12500})
    assert corrected.get_json()["version"] == 2
    one = world.as_("union-a", "aadmin").get(f"{_union('union-a')}/{report['id']}").get_json()
    assert [v["version"] for v in one["versions"]] == [2, 1]
    assert [v["values"]["raise_yen"] for v in one["versions"]] == [12500, 12000]
    assert one["answer"]["values"]["raise_yen"] == 12500
    answers = world.as_("fed", "staff").get(f"{FED}/{report['id']}/answers").get_json()
    assert answers["items"][0]["version"] == 2 and answers["items"][0]["values"]["raise_yen"] == 12500
    assert _count(app, ReportAnswer) == 2

    assert world.as_("fed", "staff").post(f"{FED}/{report['id']}/close").get_json()["is_open"] is False
    late = _answer(world, "union-a", report["id"], A_VALUES)
    assert late.status_code == 409 and late.get_json()["error"]["code"]
    assert _answer(world, "union-b", report["id"], B_VALUES).status_code == 409
    assert _count(app, ReportAnswer) == 2


def test_every_submission_is_audited_naming_both_tenants_never_the_values(world: World, app) -> None:
    from federation.audit.chain import AuditEntry
    from federation.extensions import db

    report = _make(world)
    _answer(world, "union-a", report["id"], A_VALUES)
    _answer(world, "union-a", report["id"], {**A_VALUES, "raise_yen": 13000})
    with app.app_context():
        rows = db.session.execute(select(AuditEntry).where(AuditEntry.kind == "report.answered")
                                  .order_by(AuditEntry.seq)).scalars().all()
        got = [(e.actor, e.tenant, e.other_tenant, json.loads(e.data) if isinstance(e.data, str) else e.data)
               for e in rows]
    assert [g[:3] for g in got] == [("user:union-a/aadmin", "union-a", "fed")] * 2
    assert [g[3]["version"] for g in got] == [1, 2]
    assert all("12000" not in json.dumps(g[3]) and "13000" not in json.dumps(g[3]) for g in got)


def test_bad_answers_are_422_naming_the_field_and_store_nothing(world: World, app) -> None:
    from federation.reports.models import ReportAnswer

    report = _make(world)
    cases = {
        "values.raise_yen": {**A_VALUES, "raise_yen": "12000"},
        "values.raise_pct": {**A_VALUES, "raise_pct": "many"},
        "values.status": {**A_VALUES, "status": "決裂"},
        "values.bogus": {**A_VALUES, "bogus": 1},
    }
    missing = dict(A_VALUES)
    del missing["raise_yen"]
    for field, values in [*cases.items(), ("values.raise_yen", missing), ("values.raise_yen", {**A_VALUES,
                                                                                              "raise_yen": True})]:
        r = _answer(world, "union-a", report["id"], values)
        assert r.status_code == 422, (field, r.get_json())
        assert field in r.get_json()["error"]["fields"], (field, r.get_json())
    r = world.as_("union-a", "aadmin").put(f"{_union('union-a')}/{report['id']}/answer", json={"values": [1]})
    assert r.status_code == 422
    r = world.as_("union-a", "aadmin").put(f"{_union('union-a')}/{report['id']}/answer",
                                           json={"values": A_VALUES, "extra": 1})
    assert r.status_code == 422
    assert _count(app, ReportAnswer) == 0
    # The optional text may be left out.
    assert _answer(world, "union-a", report["id"], B_VALUES).status_code == 200


def test_bad_requests_are_422_naming_the_field(world: World, app) -> None:
    from federation.reports.models import ReportRequest

    staff = world.as_("fed", "staff")
    good = _body()["fields"]
    cases = [
        ("fields[1].key", [good[0], {**good[1], "key": "raise_yen"}]),
        ("fields[0].key", [{**good[0], "key": "Bad Key"}]),
        ("fields[0].type", [{**good[0], "type": "date"}]),
        ("fields[2].choices", [good[0], good[1], {**good[2], "choices": []}]),
        ("fields[0].choices", [{**good[0], "choices": ["a"]}]),
        ("fields[0].label", [{**good[0], "label": ""}]),
        ("fields[0].colour", [{**good[0], "colour": "red"}]),
        ("fields", []),
    ]
    for field, fields_ in cases:
        r = staff.post(FED, json=_body(fields=fields_))
        assert r.status_code == 422 and field in r.get_json()["error"]["fields"], (field, r.get_json())
    for field, over in [("due_at", {"due_at": _due(-1)}), ("audience.units[0]", {"audience": {"units": [999999]}}),
                        ("audience.unions[0]", {"audience": {"unions": ["union-c"]}})]:
        r = staff.post(FED, json=_body(**over))
        assert r.status_code == 422 and field in r.get_json()["error"]["fields"], (field, r.get_json())
    assert staff.post(FED, json={**_body(), "extra": 1}).status_code == 422
    assert _count(app, ReportRequest) == 0


def test_isolation_between_unions_members_and_the_federation(world: World) -> None:
    report = _make(world)
    _answer(world, "union-a", report["id"], A_VALUES)
    rid = report["id"]
    # Union B sees its own (empty) answer only, never union A's.
    b = world.as_("union-b", "badmin").get(f"{_union('union-b')}/{rid}").get_json()
    assert b["answer"] is None and b["versions"] == []
    for who in (("union-b", "badmin"), ("union-b", "b1"), ("fed", "staff"), ("fed", "fadmin"), ("fed", "tokyo"),
                ("union-a", "a1"), ("union-a", "aeditor"), ("platform", "aud"), ("platform", "ops")):
        api = world.as_(*who)
        assert api.get(_union("union-a")).status_code in (403, 404), who
        assert api.get(f"{_union('union-a')}/{rid}").status_code in (403, 404), who
        r = api.put(f"{_union('union-a')}/{rid}/answer", json={"values": B_VALUES})
        assert r.status_code in (403, 404), who
        assert "12000" not in r.get_data(as_text=True)
    # Members of a union see and answer nothing: officers only.
    assert world.as_("union-b", "b1").get(_union("union-b")).status_code in (403, 404)
    assert world.as_("union-b", "b1").put(f"{_union('union-b')}/{rid}/answer",
                                          json={"values": B_VALUES}).status_code in (403, 404)
    # Unions and their members cannot read the federation's side.
    for who in (("union-a", "aadmin"), ("union-a", "a1"), ("union-b", "badmin")):
        assert world.as_(*who).get(f"{FED}/{rid}/answers").status_code in (403, 404)
        assert world.as_(*who).get(FED).status_code in (403, 404)
    # Another federation sees nothing of it.
    assert world.as_("fed2", "staff").get(f"/api/v1/federations/fed2/reports/{rid}").status_code == 404


def test_a_council_officer_sees_only_their_own_requests(world: World) -> None:
    staff_report = _make(world)
    tokyo = world.as_("fed", "tokyo")
    # Everyone is outside a council officer's reach; their own council is not.
    assert tokyo.post(FED, json=_body()).status_code == 422
    own = _make(world, who=("fed", "tokyo"), audience={"units": [world.ids["council"]]})
    assert [r["id"] for r in tokyo.get(FED).get_json()["items"]] == [own["id"]]
    assert tokyo.get(f"{FED}/{staff_report['id']}").status_code == 404
    assert tokyo.get(f"{FED}/{staff_report['id']}/answers").status_code == 404
    assert tokyo.get(f"{FED}/{staff_report['id']}/answers.csv").status_code == 404
    assert tokyo.post(f"{FED}/{staff_report['id']}/close").status_code == 404
    _answer(world, "union-a", own["id"], A_VALUES)
    answers = tokyo.get(f"{FED}/{own['id']}/answers").get_json()
    assert [i["union"] for i in answers["items"]] == ["union-a"]
    # The federation's editors see both.
    assert {r["id"] for r in world.as_("fed", "staff").get(FED).get_json()["items"]} == {own["id"],
                                                                                       staff_report["id"]}


def test_a_union_that_left_no_longer_sees_or_answers(world: World, app) -> None:
    from federation.extensions import db
    from tenants import service as ts
    from tenants.models import Affiliation, Tenant

    report = _make(world)
    with app.app_context():
        union_b = db.session.execute(select(Tenant).where(Tenant.slug == "union-b")).scalar_one()
        aff = db.session.execute(select(Affiliation).where(Affiliation.union_id == union_b.id)).scalar_one()
        ts.end_affiliation(aff, actor="user:union-b/badmin", side="union")
        db.session.commit()
    assert world.as_("union-b", "badmin").get(_union("union-b")).get_json()["items"] == []
    assert _answer(world, "union-b", report["id"], B_VALUES).status_code == 404
    answers = world.as_("fed", "staff").get(f"{FED}/{report['id']}/answers").get_json()
    assert answers["addressed"] == 1


def test_csv_export_is_injection_safe(world: World) -> None:
    report = _make(world)
    _answer(world, "union-a", report["id"], A_VALUES)
    _answer(world, "union-b", report["id"], {**B_VALUES, "raise_yen": -5})
    r = world.as_("fed", "staff").get(f"{FED}/{report['id']}/answers.csv")
    assert r.status_code == 200 and r.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(r.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0] == ["union", "name", "council", "block", "submitted_at", "version", "raise_yen", "raise_pct",
                       "status", "note"]
    by_union = {row[0]: row for row in rows[1:]}
    assert by_union["union-a"][6:] == ["12000", "3.5", "妥結", "'=HYPERLINK(\"x\")"]
    assert by_union["union-a"][2] == "東京県協" and by_union["union-a"][5] == "1"
    assert by_union["union-b"][6] == "'-5"


def _user_id(app, tenant: str, login_id: str) -> int:  # type: ignore[no-untyped-def]
    from federation.extensions import db
    from tenants.models import Tenant, User

    with app.app_context():
        return db.session.execute(select(User.id).join(Tenant, Tenant.id == User.tenant_id).where(
            Tenant.slug == tenant, User.login_id == login_id)).scalar_one()


def _recipients(app, report_id: int) -> list[int]:  # type: ignore[no-untyped-def]
    from federation.extensions import db
    from federation.reports import service
    from federation.reports.models import ReportRequest

    with app.app_context():
        return service.reminder_recipients(db.session.get(ReportRequest, report_id))


def test_reminders_reach_only_officers_of_unions_that_have_not_answered(world: World, app, push_service) -> None:
    people = (("union-a", "aadmin"), ("union-a", "a1"), ("union-b", "badmin"), ("union-b", "b1"), ("fed", "staff"))
    endpoints = {}
    for tenant, login_id in people:
        sub = push_service.new_subscription()
        assert world.as_(tenant, login_id).post("/api/v1/me/push-subscriptions", json=sub).status_code == 201
        endpoints[sub["endpoint"]] = f"{tenant}/{login_id}"
    jobs.drain()
    report = _make(world)
    jobs.drain()
    # Sent: the officers of both addressed unions are told, and nobody else (members, the staff, union C).
    told = [(endpoints[m.endpoint], json.loads(m.payload)) for m in push_service.messages()]
    assert sorted(who for who, _ in told) == ["union-a/aadmin", "union-b/badmin"]
    assert {p["kind"] for _, p in told} == {"report_request"} and told[0][1]["url"] == f"/reports/{report['id']}"
    _answer(world, "union-a", report["id"], A_VALUES)
    before = len(push_service.messages())
    r = world.as_("fed", "staff").post(f"{FED}/{report['id']}/reminders")
    assert r.status_code == 202 and r.get_json()["unions"] == 1
    jobs.drain()
    got = [(endpoints[m.endpoint], json.loads(m.payload)) for m in push_service.messages()[before:]]
    assert [who for who, _ in got] == ["union-b/badmin"]
    assert got[0][1]["kind"] == "report_reminder" and got[0][1]["title"] == "2027春闘 回答集計"
    # Once union B has answered, nobody is left to remind.
    _answer(world, "union-b", report["id"], B_VALUES)
    assert _recipients(app, report["id"]) == []
    # Unions cannot ask for reminders.
    assert world.as_("union-a", "aadmin").post(f"{FED}/{report['id']}/reminders").status_code in (403, 404)


def test_reminder_recipients_are_read_when_the_job_runs(world: World, app) -> None:
    from federation.extensions import db
    from tenants import service as ts
    from tenants.models import Tenant, User

    report = _make(world)
    assert _recipients(app, report["id"]) == sorted([_user_id(app, "union-a", "aadmin"),
                                                     _user_id(app, "union-b", "badmin")])
    with app.app_context():
        union_b = db.session.execute(select(Tenant).where(Tenant.slug == "union-b")).scalar_one()
        beditor = db.session.execute(select(User).where(User.tenant_id == union_b.id,
                                                        User.login_id == "beditor")).scalar_one()
        badmin = db.session.execute(select(User).where(User.tenant_id == union_b.id,
                                                       User.login_id == "badmin")).scalar_one()
        ts.grant_role(union_b, beditor, "union_admin", None, actor="user:union-b/badmin")
        db.session.commit()
        ts.revoke_role(union_b, badmin, "union_admin", None, actor="user:union-b/beditor")
        db.session.commit()
    _answer(world, "union-a", report["id"], A_VALUES)
    assert _recipients(app, report["id"]) == [_user_id(app, "union-b", "beditor")]
