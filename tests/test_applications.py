"""Applications (申請): form types, filing, one- and two-step approval, the status history, withdrawal, CSV export,
and F1/F8 for every endpoint."""
from __future__ import annotations

import csv
import io

A = "/api/v1/tenants/union-a"

KEICHO = {
    "name": "慶弔費申請",
    "fields": [
        {"key": "event", "label": "事由", "kind": "choice", "required": True, "choices": ["結婚", "出産", "弔事"]},
        {"key": "event_date", "label": "発生日", "kind": "date", "required": True},
        {"key": "amount", "label": "金額", "kind": "number"},
        {"key": "note", "label": "備考", "kind": "text"},
    ],
}
GOOD = {"event": "結婚", "event_date": "2026-10-10", "amount": 30000, "note": "=SUM(A1)"}


def make_type(world, body=None, slug="union-a", admin="aadmin"):  # type: ignore[no-untyped-def]
    r = world.as_(slug, admin).post(f"/api/v1/tenants/{slug}/application-types", json=body or KEICHO)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def file(world, type_id, who="a1", values=None):  # type: ignore[no-untyped-def]
    r = world.as_("union-a", who).post(f"{A}/applications", json={"type_id": type_id, "values": values or GOOD})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def test_member_files_and_admin_approves_with_history(world):
    kind = make_type(world)
    assert kind["approver_role"] == "union_admin" and kind["second_approver_role"] is None
    assert world.as_("union-a", "a1").get(f"{A}/application-types").get_json()["items"][0]["name"] == "慶弔費申請"
    app = file(world, kind["id"])
    assert app["status"] == "pending" and app["next_approver_role"] == "union_admin"
    assert app["values"]["amount"] == 30000

    todo = world.as_("union-a", "aadmin").get(f"{A}/applications?view=to_approve").get_json()["items"]
    assert [a["id"] for a in todo] == [app["id"]]
    r = world.as_("union-a", "aadmin").post(f"{A}/applications/{app['id']}/approve", json={"comment": "承認します"})
    assert r.status_code == 200, r.get_json()
    done = r.get_json()
    assert done["status"] == "approved" and done["next_approver_role"] is None
    steps = [(s["from"], s["to"], s["actor"]["login_id"], s["comment"]) for s in done["history"]]
    assert steps == [(None, "pending", "a1", ""), ("pending", "approved", "aadmin", "承認します")]
    assert world.as_("union-a", "aadmin").get(f"{A}/applications?view=to_approve").get_json()["items"] == []
    # A decided application cannot be decided again.
    again = world.as_("union-a", "aadmin").post(f"{A}/applications/{app['id']}/reject", json={"comment": "x"})
    assert again.status_code == 409


def test_two_step_form_needs_both_approvals_from_two_people(world):
    kind = make_type(world, {**KEICHO, "approver_role": "union_editor", "second_approver_role": "union_admin"})
    app = file(world, kind["id"])
    admin, editor = world.as_("union-a", "aadmin"), world.as_("union-a", "aeditor")
    # The editor's step comes first: the editor sees it to approve, and after that the admin does.
    assert [a["id"] for a in editor.get(f"{A}/applications?view=to_approve").get_json()["items"]] == [app["id"]]
    first = editor.post(f"{A}/applications/{app['id']}/approve", json={"comment": "書類確認済"}).get_json()
    assert first["status"] == "first_approved" and first["next_approver_role"] == "union_admin"
    # The editor does not hold union_admin, so the second step is not theirs.
    assert editor.post(f"{A}/applications/{app['id']}/approve", json={}).status_code == 403
    assert editor.get(f"{A}/applications?view=to_approve").get_json()["items"] == []
    final = admin.post(f"{A}/applications/{app['id']}/approve", json={"comment": "支給"}).get_json()
    assert final["status"] == "approved"
    assert [(s["from"], s["to"], s["actor"]["login_id"]) for s in final["history"]] == [
        (None, "pending", "a1"), ("pending", "first_approved", "aeditor"), ("first_approved", "approved", "aadmin")]
    ats = [s["at"] for s in final["history"]]
    assert ats == sorted(ats)


def test_same_officer_cannot_give_both_approvals(world):
    kind = make_type(world, {**KEICHO, "second_approver_role": "union_admin"})
    app = file(world, kind["id"])
    admin = world.as_("union-a", "aadmin")
    assert admin.post(f"{A}/applications/{app['id']}/approve", json={}).get_json()["status"] == "first_approved"
    r = admin.post(f"{A}/applications/{app['id']}/approve", json={})
    assert r.status_code == 409 and "status" in r.get_json()["error"]["fields"]


def test_reject_needs_a_comment_and_is_recorded(world):
    kind = make_type(world)
    app = file(world, kind["id"])
    admin = world.as_("union-a", "aadmin")
    r = admin.post(f"{A}/applications/{app['id']}/reject", json={})
    assert r.status_code == 422 and "comment" in r.get_json()["error"]["fields"]
    out = admin.post(f"{A}/applications/{app['id']}/reject", json={"comment": "領収書を添えてください"}).get_json()
    assert out["status"] == "rejected" and out["history"][-1]["comment"] == "領収書を添えてください"
    mine = world.as_("union-a", "a1").get(f"{A}/applications/{app['id']}").get_json()
    assert mine["status"] == "rejected" and mine["history"][-1]["from"] == "pending"


def test_applicant_withdraws_only_while_open(world):
    kind = make_type(world)
    app = file(world, kind["id"])
    member = world.as_("union-a", "a1")
    # Another member may not withdraw it, nor even learn it exists.
    assert world.as_("union-a", "a2").post(f"{A}/applications/{app['id']}/withdraw", json={}).status_code == 404
    r = member.post(f"{A}/applications/{app['id']}/withdraw", json={"comment": "取り下げます"})
    assert r.status_code == 200 and r.get_json()["status"] == "withdrawn"
    assert [s["to"] for s in r.get_json()["history"]] == ["pending", "withdrawn"]
    assert member.post(f"{A}/applications/{app['id']}/withdraw", json={}).status_code == 409
    assert world.as_("union-a", "aadmin").post(f"{A}/applications/{app['id']}/approve", json={}).status_code == 409


def test_members_see_only_their_own_applications(world):
    kind = make_type(world)
    mine = file(world, kind["id"], "a1")
    theirs = file(world, kind["id"], "a2")
    a1 = world.as_("union-a", "a1")
    assert [a["id"] for a in a1.get(f"{A}/applications").get_json()["items"]] == [mine["id"]]
    assert a1.get(f"{A}/applications/{theirs['id']}").status_code == 404
    assert a1.post(f"{A}/applications/{theirs['id']}/approve", json={}).status_code == 403
    assert a1.get(f"{A}/applications?view=to_approve").status_code == 403
    assert a1.get(f"{A}/applications?view=approvable").status_code == 403
    everything = world.as_("union-a", "aadmin").get(f"{A}/applications?view=approvable").get_json()["items"]
    assert {a["id"] for a in everything} == {mine["id"], theirs["id"]}


def test_officer_cannot_approve_own_application(world):
    kind = make_type(world)
    app = file(world, kind["id"], "aadmin")
    assert world.as_("union-a", "aadmin").post(f"{A}/applications/{app['id']}/approve", json={}).status_code == 403


def test_csv_export_has_bom_columns_per_field_and_defused_formulas(world):
    kind = make_type(world)
    file(world, kind["id"], "a1")
    file(world, kind["id"], "a2", {"event": "弔事", "event_date": "2026-11-01"})
    r = world.as_("union-a", "aadmin").get(f"{A}/applications/export.csv?type_id={kind['id']}")
    assert r.status_code == 200 and r.mimetype == "text/csv"
    assert r.data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(r.data.decode("utf-8-sig"))))
    assert rows[0][-4:] == ["事由", "発生日", "金額", "備考"]
    assert [row[2] for row in rows[1:]] == ["a1", "a2"]
    assert rows[1][-1] == "'=SUM(A1)"
    plain = world.as_("union-a", "aadmin").get(f"{A}/applications/export.csv")
    assert plain.status_code == 200 and len(list(csv.reader(io.StringIO(plain.data.decode("utf-8-sig"))))) == 3
    assert world.as_("union-a", "a1").get(f"{A}/applications/export.csv").status_code == 403


VALUE_CASES = [
    ({"event_date": "2026-10-10"}, "values.event"),
    ({"event": "旅行", "event_date": "2026-10-10"}, "values.event"),
    ({"event": "結婚", "event_date": "2026-02-30"}, "values.event_date"),
    ({"event": "結婚", "event_date": "10/10/2026"}, "values.event_date"),
    ({"event": "結婚", "event_date": "2026-10-10", "amount": "三万"}, "values.amount"),
    ({"event": "結婚", "event_date": "2026-10-10", "amount": True}, "values.amount"),
    ({"event": "結婚", "event_date": "2026-10-10", "note": 5}, "values.note"),
    ({"event": "結婚", "event_date": "2026-10-10", "note": "x" * 2001}, "values.note"),
    ({"event": "結婚", "event_date": "2026-10-10", "bank": "x"}, "values.bank"),
]

BODY_CASES = [
    ({}, "type_id"),
    ({"type_id": "1", "values": {}}, "type_id"),
    ({"type_id": 2**40, "values": {}}, "type_id"),
    ({"type_id": 999, "values": {}}, "type_id"),
    ({"type_id": 1, "values": []}, "values"),
    ({"type_id": 1, "values": {}, "extra": 1}, "extra"),
]

TYPE_CASES = [
    ({"name": ""}, "name"),
    ({"fields": []}, "fields"),
    ({"fields": [{"key": "Bad Key", "label": "x", "kind": "text"}]}, "fields"),
    ({"fields": [{"key": "a", "label": "x", "kind": "file"}]}, "fields"),
    ({"fields": [{"key": "a", "label": "x", "kind": "choice"}]}, "fields.0.choices"),
    ({"fields": [{"key": "a", "label": "x", "kind": "text", "choices": ["y"]}]}, "fields.0.choices"),
    ({"fields": [{"key": "a", "label": "x", "kind": "text"}, {"key": "a", "label": "y", "kind": "text"}]},
     "fields.1.key"),
    ({"approver_role": "member"}, "approver_role"),
    ({"second_approver_role": "fed_admin"}, "second_approver_role"),
    ({"colour": "red"}, "colour"),
]


def test_bad_input_is_422_naming_the_field_and_changes_nothing(world):
    kind = make_type(world)
    member, admin = world.as_("union-a", "a1"), world.as_("union-a", "aadmin")
    for values, field in VALUE_CASES:
        r = member.post(f"{A}/applications", json={"type_id": kind["id"], "values": values})
        assert r.status_code == 422 and field in r.get_json()["error"]["fields"], (values, r.get_json())
    for body, field in BODY_CASES:
        r = member.post(f"{A}/applications", json=body)
        assert r.status_code == 422 and field in r.get_json()["error"]["fields"], (body, r.get_json())
    for patch, field in TYPE_CASES:
        r = admin.post(f"{A}/application-types", json={**KEICHO, **patch})
        assert r.status_code == 422 and field in r.get_json()["error"]["fields"], (patch, r.get_json())
    assert member.get(f"{A}/applications").get_json()["items"] == []
    assert len(member.get(f"{A}/application-types").get_json()["items"]) == 1


def test_bad_query_and_decision_bodies(world):
    kind = make_type(world)
    app = file(world, kind["id"])
    admin = world.as_("union-a", "aadmin")
    assert "view" in admin.get(f"{A}/applications?view=all").get_json()["error"]["fields"]
    assert "status" in admin.get(f"{A}/applications?status=done").get_json()["error"]["fields"]
    assert "type_id" in admin.get(f"{A}/applications/export.csv?type_id=x").get_json()["error"]["fields"]
    assert admin.get(f"{A}/applications/export.csv?type_id=999").status_code == 422
    r = admin.post(f"{A}/applications/{app['id']}/approve", json={"comment": 1})
    assert r.status_code == 422 and "comment" in r.get_json()["error"]["fields"]
    assert admin.post(f"{A}/applications/{app['id']}/approve", data="x",
                      content_type="application/json").status_code == 400
    assert admin.get(f"{A}/applications/999").status_code == 404


def test_plain_member_cannot_define_forms(world):
    assert world.as_("union-a", "a1").post(f"{A}/application-types", json=KEICHO).status_code == 403
    assert world.as_("union-a", "aeditor").post(f"{A}/application-types", json=KEICHO).status_code == 403


OUTSIDERS = [("fed", "fadmin"), ("fed", "staff"), ("platform", "aud"), ("platform", "ops"), ("union-b", "badmin"),
             ("union-b", "b1")]


def test_federation_auditor_platform_admin_and_neighbour_get_404_for_every_application_endpoint(world):
    kind = make_type(world)
    app = file(world, kind["id"])
    for tenant, login in OUTSIDERS:
        _all_404(world, tenant, login, kind, app)
    assert world.as_("union-a", "a1").get(f"{A}/applications/{app['id']}").get_json()["status"] == "pending"
    assert world.as_("union-a", "a1").get(f"{A}/applications").get_json()["items"][0]["history"][-1]["to"] == \
        "pending"


def _all_404(world, tenant, login, kind, app):  # type: ignore[no-untyped-def]
    who = world.as_(tenant, login)
    for method, path, body in [
        ("get", f"{A}/application-types", None),
        ("post", f"{A}/application-types", KEICHO),
        ("get", f"{A}/applications", None),
        ("get", f"{A}/applications?view=approvable", None),
        ("post", f"{A}/applications", {"type_id": kind["id"], "values": GOOD}),
        ("get", f"{A}/applications/{app['id']}", None),
        ("post", f"{A}/applications/{app['id']}/approve", {}),
        ("post", f"{A}/applications/{app['id']}/reject", {"comment": "x"}),
        ("post", f"{A}/applications/{app['id']}/withdraw", {}),
        ("get", f"{A}/applications/export.csv", None),
    ]:
        r = getattr(who, method)(path, json=body) if body is not None else getattr(who, method)(path)
        assert r.status_code == 404, (tenant, login, method, path, r.status_code)
        assert r.get_json()["error"]["message"] == "not found"
    # The neighbour's own path does not open union-a's rows by id either.
    if tenant == "union-b":
        assert who.get(f"/api/v1/tenants/union-b/applications/{app['id']}").status_code == 404


def test_anonymous_is_401(world):
    assert world.anonymous().get(f"{A}/applications").status_code == 401
    assert world.anonymous().post(f"{A}/application-types", json=KEICHO).status_code == 401


def test_the_applicant_alone_gets_a_push_when_an_approver_decides(world, push_service):  # type: ignore[no-untyped-def]
    import json

    from federation import jobs

    devices = {}
    for tenant, login_id in (("union-a", "a1"), ("union-a", "a2"), ("union-a", "aadmin"), ("union-b", "b1")):
        sub = push_service.new_subscription()
        assert world.as_(tenant, login_id).post("/api/v1/me/push-subscriptions", json=sub).status_code == 201
        devices[login_id] = sub["endpoint"]
    jobs.drain()
    before = len(push_service.messages())
    app = file(world, make_type(world)["id"])
    jobs.drain()
    assert len(push_service.messages()) == before  # filing tells nobody's phone
    r = world.as_("union-a", "aadmin").post(f"{A}/applications/{app['id']}/reject",
                                            json={"comment": "会葬礼状の写しを添えてください"})
    assert r.status_code == 200, r.get_json()
    jobs.drain()
    got = [(m.endpoint, json.loads(m.payload)) for m in push_service.messages()[before:]]
    assert [e for e, _ in got] == [devices["a1"]]
    payload = got[0][1]
    assert payload["kind"] == "application_decision" and payload["title"] == "慶弔費申請"
    assert "却下" in payload["excerpt"] and "会葬礼状" not in json.dumps(payload, ensure_ascii=False)
    assert payload["url"] == f"/t/union-a/applications/{app['id']}"


def test_no_push_for_a_decision_that_no_longer_holds(world, push_service, app):  # type: ignore[no-untyped-def]
    # The job reads the application again: a decision undone before it runs (here, the row changed) sends nothing.
    from federation import jobs
    from federation.extensions import db
    from federation.space.applications.models import Application
    from federation.space.applications.notify import push_decision

    sub = push_service.new_subscription()
    assert world.as_("union-a", "a1").post("/api/v1/me/push-subscriptions", json=sub).status_code == 201
    filed = file(world, make_type(world)["id"])
    jobs.drain()
    before = len(push_service.messages())
    with app.app_context():
        push_decision(filed["id"], "approved")  # still pending: nothing to say
        db.session.get(Application, filed["id"]).status = "approved"
        db.session.commit()
        push_decision(filed["id"], "rejected")  # the status differs from the one the job was queued for
    jobs.drain()
    assert len(push_service.messages()) == before
