"""The cascade end to end: who a notice reaches (F2), what stays walled off (F1, F4, F5, F8), and the member's side
(inbox, read marks, stamps), through the HTTP API with the jobs run on the in-process runner."""
from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from conftest import PW
from sqlalchemy import func, select, update

from federation import jobs

FUTURE = "2099-01-01T09:00:00+09:00"
NOT_FOUND = {"error": {"code": "not_found", "message": "not found", "fields": {}}}
FORBIDDEN = {"error": {"code": "forbidden", "message": "you may not do this", "fields": {}}}


# --- helpers --------------------------------------------------------------------------------------------------------

@pytest.fixture
def more(world):  # type: ignore[no-untyped-def]
    """Two more unions beside the world's: union-d under the Osaka council (opted in), with a member in a workplace
    under its branch; union-e under the Tokyo council, opted in for now; and a4 in a workplace of union-a's branch."""
    from federation.auth.passwords import hash_password
    from federation.extensions import db
    from tenants import service as ts
    from tenants.models import Tenant

    actor = "operator:test"
    pw = hash_password(PW)
    with world.app.app_context():
        fed = db.session.execute(select(Tenant).where(Tenant.slug == "fed")).scalar_one()
        union_a = db.session.execute(select(Tenant).where(Tenant.slug == "union-a")).scalar_one()
        shop = ts.create_unit(union_a, name="a第一分会", kind="workplace", parent_id=world.ids["union-a:branch"],
                              prefecture=None, actor=actor)
        world.ids["union-a:workplace"] = shop.id
        ts.create_user(union_a, login_id="a4", display_name="A岡田 誠", name_kana="おかだ まこと", password=None,
                       password_hash=pw, unit_id=shop.id, actor=actor)
        for slug, name, council, letter in (("union-d", "D電機労組", world.ids["council2"], "d"),
                                            ("union-e", "E通信労組", world.ids["council"], "e")):
            union = ts.create_tenant(slug, name, "union", actor=actor)
            branch = ts.create_unit(union, name=f"{letter}支部", kind="branch", parent_id=None, prefecture=None,
                                    actor=actor)
            shop = ts.create_unit(union, name=f"{letter}分会", kind="workplace", parent_id=branch.id, prefecture=None,
                                  actor=actor)
            admin = ts.create_user(union, login_id=f"{letter}admin", display_name=f"{letter.upper()}委員長",
                                   name_kana="いいんちょう", password=None, password_hash=pw, unit_id=branch.id,
                                   actor=actor)
            ts.grant_role(union, admin, "union_admin", None, actor=actor)
            for n, name, kana, unit in ((1, "上田 一", "うえだ はじめ", branch),
                                        (2, "遠藤 二", "えんどう じろう", shop)):
                ts.create_user(union, login_id=f"{letter}{n}", display_name=f"{letter.upper()}{name}", name_kana=kana,
                               password=None, password_hash=pw, unit_id=unit.id, actor=actor)
            ts.invite(fed, slug, council, actor=actor)
            ts.accept(union, actor=actor)
            ts.set_cascade(union, "opted_in", actor=actor)
    return world


def create(api, slug, audience, *, category="general", expect=201, **extra):  # type: ignore[no-untyped-def]
    body = {"title": extra.pop("title", "春闘 学習会のお知らせ"), "body": extra.pop("body", "**本文**です。"),
            "category": category, "audience": audience, **extra}
    r = api.post(f"/api/v1/tenants/{slug}/notices", json=body)
    assert r.status_code == expect, r.get_json()
    return r.get_json()


def publish(api, slug, notice_id):  # type: ignore[no-untyped-def]
    r = api.post(f"/api/v1/tenants/{slug}/notices/{notice_id}/publish")
    assert r.status_code == 202, r.get_json()
    assert r.get_json()["status"] == "published"
    jobs.drain()
    return r.get_json()


def issue(api, slug, audience, **kw) -> int:  # type: ignore[no-untyped-def]
    nid = create(api, slug, audience, **kw)["id"]
    publish(api, slug, nid)
    return nid


def inbox(api, limit=100):  # type: ignore[no-untyped-def]
    """Every inbox item, walking all pages."""
    items, cursor = [], None
    while True:
        r = api.get("/api/v1/me/inbox", query_string={"limit": limit, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.get_json()
        page = r.get_json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def inbox_ids(api) -> list[int]:  # type: ignore[no-untyped-def]
    return [i["notice"]["id"] for i in inbox(api)]


def holds(api, notice_id):  # type: ignore[no-untyped-def]
    """The inbox item for the notice, or None; and never twice."""
    found = [i for i in inbox(api) if i["notice"]["id"] == notice_id]
    assert len(found) <= 1, found
    return found[0] if found else None


def make_due(app, notice_id):  # type: ignore[no-untyped-def]
    from federation.extensions import db, utcnow
    from federation.notices.models import Notice

    with app.app_context():
        db.session.execute(update(Notice).where(Notice.id == notice_id)
                           .values(publish_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()


def tick(app):  # type: ignore[no-untyped-def]
    from federation.scheduler.notices import tick as run_tick

    with app.app_context():
        out = run_tick()
    jobs.drain()
    return out


def deliveries(app, notice_id):  # type: ignore[no-untyped-def]
    """(union slug, unit_path, for_relay) of every delivery row of the notice."""
    from federation.extensions import db
    from federation.notices.models import Delivery
    from tenants.models import Tenant

    with app.app_context():
        rows = db.session.execute(select(Tenant.slug, Delivery.unit_path, Delivery.for_relay)
                                  .join(Tenant, Tenant.id == Delivery.tenant_id)
                                  .where(Delivery.notice_id == notice_id)).all()
    return sorted((r[0], r[1], r[2]) for r in rows)


def audit_entries(app, kind, notice_id):  # type: ignore[no-untyped-def]
    from federation.audit.chain import AuditEntry
    from federation.extensions import db

    with app.app_context():
        rows = db.session.execute(select(AuditEntry).where(AuditEntry.kind == kind).order_by(AuditEntry.seq)).scalars()
        return [r.as_dict() for r in rows if json.loads(r.data).get("notice_id") == notice_id]


def error_fields(r) -> dict:  # type: ignore[no-untyped-def]
    body = r.get_json()
    assert set(body) == {"error"}, body
    return body["error"]["fields"]


ALL_USERS = {
    "platform": ("aud", "ops"),
    "fed": ("fadmin", "staff", "tokyo"),
    "fed2": ("staff",),
    **{f"union-{x}": (f"{x}admin", f"{x}editor", f"{x}1", f"{x}2", f"{x}3") for x in "abc"},
}
MORE_USERS = {"union-a": ("a4",), **{f"union-{x}": (f"{x}admin", f"{x}1", f"{x}2") for x in "de"}}


def everyone(with_more: bool = True) -> list[tuple[str, str]]:
    people = [(t, u) for t, users in ALL_USERS.items() for u in users]
    if with_more:
        people += [(t, u) for t, users in MORE_USERS.items() for u in users]
    return people


# --- who a federation notice reaches (F2) ---------------------------------------------------------------------------

def test_federation_notice_reaches_opted_in_members_and_only_the_admins_of_opted_out_unions(more, monkeypatch):
    from federation.notices import cascade

    monkeypatch.setattr(cascade, "CHUNK_UNIONS", 1)  # one delivery job per union: the cascade spans several jobs
    world = more
    staff = world.as_("fed", "staff")
    nid = create(staff, "fed", {"all": True}, category="seminar", publish_at=FUTURE)["id"]
    assert staff.get(f"/api/v1/tenants/fed/notices/{nid}").get_json()["status"] == "scheduled"
    # union-e opts out after the notice was scheduled and before it goes out: F2 is decided at delivery time.
    r = world.as_("union-e", "eadmin").put("/api/v1/unions/union-e/affiliation/cascade", json={"cascade": "opted_out"})
    assert r.status_code == 200 and r.get_json()["cascade"] == "opted_out"
    make_due(world.app, nid)
    assert tick(world.app)["published"] == [nid]

    members = {("union-a", u) for u in ("aadmin", "aeditor", "a1", "a2", "a3", "a4")} | \
              {("union-d", u) for u in ("dadmin", "d1", "d2")}
    relay = {("union-b", "badmin"), ("union-e", "eadmin")}
    for tenant, login_id in everyone():
        item = holds(world.as_(tenant, login_id), nid)
        if (tenant, login_id) in members:
            assert item is not None and item["for_relay"] is False, (tenant, login_id)
            assert item["notice"]["tenant"] == "fed" and item["notice"]["category"] == "seminar"
            assert "<strong>本文</strong>" in item["notice"]["body_html"]
        elif (tenant, login_id) in relay:
            assert item is not None and item["for_relay"] is True, (tenant, login_id)
        else:
            assert item is None, (tenant, login_id)

    assert deliveries(world.app, nid) == [("union-a", "", False), ("union-b", "", True), ("union-d", "", False),
                                          ("union-e", "", True)]
    audited = {(e["other_tenant"], e["data"]["mode"]) for e in audit_entries(world.app, "notice.deliver", nid)}
    assert audited == {("union-a", "members"), ("union-b", "relay"), ("union-d", "members"), ("union-e", "relay")}
    progress = staff.get(f"/api/v1/tenants/fed/notices/{nid}/stats").get_json()["progress"]
    assert progress["done"] is True and progress["unions_targeted"] == 4 and progress["unions_reached"] == 4
    assert progress["jobs"] == progress["jobs_done"] == 4


def test_targeting_a_council_or_block_reaches_only_the_unions_attached_under_it(more):
    world = more
    staff = world.as_("fed", "staff")
    tokyo_council = issue(staff, "fed", {"units": [world.ids["council"]]})
    kanto_block = issue(staff, "fed", {"units": [world.ids["block"]]})
    kinki_block = issue(staff, "fed", {"units": [world.ids["block2"]]})
    osaka_and_a = issue(staff, "fed", {"units": [world.ids["council2"]], "unions": ["union-a"]})

    tokyo = [("union-a", "", False), ("union-b", "", True), ("union-e", "", False)]
    assert deliveries(world.app, tokyo_council) == tokyo
    assert deliveries(world.app, kanto_block) == tokyo
    assert deliveries(world.app, kinki_block) == [("union-d", "", False)]
    assert deliveries(world.app, osaka_and_a) == [("union-a", "", False), ("union-d", "", False)]

    d1, a1, e1 = world.as_("union-d", "d1"), world.as_("union-a", "a1"), world.as_("union-e", "e1")
    assert set(inbox_ids(d1)) == {kinki_block, osaka_and_a}
    assert set(inbox_ids(a1)) == {tokyo_council, kanto_block, osaka_and_a}
    assert set(inbox_ids(e1)) == {tokyo_council, kanto_block}
    assert inbox_ids(world.as_("union-c", "c1")) == []


def test_a_unit_editor_cannot_target_outside_their_council(more):
    world = more
    tokyo = world.as_("fed", "tokyo")
    outside = [
        ({"units": [world.ids["council2"]]}, "audience.units[0]"),
        ({"units": [world.ids["council"], world.ids["block"]]}, "audience.units[1]"),
        ({"units": [world.ids["block2"]]}, "audience.units[0]"),
        ({"unions": ["union-a", "union-d"]}, "audience.unions[1]"),
        ({"all": True}, "audience.all"),
    ]
    for audience, field in outside:
        for path in ("/api/v1/tenants/fed/notices", "/api/v1/tenants/fed/notices/preview"):
            body = {"audience": audience} if path.endswith("preview") else {
                "title": "t", "body": "b", "category": "general", "audience": audience}
            r = tokyo.post(path, json=body)
            assert r.status_code == 422, (audience, r.get_json())
            assert field in error_fields(r), (audience, r.get_json())
            assert field in r.get_json()["error"]["message"]
    # Inside the council: accepted, and it reaches the council's unions.
    nid = issue(tokyo, "fed", {"units": [world.ids["council"]], "unions": ["union-a"]})
    assert [d[0] for d in deliveries(world.app, nid)] == ["union-a", "union-b", "union-e"]
    # Widening a draft afterwards is checked the same way.
    draft = create(tokyo, "fed", {"unions": ["union-b"]})["id"]
    r = tokyo.patch(f"/api/v1/tenants/fed/notices/{draft}", json={"audience": {"unions": ["union-d"]}})
    assert r.status_code == 422 and "audience.unions[0]" in error_fields(r)


def test_audience_preview_counts_members_unions_and_relay_officers(more):
    world = more
    staff = world.as_("fed", "staff")

    def preview(api, slug, audience):  # type: ignore[no-untyped-def]
        r = api.post(f"/api/v1/tenants/{slug}/notices/preview", json={"audience": audience})
        assert r.status_code == 200, r.get_json()
        return r.get_json()

    # a: 6 members; d: 3 members; b and (still opted-in) e: see below.
    assert preview(staff, "fed", {"all": True}) == {"members": 6 + 3 + 3, "unions": 3, "relay_unions": 1,
                                                    "officers": 1}
    world.as_("union-e", "eadmin").put("/api/v1/unions/union-e/affiliation/cascade", json={"cascade": "opted_out"})
    assert preview(staff, "fed", {"all": True}) == {"members": 9, "unions": 2, "relay_unions": 2, "officers": 2}
    assert preview(staff, "fed", {"units": [world.ids["block2"]]}) == {"members": 3, "unions": 1,
                                                                       "relay_unions": 0, "officers": 0}
    assert preview(staff, "fed", {"unions": ["union-b"]}) == {"members": 0, "unions": 0, "relay_unions": 1,
                                                              "officers": 1}
    editor = world.as_("union-a", "aeditor")
    assert preview(editor, "union-a", {"all": True})["members"] == 6
    assert preview(editor, "union-a", {"units": [world.ids["union-a:branch"]]})["members"] == 4  # admin, editor, a1, a4
    assert preview(editor, "union-a", {"units": [world.ids["union-a:workplace"]]})["members"] == 1
    assert preview(editor, "union-a", {"units": [world.ids["union-a:branch2"]]})["members"] == 2
    # A branch and a workplace inside it: nobody counted twice.
    assert preview(editor, "union-a", {"units": [world.ids["union-a:branch"],
                                                 world.ids["union-a:workplace"]]})["members"] == 4
    # Members cannot preview.
    assert world.as_("union-a", "a1").post("/api/v1/tenants/union-a/notices/preview",
                                           json={"audience": {"all": True}}).status_code == 403


# --- union notices (F1, F5) -----------------------------------------------------------------------------------------

def test_union_notice_to_a_branch_reaches_only_that_branch_and_its_workplaces(more):
    world = more
    editor = world.as_("union-a", "aeditor")
    branch = issue(editor, "union-a", {"units": [world.ids["union-a:branch"]]})
    branch2 = issue(editor, "union-a", {"units": [world.ids["union-a:branch2"]]})
    workplace = issue(editor, "union-a", {"units": [world.ids["union-a:workplace"]]})
    expected = {
        "aadmin": {branch}, "aeditor": {branch}, "a1": {branch}, "a4": {branch, workplace},
        "a2": {branch2}, "a3": {branch2},
    }
    for login_id, ids in expected.items():
        assert set(inbox_ids(world.as_("union-a", login_id))) == ids, login_id
    # The officers' list of who read it covers the branch and nobody else.
    r = editor.get(f"/api/v1/tenants/union-a/notices/{branch}/receipts")
    assert [i["login_id"] for i in r.get_json()["items"]] == ["a4", "aeditor", "aadmin", "a1"]
    assert editor.get(f"/api/v1/tenants/union-a/notices/{branch}/stats").get_json()["recipients"] == 4
    # A unit of another union is not "a unit of mine".
    r = editor.post("/api/v1/tenants/union-a/notices", json={
        "title": "t", "body": "b", "category": "general", "audience": {"units": [world.ids["union-b:branch"]]}})
    assert r.status_code == 422 and "audience.units[0]" in error_fields(r)
    r = editor.post("/api/v1/tenants/union-a/notices", json={
        "title": "t", "body": "b", "category": "general", "audience": {"unions": ["union-a"]}})
    assert r.status_code == 422 and "audience.unions" in error_fields(r)


def test_relay_by_the_opted_out_unions_admin_reaches_its_members(world):
    staff = world.as_("fed", "staff")
    nid = issue(staff, "fed", {"all": True}, category="meeting")
    admin, editor, b1, b2 = (world.as_("union-b", u) for u in ("badmin", "beditor", "b1", "b2"))
    assert holds(admin, nid)["for_relay"] is True
    assert holds(b1, nid) is None and holds(editor, nid) is None
    # The admin sees it among what the union received.
    received = admin.get("/api/v1/tenants/union-b/notices", query_string={"received": "true"}).get_json()
    assert [n["id"] for n in received["items"]] == [nid]

    # Only the union's admin relays, only its own units, only what reached the union.
    assert editor.post("/api/v1/unions/union-b/relays", json={"notice_id": nid, "audience": {"all": True}}) \
        .status_code == 403
    r = admin.post("/api/v1/unions/union-b/relays",
                   json={"notice_id": nid, "audience": {"units": [world.ids["union-a:branch"]]}})
    assert r.status_code == 422 and "audience.units[0]" in error_fields(r)
    r = admin.post("/api/v1/unions/union-b/relays", json={"notice_id": nid + 999, "audience": {"all": True}})
    assert r.status_code == 422 and "notice_id" in error_fields(r)
    assert world.as_("union-a", "aadmin").post("/api/v1/unions/union-b/relays", json={
        "notice_id": nid, "audience": {"all": True}}).status_code == 404

    r = admin.post("/api/v1/unions/union-b/relays",
                   json={"notice_id": nid, "audience": {"units": [world.ids["union-b:branch2"]]}})
    assert r.status_code == 201, r.get_json()
    assert r.get_json() == {"notice_id": nid, "deliveries": 1, "recipients": 2}
    jobs.drain()
    assert holds(b2, nid)["for_relay"] is False and holds(world.as_("union-b", "b3"), nid) is not None
    assert holds(b1, nid) is None

    r = admin.post("/api/v1/unions/union-b/relays", json={"notice_id": nid, "audience": {"all": True}})
    assert r.status_code == 201 and r.get_json()["recipients"] == 2 + 5
    jobs.drain()
    for login_id in ("badmin", "beditor", "b1", "b2", "b3"):
        item = holds(world.as_("union-b", login_id), nid)
        assert item is not None and item["for_relay"] is False, login_id
    # Relaying again changes nothing: still one entry each.
    assert admin.post("/api/v1/unions/union-b/relays", json={"notice_id": nid, "audience": {"all": True}}) \
        .status_code == 201
    assert inbox_ids(b1).count(nid) == 1
    assert [e["other_tenant"] for e in audit_entries(world.app, "notice.relay", nid)] == ["fed"] * 3
    assert inbox_ids(world.as_("union-c", "c1")) == []


def test_union_notices_never_reach_the_federation_or_another_union(world):
    editor = world.as_("union-a", "aeditor")
    nid = issue(editor, "union-a", {"all": True}, category="seminar", title="A労組 内部連絡")
    assert holds(world.as_("union-a", "a1"), nid) is not None  # the control: it was delivered
    outsiders = [("fed", "staff"), ("fed", "fadmin"), ("fed", "tokyo"), ("fed2", "staff"), ("union-b", "badmin"),
                 ("union-b", "b1"), ("union-c", "cadmin"), ("platform", "aud"), ("platform", "ops")]
    for tenant, login_id in outsiders:
        api = world.as_(tenant, login_id)
        assert holds(api, nid) is None, login_id
        for slug in ("union-a", tenant):
            for suffix in ("", "/stats", "/receipts"):
                r = api.get(f"/api/v1/tenants/{slug}/notices/{nid}{suffix}")
                # F8: nothing but the status, and from outside union-a not even that the notice exists.
                expected = [(404, NOT_FOUND)] if slug == "union-a" else [(404, NOT_FOUND), (403, FORBIDDEN)]
                assert (r.status_code, r.get_json()) in expected, (login_id, slug, suffix, r.get_json())
        listing = api.get(f"/api/v1/tenants/{tenant}/notices")
        if listing.status_code == 200:
            assert nid not in [n["id"] for n in listing.get_json()["items"]]
        for path, verb in ((f"/api/v1/me/inbox/{nid}/read", "post"), (f"/api/v1/me/inbox/{nid}/reaction", "put")):
            body = {"stamp": "read"} if verb == "put" else None
            r = getattr(api, verb)(path, json=body)
            assert (r.status_code, r.get_json()) == (404, NOT_FOUND), (login_id, path)
    # The union's own side sees it all.
    assert editor.get(f"/api/v1/tenants/union-a/notices/{nid}/stats").status_code == 200
    assert editor.get(f"/api/v1/tenants/union-a/notices/{nid}/receipts").status_code == 200
    assert audit_entries(world.app, "notice.deliver", nid) == []  # nothing crossed a tenant boundary


def test_retraction_removes_the_notice_from_every_inbox_at_once(world):
    staff = world.as_("fed", "staff")
    nid = issue(staff, "fed", {"all": True})
    keep = issue(staff, "fed", {"all": True}, title="残る通知")
    admin = world.as_("union-b", "badmin")
    admin.post("/api/v1/unions/union-b/relays", json={"notice_id": nid, "audience": {"all": True}})
    jobs.drain()
    readers = [world.as_(t, u) for t, u in (("union-a", "a1"), ("union-a", "aadmin"), ("union-b", "badmin"),
                                            ("union-b", "b1"))]
    for api in readers:
        assert holds(api, nid) is not None
    unread_before = readers[0].get("/api/v1/me/inbox").get_json()["unread"]

    r = staff.delete(f"/api/v1/tenants/fed/notices/{nid}")
    assert r.status_code == 200 and r.get_json()["status"] == "retracted"
    # No job has to run first: the next read of any inbox no longer shows it.
    for api in readers:
        assert holds(api, nid) is None
        assert (holds(api, keep) is not None) is (api.who != "union-b/b1")  # b1 had only the relayed one
        assert api.get(f"/api/v1/tenants/{api.who.split('/')[0]}/notices/{nid}").status_code == 404
        assert api.post(f"/api/v1/me/inbox/{nid}/read").status_code == 404
        assert api.put(f"/api/v1/me/inbox/{nid}/reaction", json={"stamp": "attend"}).status_code == 404
    assert readers[0].get("/api/v1/me/inbox").get_json()["unread"] == unread_before - 1
    assert admin.get("/api/v1/tenants/union-b/notices", query_string={"received": "true"}).get_json()["items"][0][
        "id"] == keep
    # A retracted notice can be neither relayed nor published again.
    r = admin.post("/api/v1/unions/union-b/relays", json={"notice_id": nid, "audience": {"all": True}})
    assert r.status_code == 422
    assert staff.post(f"/api/v1/tenants/fed/notices/{nid}/publish").status_code == 409
    jobs.drain()
    assert len(audit_entries(world.app, "notice.retract", nid)) == 1


# --- what authors and officers see (F4) -----------------------------------------------------------------------------

def test_stats_are_counts_per_union_and_never_names(world):
    staff = world.as_("fed", "staff")
    nid = issue(staff, "fed", {"all": True}, category="seminar")
    a1, a2, a3, badmin = (world.as_(t, u) for t, u in (("union-a", "a1"), ("union-a", "a2"), ("union-a", "a3"),
                                                       ("union-b", "badmin")))
    assert a1.post(f"/api/v1/me/inbox/{nid}/read").status_code == 200
    assert a2.put(f"/api/v1/me/inbox/{nid}/reaction", json={"stamp": "attend"}).status_code == 200
    assert a3.put(f"/api/v1/me/inbox/{nid}/reaction", json={"stamp": "absent"}).status_code == 200
    assert badmin.put(f"/api/v1/me/inbox/{nid}/reaction", json={"stamp": "read"}).status_code == 200

    r = staff.get(f"/api/v1/tenants/fed/notices/{nid}/stats")
    assert r.status_code == 200
    stats = r.get_json()
    # union-b was reached through its one admin (officers only): what that one person did is withheld from its row
    # and from the totals, which would otherwise give it away (the small-group rule); union-a's five are shown.
    assert stats["recipients"] == 5 + 1 and stats["read"] == 3 and stats["withheld_recipients"] == 1
    assert stats["reactions"] == {"attend": 1, "absent": 1, "read": 0}
    by_union = {u["union"]: u for u in stats["unions"]}
    assert set(by_union) == {"union-a", "union-b"}
    assert by_union["union-a"] == {"union": "union-a", "mode": "members", "recipients": 5, "delivered": 0, "read": 3,
                                   "reactions": {"attend": 1, "absent": 1, "read": 0}, "withheld": False}
    assert by_union["union-b"] == {"union": "union-b", "mode": "relay", "recipients": 1, "delivered": None,
                                   "read": None, "reactions": None, "withheld": True}
    text = r.get_data(as_text=True)
    for name in ("渡辺", "青木", "加藤", "執行", "わたなべ", "あおき", "カトウ", "a1", "a2", "badmin", "login_id",
                 "display_name", "name_kana"):
        assert name not in text, name

    # Once union-b relays to its members, its row counts them.
    badmin.post("/api/v1/unions/union-b/relays", json={"notice_id": nid, "audience": {"all": True}})
    jobs.drain()
    by_union = {u["union"]: u for u in staff.get(f"/api/v1/tenants/fed/notices/{nid}/stats").get_json()["unions"]}
    assert by_union["union-b"]["mode"] == "members" and by_union["union-b"]["recipients"] == 5

    # Only the author tenant's editors: not a union officer, not a member, not another federation.
    for tenant, login_id in (("union-a", "aadmin"), ("union-a", "a1"), ("fed2", "staff"), ("platform", "aud")):
        r = world.as_(tenant, login_id).get(f"/api/v1/tenants/fed/notices/{nid}/stats")
        assert r.status_code in (403, 404) and "recipients" not in r.get_data(as_text=True), login_id
    assert world.as_("union-a", "aeditor").get(f"/api/v1/tenants/union-a/notices/{nid}/stats").status_code == 404
    # A union's own notice: totals, no per-union list.
    own = issue(world.as_("union-a", "aeditor"), "union-a", {"all": True})
    a1.post(f"/api/v1/me/inbox/{own}/read")
    own_stats = world.as_("union-a", "aeditor").get(f"/api/v1/tenants/union-a/notices/{own}/stats").get_json()
    assert own_stats["recipients"] == 5 and own_stats["read"] == 1 and not own_stats.get("unions")


def test_receipts_are_in_50_on_order_and_only_for_the_unions_own_officers(world):
    staff = world.as_("fed", "staff")
    nid = issue(staff, "fed", {"all": True})
    world.as_("union-a", "a3").put(f"/api/v1/me/inbox/{nid}/reaction", json={"stamp": "absent"})
    world.as_("union-a", "a1").post(f"/api/v1/me/inbox/{nid}/read")

    editor = world.as_("union-a", "aeditor")
    r = editor.get(f"/api/v1/tenants/union-a/notices/{nid}/receipts")
    assert r.status_code == 200, r.get_json()
    items = r.get_json()["items"]
    # あおき, かとう (written in katakana, sorted as hiragana), きょうせん, しっこう, わたなべ
    assert [i["login_id"] for i in items] == ["a2", "a3", "aeditor", "aadmin", "a1"]
    assert [i["name_kana"] for i in items][:2] == ["あおき けん", "カトウ ショウ"]
    by_login = {i["login_id"]: i for i in items}
    assert by_login["a3"]["reaction"] == "absent" and by_login["a3"]["read_at"] is not None
    assert by_login["a1"]["read_at"] is not None and by_login["a1"]["reaction"] is None
    assert by_login["a2"]["read_at"] is None
    assert {i["union"] for i in items} == {"union-a"}
    absent = editor.get(f"/api/v1/tenants/union-a/notices/{nid}/receipts", query_string={"reaction": "absent"})
    assert [i["login_id"] for i in absent.get_json()["items"]] == ["a3"]

    # The opted-out union: its officers (for relay) until it relays, then its members.
    badmin = world.as_("union-b", "badmin")
    assert [i["login_id"] for i in badmin.get(f"/api/v1/tenants/union-b/notices/{nid}/receipts")
            .get_json()["items"]] == ["badmin"]
    badmin.post("/api/v1/unions/union-b/relays", json={"notice_id": nid, "audience": {"all": True}})
    assert [i["login_id"] for i in badmin.get(f"/api/v1/tenants/union-b/notices/{nid}/receipts")
            .get_json()["items"]] == ["b2", "b3", "beditor", "badmin", "b1"]

    # Never across unions, never for a member, never for a union the notice did not reach.
    assert world.as_("union-a", "a1").get(f"/api/v1/tenants/union-a/notices/{nid}/receipts").status_code == 403
    assert badmin.get(f"/api/v1/tenants/union-a/notices/{nid}/receipts").status_code == 404
    assert world.as_("union-c", "cadmin").get(f"/api/v1/tenants/union-c/notices/{nid}/receipts").status_code == 404
    # The organizer does not get the union's list: only those who shared (nobody here).
    assert staff.get(f"/api/v1/tenants/fed/notices/{nid}/receipts").get_json() == {"items": []}


def test_attending_a_federation_seminar_is_shared_with_the_organizer_and_absent_is_not(world):
    staff = world.as_("fed", "staff")
    seminar = issue(staff, "fed", {"all": True}, category="seminar")
    a1, a2, a3, badmin = (world.as_(t, u) for t, u in (("union-a", "a1"), ("union-a", "a2"), ("union-a", "a3"),
                                                       ("union-b", "badmin")))
    r = a1.put(f"/api/v1/me/inbox/{seminar}/reaction", json={"stamp": "attend"})
    assert r.status_code == 200 and r.get_json()["shared_with_organizer"] is True
    r = a2.put(f"/api/v1/me/inbox/{seminar}/reaction", json={"stamp": "absent"})
    assert r.status_code == 200 and r.get_json()["shared_with_organizer"] is False
    a3.put(f"/api/v1/me/inbox/{seminar}/reaction", json={"stamp": "read"})
    badmin.put(f"/api/v1/me/inbox/{seminar}/reaction", json={"stamp": "attend"})

    def attendees():  # type: ignore[no-untyped-def]
        r = staff.get(f"/api/v1/tenants/fed/notices/{seminar}/receipts")
        assert r.status_code == 200, r.get_json()
        return r.get_json()["items"]

    items = attendees()
    # しっこう (B) before わたなべ (A): 50-on order across unions.
    assert [(i["display_name"], i["name_kana"], i["union"]) for i in items] == [
        ("B執行 委員長", "しっこう いいんちょう", "union-b"), ("A渡辺 恵", "わたなべ めぐみ", "union-a")]
    assert all(i.get("login_id") is None for i in items)
    assert "a1" not in json.dumps(items) and "badmin" not in json.dumps(items)

    # Changing one's mind is honoured at once, both ways.
    a1.put(f"/api/v1/me/inbox/{seminar}/reaction", json={"stamp": "absent"})
    a2.put(f"/api/v1/me/inbox/{seminar}/reaction", json={"stamp": "attend"})
    assert [i["display_name"] for i in attendees()] == ["A青木 健", "B執行 委員長"]
    r = badmin.put(f"/api/v1/me/inbox/{seminar}/reaction", json={"stamp": None})
    assert r.status_code == 200 and r.get_json()["reaction"] is None
    assert [i["display_name"] for i in attendees()] == ["A青木 健"]

    # Attending anything other than a federation seminar shares nothing.
    meeting = issue(staff, "fed", {"all": True}, category="meeting")
    r = a1.put(f"/api/v1/me/inbox/{meeting}/reaction", json={"stamp": "attend"})
    assert r.get_json()["shared_with_organizer"] is False
    assert staff.get(f"/api/v1/tenants/fed/notices/{meeting}/receipts").get_json() == {"items": []}
    own = issue(world.as_("union-a", "aeditor"), "union-a", {"all": True}, category="seminar")
    r = a1.put(f"/api/v1/me/inbox/{own}/reaction", json={"stamp": "attend"})
    assert r.get_json()["shared_with_organizer"] is False
    # Another federation's organizer sees nothing of it.
    assert world.as_("fed2", "staff").get(f"/api/v1/tenants/fed/notices/{seminar}/receipts").status_code == 404
    assert world.as_("fed2", "staff").get(f"/api/v1/tenants/fed2/notices/{seminar}/receipts").status_code == 404


def test_reaction_changes_are_reflected_in_inbox_receipts_and_stats(world):
    staff = world.as_("fed", "staff")
    nid = issue(staff, "fed", {"all": True}, category="seminar")
    a1 = world.as_("union-a", "a1")
    for stamp in ("attend", "absent", "read", None, "attend"):
        r = a1.put(f"/api/v1/me/inbox/{nid}/reaction", json={"stamp": stamp})
        assert r.status_code == 200, r.get_json()
        assert r.get_json()["reaction"] == stamp and r.get_json()["read_at"] is not None
        assert holds(a1, nid)["reaction"] == stamp
        reactions = staff.get(f"/api/v1/tenants/fed/notices/{nid}/stats").get_json()["reactions"]
        assert reactions == {k: int(k == stamp) for k in ("attend", "absent", "read")}
    receipts = world.as_("union-a", "aadmin").get(f"/api/v1/tenants/union-a/notices/{nid}/receipts").get_json()
    assert {i["login_id"]: i["reaction"] for i in receipts["items"]}["a1"] == "attend"


# --- the member's inbox ---------------------------------------------------------------------------------------------

def test_inbox_pagination_boundaries_and_unread_counts(world):
    editor = world.as_("union-a", "aeditor")
    ids = [issue(editor, "union-a", {"all": True}, title=f"お知らせ {n}") for n in range(6)]
    newest_first = list(reversed(ids))
    a1 = world.as_("union-a", "a1")

    def pages(limit):  # type: ignore[no-untyped-def]
        out, cursor = [], None
        while True:
            r = a1.get("/api/v1/me/inbox", query_string={"limit": limit, **({"cursor": cursor} if cursor else {})})
            assert r.status_code == 200, r.get_json()
            page = r.get_json()
            assert page["unread"] == 6  # the whole inbox's unread count, on every page
            out.append([i["notice"]["id"] for i in page["items"]])
            cursor = page["next_cursor"]
            if cursor is None:
                return out
            assert len(out) < 10, "pagination does not end"

    assert pages(1) == [[i] for i in newest_first]
    assert pages(2) == [newest_first[0:2], newest_first[2:4], newest_first[4:6]]
    assert pages(3) == [newest_first[0:3], newest_first[3:6]]
    assert pages(4) == [newest_first[0:4], newest_first[4:6]]
    assert pages(6) == [newest_first]
    assert pages(100) == [newest_first]
    # A member with an empty inbox gets one empty page.
    empty = world.as_("union-c", "c1").get("/api/v1/me/inbox").get_json()
    assert empty == {"items": [], "next_cursor": None, "unread": 0}

    a1.post(f"/api/v1/me/inbox/{ids[0]}/read")
    a1.put(f"/api/v1/me/inbox/{ids[3]}/reaction", json={"stamp": "absent"})  # a stamp marks read too
    page = a1.get("/api/v1/me/inbox").get_json()
    assert page["unread"] == 4
    read = {i["notice"]["id"] for i in page["items"] if i["read_at"]}
    assert read == {ids[0], ids[3]}
    assert world.as_("union-a", "a2").get("/api/v1/me/inbox").get_json()["unread"] == 6
    # The brief shows no author account and no audience.
    assert set(page["items"][0]) == {"notice", "delivered_at", "read_at", "reaction", "for_relay", "officers"}
    assert set(page["items"][0]["notice"]) >= {"id", "tenant", "title", "category", "body_html", "event",
                                                "published_at"}
    assert "audience" not in page["items"][0]["notice"] and "author" not in page["items"][0]["notice"]


def test_inbox_pages_do_not_skip_or_repeat_notices_delivered_at_the_same_instant(world):
    from federation.extensions import db
    from federation.notices.models import Delivery

    editor = world.as_("union-a", "aeditor")
    ids = [issue(editor, "union-a", {"all": True}, title=f"同時 {n}") for n in range(5)]
    staff = world.as_("fed", "staff")
    ids.append(issue(staff, "fed", {"all": True}))
    with world.app.app_context():
        same = db.session.execute(select(func.min(Delivery.delivered_at))).scalar_one()
        db.session.execute(update(Delivery).where(Delivery.notice_id.in_(ids[1:5])).values(delivered_at=same))
        db.session.commit()
    a1 = world.as_("union-a", "a1")
    for limit in (1, 2, 3):
        seen, cursor = [], None
        while True:
            page = a1.get("/api/v1/me/inbox", query_string={"limit": limit, **({"cursor": cursor} if cursor else {})})
            seen += [i["notice"]["id"] for i in page.get_json()["items"]]
            cursor = page.get_json()["next_cursor"]
            if cursor is None:
                break
        assert sorted(seen) == sorted(ids) and len(seen) == len(set(seen)), (limit, seen)
        assert seen[0] == ids[-1]  # newest first


def test_mark_read_is_idempotent(world):
    nid = issue(world.as_("union-a", "aeditor"), "union-a", {"all": True})
    a1 = world.as_("union-a", "a1")
    first = a1.post(f"/api/v1/me/inbox/{nid}/read")
    assert first.status_code == 200 and first.get_json()["read_at"]
    second = a1.post(f"/api/v1/me/inbox/{nid}/read")
    assert second.status_code == 200 and second.get_json() == first.get_json()
    assert a1.get("/api/v1/me/inbox").get_json()["unread"] == 0
    stats = world.as_("union-a", "aeditor").get(f"/api/v1/tenants/union-a/notices/{nid}/stats").get_json()
    assert stats["read"] == 1
    # Pressing a stamp later keeps the first read time.
    r = a1.put(f"/api/v1/me/inbox/{nid}/reaction", json={"stamp": "read"})
    assert r.get_json()["read_at"] == first.get_json()["read_at"]
    assert world.as_("union-a", "a1").post("/api/v1/me/inbox/999999/read").status_code == 404


def test_bad_input_on_every_notice_endpoint_is_a_4xx_naming_the_field(world):
    staff = world.as_("fed", "staff")
    editor = world.as_("union-a", "aeditor")
    admin = world.as_("union-b", "badmin")
    nid = issue(staff, "fed", {"all": True}, category="seminar")
    draft = create(staff, "fed", {"all": True})["id"]
    good = {"title": "t", "body": "b", "category": "general", "audience": {"all": True}}

    def bad(r, field, status=422):  # type: ignore[no-untyped-def]
        assert r.status_code == status, (field, r.status_code, r.get_json())
        fields = error_fields(r)
        assert field in fields or any(k.startswith(field) for k in fields), (field, r.get_json())
        return fields

    notices = "/api/v1/tenants/fed/notices"
    bad(staff.post(notices, json={**good, "colour": "red"}), "colour")
    bad(staff.post(notices, json={**good, "tenant_id": 3}), "tenant_id")
    bad(staff.post(notices, json={k: v for k, v in good.items() if k != "title"}), "title")
    bad(staff.post(notices, json={**good, "title": ""}), "title")
    bad(staff.post(notices, json={**good, "title": "x" * 201}), "title")
    bad(staff.post(notices, json={**good, "body": "x" * 20_001}), "body")
    bad(staff.post(notices, json={**good, "category": "party"}), "category")
    bad(staff.post(notices, json={**good, "audience": []}), "audience")
    bad(staff.post(notices, json={**good, "audience": {}}), "audience")
    bad(staff.post(notices, json={**good, "audience": {"all": False}}), "audience.all")
    bad(staff.post(notices, json={**good, "audience": {"all": True, "unions": ["union-a"]}}), "audience.all")
    bad(staff.post(notices, json={**good, "audience": {"everyone": True}}), "audience.everyone")
    bad(staff.post(notices, json={**good, "audience": {"units": "1"}}), "audience.units")
    bad(staff.post(notices, json={**good, "audience": {"units": [True]}}), "audience.units")
    bad(staff.post(notices, json={**good, "audience": {"units": [999999]}}), "audience.units[0]")
    bad(staff.post(notices, json={**good, "audience": {"units": [world.ids["union-a:branch"]]}}), "audience.units[0]")
    bad(staff.post(notices, json={**good, "audience": {"unions": ["union-a", "union-c"]}}), "audience.unions[1]")
    bad(staff.post(notices, json={**good, "audience": {"unions": "union-a"}}), "audience.unions")
    bad(staff.post(notices, json={**good, "audience": {"unions": []}}), "audience")
    bad(world.as_("fed2", "staff").post("/api/v1/tenants/fed2/notices", json={
        **good, "audience": {"unions": ["union-a"]}}), "audience.unions[0]")
    bad(editor.post("/api/v1/tenants/union-a/notices", json={**good, "audience": {"unions": ["union-a"]}}),
        "audience.unions")
    bad(staff.post(notices, json={**good, "publish_at": "2001-01-01T00:00:00+00:00"}), "publish_at")
    bad(staff.post(notices, json={**good, "publish_at": "2099-01-01T00:00:00"}), "publish_at")  # no offset
    bad(staff.post(notices, json={**good, "publish_at": "soon"}), "publish_at")
    bad(staff.post(notices, json={**good, "event": {"place": "本部"}}), "event")
    bad(staff.post(notices, json={**good, "event": {"starts_at": "2099-01-02T10:00:00+09:00",
                                                    "ends_at": "2099-01-02T09:00:00+09:00"}}), "event.ends_at")
    bad(staff.post(notices, json={**good, "reminder_lead_minutes": -1}), "reminder_lead_minutes")
    r = world.client.post(notices, data="not json", headers={**staff._headers(), "Content-Type": "application/json"})
    assert r.status_code == 400 and set(r.get_json()) == {"error"}
    r = staff.post(notices, json=["a list"])
    assert 400 <= r.status_code < 500 and set(r.get_json()) == {"error"}

    one = f"/api/v1/tenants/fed/notices/{draft}"
    bad(staff.patch(one, json={"colour": "red"}), "colour")
    bad(staff.patch(one, json={"publish_at": "2001-01-01T00:00:00+00:00"}), "publish_at")
    bad(staff.patch(one, json={"audience": {"unions": ["nope"]}}), "audience.unions[0]")
    bad(staff.patch(f"/api/v1/tenants/fed/notices/{nid}", json={"audience": {"all": True}}), "audience", 409)
    bad(staff.post(f"/api/v1/tenants/fed/notices/{nid}/publish"), "status", 409)
    bad(staff.post("/api/v1/tenants/fed/notices/preview", json={"audience": {"all": True}, "x": 1}), "x")
    bad(staff.post("/api/v1/tenants/fed/notices/preview", json={"audience": {"units": [-1]}}), "audience.units[0]")
    bad(staff.get("/api/v1/tenants/fed/notices", query_string={"status": "gone"}), "status")
    bad(staff.get("/api/v1/tenants/fed/notices", query_string={"cursor": "!!!"}), "cursor", 400)

    a1 = world.as_("union-a", "a1")
    bad(a1.put(f"/api/v1/me/inbox/{nid}/reaction", json={"stamp": "like"}), "stamp")
    bad(a1.put(f"/api/v1/me/inbox/{nid}/reaction", json={}), "stamp")
    bad(a1.put(f"/api/v1/me/inbox/{nid}/reaction", json={"stamp": "attend", "notice_id": 1}), "notice_id")
    bad(a1.get("/api/v1/me/inbox", query_string={"limit": 0}), "limit")
    bad(a1.get("/api/v1/me/inbox", query_string={"limit": 101}), "limit")
    bad(a1.get("/api/v1/me/inbox", query_string={"limit": "ten"}), "limit")
    bad(a1.get("/api/v1/me/inbox", query_string={"cursor": "not-a-cursor"}), "cursor", 400)
    forged = base64.urlsafe_b64encode(json.dumps(["yesterday", 1]).encode()).decode().rstrip("=")
    bad(a1.get("/api/v1/me/inbox", query_string={"cursor": forged}), "cursor", 400)
    forged = base64.urlsafe_b64encode(json.dumps({"a": 1}).encode()).decode().rstrip("=")
    bad(a1.get("/api/v1/me/inbox", query_string={"cursor": forged}), "cursor", 400)

    relays = "/api/v1/unions/union-b/relays"
    bad(admin.post(relays, json={"notice_id": nid, "audience": {"all": True}, "note": "x"}), "note")
    bad(admin.post(relays, json={"notice_id": str(nid), "audience": {"all": True}}), "notice_id")
    bad(admin.post(relays, json={"audience": {"all": True}}), "notice_id")
    bad(admin.post(relays, json={"notice_id": nid, "audience": {"unions": ["union-b"]}}), "audience.unions")
    bad(admin.post(relays, json={"notice_id": nid, "audience": {"units": [999999]}}), "audience.units[0]")
    bad(admin.get(f"/api/v1/tenants/union-b/notices/{nid}/receipts", query_string={"reaction": "love"}),
        "reaction")
    # None of it created anything.
    listing = staff.get("/api/v1/tenants/fed/notices").get_json()["items"]
    assert sorted(n["id"] for n in listing) == sorted([nid, draft])


# --- jobs: idempotence and F7 ---------------------------------------------------------------------------------------

def test_a_delivery_job_run_twice_writes_no_duplicate_delivery_or_audit_entry(more):
    from federation.extensions import db, utcnow
    from federation.notices.cascade import deliver_chunk
    from federation.notices.models import CascadeChunk, Delivery, Notice
    from tenants.models import Tenant

    world = more
    nid = create(world.as_("fed", "staff"), "fed", {"all": True})["id"]
    app = world.app
    with app.app_context():
        # Published without its start job, so that the delivery job below is the first to run.
        db.session.execute(update(Notice).where(Notice.id == nid).values(status="published", published_at=utcnow(),
                                                                         cascade_chunks=1, cascade_targets=4))
        db.session.commit()
        union_ids = list(db.session.execute(select(Tenant.id).where(Tenant.kind == "union")).scalars())
        deliver_chunk(nid, 0, union_ids)
        deliver_chunk(nid, 0, union_ids)
        # The chunk record lost (as if the job died after its work but the retry ran anyway): still no duplicate.
        db.session.execute(CascadeChunk.__table__.delete().where(CascadeChunk.notice_id == nid))
        db.session.commit()
        deliver_chunk(nid, 0, union_ids)
        counts = dict(db.session.execute(select(Delivery.tenant_id, func.count()).where(Delivery.notice_id == nid)
                                         .group_by(Delivery.tenant_id)).all())
        assert sorted(counts.values()) == [1, 1, 1, 1]
        assert db.session.get(Notice, nid).cascade_done_at is not None
    jobs.drain()
    audited = [e["other_tenant"] for e in audit_entries(app, "notice.deliver", nid)]
    assert sorted(audited) == ["union-a", "union-b", "union-d", "union-e"]
    assert inbox_ids(world.as_("union-a", "a1")) == [nid]
    assert inbox_ids(world.as_("union-d", "d2")) == [nid]
    from federation.audit.chain import verify

    with app.app_context():
        assert verify().ok


@pytest.mark.parametrize("who", ["fed_editor", "unit_editor", "union_editor"])
def test_revoking_the_authors_role_before_a_scheduled_publish_delivers_nothing(world, who):
    tenant, author, admin, audience = {
        "fed_editor": ("fed", "staff", ("fed", "fadmin"), {"all": True}),
        "unit_editor": ("fed", "tokyo", ("fed", "fadmin"), {"units": [world.ids["council"]]}),
        "union_editor": ("union-a", "aeditor", ("union-a", "aadmin"), {"all": True}),
    }[who]
    nid = create(world.as_(tenant, author), tenant, audience, publish_at=FUTURE)["id"]
    grant = {"login_id": author, "role": who, **({"unit_id": world.ids["council"]} if who == "unit_editor" else {})}
    r = world.as_(*admin).delete(f"/api/v1/tenants/{tenant}/roles", json=grant)
    assert r.status_code == 204, r.get_json()
    make_due(world.app, nid)
    tick(world.app)

    assert deliveries(world.app, nid) == []
    for t, login_id in (("union-a", "a1"), ("union-a", "aadmin"), ("union-b", "badmin"), ("union-b", "b1")):
        assert holds(world.as_(t, login_id), nid) is None, login_id
    refused = audit_entries(world.app, "notice.refused", nid)
    assert len(refused) == 1 and refused[0]["actor"] == f"user:{tenant}/{author}"
    assert audit_entries(world.app, "notice.deliver", nid) == []
    assert audit_entries(world.app, "notice.publish", nid) == []
    # The notice does not pretend to have gone out: it is a draft again, for someone who may publish to send.
    shown = world.as_(*admin).get(f"/api/v1/tenants/{tenant}/notices/{nid}").get_json()
    assert shown["status"] == "draft" and shown["published_at"] is None and shown["publish_at"] is None
    # A later tick does not try again.
    tick(world.app)
    assert len(audit_entries(world.app, "notice.refused", nid)) == 1
