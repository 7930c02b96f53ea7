"""Correcting a member through PATCH /tenants/{slug}/members/{login_id}: every change in one body is kept together,
a refused field keeps none of them, and the reading keeps the 50-on order right."""
from __future__ import annotations

A = "/api/v1/tenants/union-a/members"


def _member(world, login_id: str) -> dict:  # type: ignore[no-untyped-def]
    items = world.as_("union-a", "aadmin").get(f"{A}?limit=100").get_json()["items"]
    return next(m for m in items if m["login_id"] == login_id)


def test_name_unit_and_an_unchanged_status_are_kept_together(world):
    admin = world.as_("union-a", "aadmin")
    branch2 = world.ids["union-a:branch2"]
    r = admin.patch(f"{A}/a2", json={"display_name": "改名 花子", "name_kana": "カイメイ ハナコ", "unit_id": branch2,
                                     "status": "active"})
    assert r.status_code == 200, r.get_json()
    # Read back in a new request: what the answer said is what was stored (the status was already active).
    stored = _member(world, "a2")
    assert (stored["display_name"], stored["name_kana"], stored["unit_id"]) == ("改名 花子", "カイメイ ハナコ", branch2)


def test_a_refused_field_keeps_none_of_the_changes(world):
    admin = world.as_("union-a", "aadmin")
    before = _member(world, "a2")
    r = admin.patch(f"{A}/a2", json={"display_name": "別名 太郎", "name_kana": "abc"})
    assert r.status_code == 422 and "name_kana" in r.get_json()["error"]["fields"]
    assert _member(world, "a2") == before
    r = admin.patch(f"{A}/aadmin", json={"display_name": "自分 停止", "status": "suspended"})
    assert r.status_code == 422 and "status" in r.get_json()["error"]["fields"]
    assert _member(world, "aadmin")["display_name"] != "自分 停止"


def test_a_corrected_reading_moves_the_member_in_50_on_order(world):
    admin = world.as_("union-a", "aadmin")
    assert admin.patch(f"{A}/a2", json={"name_kana": "ん"}).status_code == 200
    order = [m["login_id"] for m in admin.get(f"{A}?limit=100").get_json()["items"]]
    assert order[-1] == "a2"
    assert admin.patch(f"{A}/a2", json={"name_kana": "ああ"}).status_code == 200
    order = [m["login_id"] for m in admin.get(f"{A}?limit=100").get_json()["items"]]
    assert order[0] == "a2"
