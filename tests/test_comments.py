"""Two-way: comments on union notices, members' questions on federation notices, the officers' channel.

Every case has a neighbour: the federation `fed` (its staff and the council officer `tokyo`), union A (opted in),
union B (opted out) and union C (not affiliated), each with officers and members. What each of them may read of a
thread, and what each may write, is asserted from both sides: the one who should see it does, and the neighbour
does not, by the API and in the audit trail.
"""
from __future__ import annotations

import json

import pytest
from conftest import World

from federation import jobs

A, B, FED = "/api/v1/tenants/union-a", "/api/v1/tenants/union-b", "/api/v1/tenants/fed"


def _publish(api, base: str, audience: dict, **extra) -> int:  # type: ignore[no-untyped-def]
    r = api.post(f"{base}/notices", json={"title": "夏季闘争の方針", "body": "本文", "category": "general",
                                          "audience": audience, **extra})
    assert r.status_code == 201, r.get_json()
    nid = r.get_json()["id"]
    assert api.post(f"{base}/notices/{nid}/publish").status_code == 202
    jobs.drain()
    return nid


def _texts(page: dict) -> list[str]:
    out = []
    for item in page["items"]:
        out.append(item["body"])
        out += [a["body"] for a in item["answers"]]
    return out


def _audit(world: World, kind: str) -> list[dict]:
    from sqlalchemy import select

    from federation.audit.entries import AuditEntry
    from federation.extensions import db

    with world.app.app_context():
        rows = db.session.execute(select(AuditEntry).where(AuditEntry.kind == kind)).scalars().all()
        return [{"tenant": r.tenant, "other": r.other_tenant, "data": json.loads(r.data) if isinstance(r.data, str)
                 else r.data} for r in rows]


# --- comments on a union's notice -----------------------------------------------------------------------------------

@pytest.fixture
def union_thread(world: World):  # type: ignore[no-untyped-def]
    aeditor = world.as_("union-a", "aeditor")
    nid = _publish(aeditor, A, {"all": True}, comments=True)
    r = world.as_("union-a", "a1").post(f"{A}/notices/{nid}/comments", json={"body": "職場の残業が減りません"})
    assert r.status_code == 201, r.get_json()
    return nid, r.get_json()["id"]


def test_recipients_of_a_union_see_each_others_comments_and_no_one_else_does(world: World, union_thread) -> None:
    nid, _ = union_thread
    a2 = world.as_("union-a", "a2").get(f"{A}/notices/{nid}/comments")
    assert a2.status_code == 200
    item = a2.get_json()["items"][0]
    assert item["body"] == "職場の残業が減りません" and item["author"]["display_name"] == "A渡辺 恵"
    assert item["union"] is None  # within the union, the union needs no naming
    for tenant, login_id in (("union-b", "b1"), ("union-b", "badmin")):
        for base in (A, B):
            r = world.as_(tenant, login_id).get(f"{base}/notices/{nid}/comments")
            assert r.status_code in (403, 404), (tenant, base, r.status_code)
            assert "残業" not in r.get_data(as_text=True)
    for tenant, login_id in (("fed", "staff"), ("fed", "tokyo"), ("platform", "aud"), ("platform", "ops")):
        for base in (A, FED):
            r = world.as_(tenant, login_id).get(f"{base}/notices/{nid}/comments")
            assert r.status_code in (403, 404), (login_id, base)
            assert "残業" not in r.get_data(as_text=True)
    # A neighbour cannot write into the thread, from either path.
    for base in (A, B):
        r = world.as_("union-b", "b1").post(f"{base}/notices/{nid}/comments", json={"body": "割り込み"})
        assert r.status_code in (403, 404)
    page = world.as_("union-a", "a2").get(f"{A}/notices/{nid}/comments").get_json()
    assert _texts(page) == ["職場の残業が減りません"]


def test_a_member_outside_the_audience_reads_no_comment(world: World) -> None:
    aeditor = world.as_("union-a", "aeditor")
    branch2 = world.ids["union-a:branch2"]
    nid = _publish(aeditor, A, {"units": [branch2]}, comments=True)  # a2, a3 work in the factory branch
    assert world.as_("union-a", "a2").post(f"{A}/notices/{nid}/comments", json={"body": "工場の声"}).status_code == 201
    assert world.as_("union-a", "a1").get(f"{A}/notices/{nid}/comments").status_code == 404  # head office branch
    assert world.as_("union-a", "a1").post(f"{A}/notices/{nid}/comments", json={"body": "x"}).status_code == 404
    assert world.as_("union-a", "a3").get(f"{A}/notices/{nid}/comments").status_code == 200


def test_a_notice_without_comments_refuses_them(world: World) -> None:
    nid = _publish(world.as_("union-a", "aeditor"), A, {"all": True})
    r = world.as_("union-a", "a1").post(f"{A}/notices/{nid}/comments", json={"body": "一言"})
    assert r.status_code == 409 and "comments" in r.get_json()["error"]["fields"]
    r = world.as_("fed", "staff").post(f"{FED}/notices", json={
        "title": "t", "body": "b", "category": "general", "audience": {"all": True}, "comments": True})
    assert r.status_code == 422 and "comments" in r.get_json()["error"]["fields"]


def test_officers_hide_a_comment_it_stays_in_the_audit_trail_and_the_author_is_told(
        world: World, union_thread, push_service) -> None:  # type: ignore[no-untyped-def]
    nid, cid = union_thread
    sub = push_service.new_subscription()
    assert world.as_("union-a", "a1").post("/api/v1/me/push-subscriptions", json=sub).status_code == 201
    jobs.drain()
    before = len(push_service.messages())
    # A member cannot hide, nor can a neighbour's admin or the federation.
    assert world.as_("union-a", "a2").post(f"{A}/notices/{nid}/comments/{cid}/hide").status_code in (403, 404)
    assert world.as_("union-b", "badmin").post(f"{B}/notices/{nid}/comments/{cid}/hide").status_code in (403, 404)
    assert world.as_("fed", "staff").post(f"{FED}/notices/{nid}/comments/{cid}/hide").status_code in (403, 404)
    r = world.as_("union-a", "aeditor").post(f"{A}/notices/{nid}/comments/{cid}/hide")
    assert r.status_code == 200 and r.get_json()["hidden"] is True
    jobs.drain()
    # Gone for the members; the officers still see it, marked.
    assert world.as_("union-a", "a2").get(f"{A}/notices/{nid}/comments").get_json()["items"] == []
    officer = world.as_("union-a", "aeditor").get(f"{A}/notices/{nid}/comments").get_json()["items"]
    assert officer[0]["hidden"] is True and officer[0]["body"] == "職場の残業が減りません"
    entries = _audit(world, "comment.hide")
    assert len(entries) == 1 and entries[0]["tenant"] == "union-a"
    assert entries[0]["data"]["comment_id"] == cid and "残業" not in json.dumps(entries[0], ensure_ascii=False)
    told = [json.loads(m.payload) for m in push_service.messages()[before:] if m.endpoint == sub["endpoint"]]
    assert [m["kind"] for m in told] == ["hidden"]


# --- questions on a federation notice -------------------------------------------------------------------------------

@pytest.fixture
def question(world: World):  # type: ignore[no-untyped-def]
    nid = _publish(world.as_("fed", "staff"), FED, {"all": True})
    r = world.as_("union-a", "a1").post(f"{A}/notices/{nid}/comments",
                                        json={"body": "交通費は出ますか", "consent": True})
    assert r.status_code == 201, r.get_json()
    return nid, r.get_json()["id"]


def test_a_question_needs_consent_and_nothing_is_stored_without_it(world: World) -> None:
    nid = _publish(world.as_("fed", "staff"), FED, {"all": True})
    a1 = world.as_("union-a", "a1")
    for body in ({"body": "交通費は？"}, {"body": "交通費は？", "consent": False}):
        r = a1.post(f"{A}/notices/{nid}/comments", json=body)
        assert r.status_code == 422 and "consent" in r.get_json()["error"]["fields"]
    assert world.as_("fed", "staff").get(f"{FED}/notices/{nid}/comments").get_json()["items"] == []
    assert a1.get(f"{A}/notices/{nid}/comments").get_json()["items"] == []


def test_a_question_reaches_the_editors_with_name_and_union_and_no_other_member(world: World, question) -> None:
    nid, qid = question
    fed = world.as_("fed", "staff").get(f"{FED}/notices/{nid}/comments").get_json()
    item = fed["items"][0]
    assert item["author"]["display_name"] == "A渡辺 恵" and item["union"] == "union-a"
    assert fed["unions"] == [{"union": "union-a", "name": "A通信労組", "messages": 1, "unanswered": 1}]
    # The asker sees their own; another member of the same union and of another union do not.
    assert _texts(world.as_("union-a", "a1").get(f"{A}/notices/{nid}/comments").get_json()) == ["交通費は出ますか"]
    assert world.as_("union-a", "a2").get(f"{A}/notices/{nid}/comments").get_json()["items"] == []
    # union B is opted out: its officers got the notice for relay; they see no question of union A.
    r = world.as_("union-b", "badmin").get(f"{B}/notices/{nid}/comments")
    assert r.status_code == 200 and r.get_json()["items"] == []
    # Nor do union A's own officers: the question went to the federation, not to them.
    assert world.as_("union-a", "aadmin").get(f"{A}/notices/{nid}/comments").get_json()["items"] == []
    # The federation's path is closed to union people; a union's path to the federation.
    assert world.as_("union-a", "aadmin").get(f"{FED}/notices/{nid}/comments").status_code in (403, 404)
    assert world.as_("fed", "staff").get(f"{A}/notices/{nid}/comments").status_code in (403, 404)
    # The crossing is audited, without the text.
    sent = _audit(world, "comment.question")
    assert [(e["tenant"], e["other"]) for e in sent] == [("union-a", "fed")]
    assert "交通費" not in json.dumps(sent, ensure_ascii=False)


def test_a_private_answer_reaches_the_asker_only(world: World, question, push_service) -> None:  # type: ignore[no-untyped-def]
    nid, qid = question
    sub = push_service.new_subscription()
    assert world.as_("union-a", "a1").post("/api/v1/me/push-subscriptions", json=sub).status_code == 201
    jobs.drain()
    before = len(push_service.messages())
    r = world.as_("fed", "staff").post(f"{FED}/notices/{nid}/comments/{qid}/answer",
                                       json={"body": "出ます。領収書を", "public": False})
    assert r.status_code == 201, r.get_json()
    jobs.drain()
    mine = world.as_("union-a", "a1").get(f"{A}/notices/{nid}/comments").get_json()["items"]
    assert mine[0]["answers"][0]["body"] == "出ます。領収書を"
    assert world.as_("union-a", "a2").get(f"{A}/notices/{nid}/comments").get_json()["items"] == []
    assert world.as_("union-b", "badmin").get(f"{B}/notices/{nid}/comments").get_json()["items"] == []
    told = [json.loads(m.payload) for m in push_service.messages()[before:]]
    assert [(m["kind"], m["url"]) for m in told] == [("answered", f"/notices/{nid}#comments")]


def test_a_published_answer_reaches_every_recipient_without_the_askers_name(world: World, question) -> None:
    nid, qid = question
    r = world.as_("fed", "staff").post(f"{FED}/notices/{nid}/comments/{qid}/answer",
                                       json={"body": "交通費は実費で支給します", "public": True})
    assert r.status_code == 201
    for tenant, login_id, base in (("union-a", "a2", A), ("union-b", "badmin", B)):
        page = world.as_(tenant, login_id).get(f"{base}/notices/{nid}/comments")
        items = page.get_json()["items"]
        assert _texts(page.get_json()) == ["交通費は出ますか", "交通費は実費で支給します"], (tenant, login_id)
        assert items[0]["author"] is None and items[0]["union"] is None
        raw = page.get_data(as_text=True)
        assert "渡辺" not in raw and "union-a" not in raw and "A通信労組" not in raw
    # union C is not affiliated: the notice never reached it, nor does its FAQ.
    assert world.as_("union-c", "c1").get(f"/api/v1/tenants/union-c/notices/{nid}/comments").status_code == 404


def test_only_the_notices_editors_answer(world: World, question) -> None:
    nid, qid = question
    body = {"body": "回答", "public": False}
    # The council officer did not write this notice: as if it did not exist (their scope, reads.officer_notice).
    assert world.as_("fed", "tokyo").get(f"{FED}/notices/{nid}/comments").status_code == 404
    assert world.as_("fed", "tokyo").post(f"{FED}/notices/{nid}/comments/{qid}/answer", json=body).status_code == 404
    assert world.as_("fed2", "staff").post(f"/api/v1/tenants/fed2/notices/{nid}/comments/{qid}/answer",
                                           json=body).status_code == 404
    assert world.as_("union-a", "aadmin").post(f"{A}/notices/{nid}/comments/{qid}/answer",
                                               json=body).status_code in (403, 404)
    r = world.as_("fed", "staff").post(f"{FED}/notices/{nid}/comments/{qid}/answer", json={"body": "回答"})
    assert r.status_code == 422 and "public" in r.get_json()["error"]["fields"]
    assert world.as_("union-a", "a1").get(f"{A}/notices/{nid}/comments").get_json()["items"][0]["answers"] == []


def test_a_council_officer_sees_questions_on_their_own_notice_only(world: World) -> None:
    tokyo = world.as_("fed", "tokyo")
    nid = _publish(tokyo, FED, {"units": [world.ids["council"]]})
    assert world.as_("union-a", "a1").post(f"{A}/notices/{nid}/comments",
                                           json={"body": "県協の集会は何時から", "consent": True}).status_code == 201
    page = tokyo.get(f"{FED}/notices/{nid}/comments").get_json()
    assert page["items"][0]["union"] == "union-a"
    staff_nid = _publish(world.as_("fed", "staff"), FED, {"all": True})
    assert tokyo.get(f"{FED}/notices/{staff_nid}/comments").status_code == 404


# --- the officers' channel ------------------------------------------------------------------------------------------

@pytest.fixture
def channel(world: World):  # type: ignore[no-untyped-def]
    return _publish(world.as_("fed", "staff"), FED, {"officers": True})


def test_the_officers_channel_reaches_union_admins_only_opted_in_or_not(world: World, channel) -> None:
    for tenant, login_id in (("union-a", "aadmin"), ("union-b", "badmin")):
        items = world.as_(tenant, login_id).get("/api/v1/me/inbox").get_json()["items"]
        mine = [i for i in items if i["notice"]["id"] == channel]
        assert mine and mine[0]["officers"] is True and mine[0]["for_relay"] is False
    for tenant, login_id in (("union-a", "a1"), ("union-a", "aeditor"), ("union-b", "b1"), ("union-c", "cadmin")):
        items = world.as_(tenant, login_id).get("/api/v1/me/inbox").get_json()["items"]
        assert channel not in [i["notice"]["id"] for i in items], (tenant, login_id)
    r = world.as_("union-b", "badmin").post("/api/v1/unions/union-b/relays",
                                            json={"notice_id": channel, "audience": {"all": True}})
    assert r.status_code == 422 and "notice_id" in r.get_json()["error"]["fields"]
    assert channel not in [i["notice"]["id"] for i in
                           world.as_("union-b", "b1").get("/api/v1/me/inbox").get_json()["items"]]


def test_officers_replies_are_seen_by_the_federation_and_their_own_union_only(world: World, channel) -> None:
    aadmin, badmin, staff = (world.as_("union-a", "aadmin"), world.as_("union-b", "badmin"), world.as_("fed", "staff"))
    assert aadmin.post(f"{A}/notices/{channel}/comments", json={"body": "A労組は参加します"}).status_code == 201
    assert badmin.post(f"{B}/notices/{channel}/comments", json={"body": "B労組は検討中"}).status_code == 201
    assert _texts(aadmin.get(f"{A}/notices/{channel}/comments").get_json()) == ["A労組は参加します"]
    assert _texts(badmin.get(f"{B}/notices/{channel}/comments").get_json()) == ["B労組は検討中"]
    fed = staff.get(f"{FED}/notices/{channel}/comments").get_json()
    assert sorted((i["union"], i["body"]) for i in fed["items"]) == [("union-a", "A労組は参加します"),
                                                                      ("union-b", "B労組は検討中")]
    assert _texts(staff.get(f"{FED}/notices/{channel}/comments?union=union-b").get_json()) == ["B労組は検討中"]
    # Members of either union and union C: nothing.
    for tenant, login_id, base in (("union-a", "a1", A), ("union-b", "b1", B),
                                   ("union-c", "cadmin", "/api/v1/tenants/union-c")):
        r = world.as_(tenant, login_id).get(f"{base}/notices/{channel}/comments")
        assert r.status_code == 404 and "参加" not in r.get_data(as_text=True)
    # Union B's admin asking through union A's path, or about union A's message by id, gets nothing.
    assert badmin.get(f"{A}/notices/{channel}/comments").status_code in (403, 404)


def test_the_federation_writes_to_one_unions_officers(world: World, channel, push_service) -> None:  # type: ignore[no-untyped-def]
    endpoints = {}
    for tenant, login_id in (("union-a", "aadmin"), ("union-b", "badmin")):
        sub = push_service.new_subscription()
        assert world.as_(tenant, login_id).post("/api/v1/me/push-subscriptions", json=sub).status_code == 201
        endpoints[sub["endpoint"]] = login_id
    jobs.drain()
    before = len(push_service.messages())
    staff = world.as_("fed", "staff")
    r = staff.post(f"{FED}/notices/{channel}/comments", json={"body": "B労組さん、締切は来週です"})
    assert r.status_code == 422 and "union" in r.get_json()["error"]["fields"]
    r = staff.post(f"{FED}/notices/{channel}/comments", json={"body": "C労組へ", "union": "union-c"})
    assert r.status_code == 422 and "union" in r.get_json()["error"]["fields"]  # the notice never reached C
    r = staff.post(f"{FED}/notices/{channel}/comments", json={"body": "B労組さん、締切は来週です", "union": "union-b"})
    assert r.status_code == 201, r.get_json()
    jobs.drain()
    assert _texts(world.as_("union-b", "badmin").get(f"{B}/notices/{channel}/comments").get_json()) == [
        "B労組さん、締切は来週です"]
    assert world.as_("union-a", "aadmin").get(f"{A}/notices/{channel}/comments").get_json()["items"] == []
    pushed = [endpoints[m.endpoint] for m in push_service.messages()[before:]]
    assert pushed == ["badmin"]
    # An answer to an officer's message stays in that union's thread and cannot be published.
    mid = world.as_("union-a", "aadmin").post(f"{A}/notices/{channel}/comments",
                                              json={"body": "質問です"}).get_json()["id"]
    r = staff.post(f"{FED}/notices/{channel}/comments/{mid}/answer", json={"body": "全組合へ", "public": True})
    assert r.status_code == 422 and "public" in r.get_json()["error"]["fields"]
    assert staff.post(f"{FED}/notices/{channel}/comments/{mid}/answer",
                      json={"body": "承知しました", "public": False}).status_code == 201
    assert "承知しました" in _texts(world.as_("union-a", "aadmin").get(f"{A}/notices/{channel}/comments").get_json())
    assert "承知しました" not in _texts(world.as_("union-b", "badmin").get(
        f"{B}/notices/{channel}/comments").get_json())


def test_a_union_officer_hides_in_their_own_thread_only(world: World, channel) -> None:
    aadmin, badmin = world.as_("union-a", "aadmin"), world.as_("union-b", "badmin")
    mid = aadmin.post(f"{A}/notices/{channel}/comments", json={"body": "誤送信"}).get_json()["id"]
    assert badmin.post(f"{B}/notices/{channel}/comments/{mid}/hide").status_code == 404
    assert aadmin.post(f"{A}/notices/{channel}/comments/{mid}/hide").status_code == 200
    fed_side = world.as_("fed", "staff").get(f"{FED}/notices/{channel}/comments").get_json()["items"]
    assert fed_side[0]["hidden"] is True


def test_an_officer_whose_role_ends_loses_the_thread_on_the_next_request(world: World, channel) -> None:
    aadmin = world.as_("union-a", "aadmin")
    assert aadmin.post(f"{A}/notices/{channel}/comments", json={"body": "継続します"}).status_code == 201
    from sqlalchemy import select

    from federation.extensions import db
    from tenants import service as ts
    from tenants.models import Tenant, User

    with world.app.app_context():
        union = db.session.execute(select(Tenant).where(Tenant.slug == "union-a")).scalar_one()
        user = db.session.execute(select(User).where(User.tenant_id == union.id,
                                                     User.login_id == "aadmin")).scalar_one()
        other = db.session.execute(select(User).where(User.tenant_id == union.id,
                                                      User.login_id == "aeditor")).scalar_one()
        ts.grant_role(union, other, "union_admin", None, actor="operator:test")  # the union keeps an admin
        assert ts.revoke_role(union, user, "union_admin", None, actor="operator:test")
    assert aadmin.get(f"{A}/notices/{channel}/comments").status_code == 404


@pytest.mark.parametrize("body,field", [
    ({}, "body"), ({"body": ""}, "body"), ({"body": "x" * 2001}, "body"), ({"body": 5}, "body"),
    ({"body": "ok", "extra": 1}, "extra"), ({"body": "ok", "consent": "yes"}, "consent"),
])
def test_bad_bodies_are_422_naming_the_field_and_store_nothing(world: World, union_thread, body, field) -> None:
    nid, _ = union_thread
    r = world.as_("union-a", "a2").post(f"{A}/notices/{nid}/comments", json=body)
    assert r.status_code == 422 and field in r.get_json()["error"]["fields"]
    assert len(world.as_("union-a", "a2").get(f"{A}/notices/{nid}/comments").get_json()["items"]) == 1
