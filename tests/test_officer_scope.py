"""A block or council officer (`unit_editor`) reads only their own notices: in the list (every status), in the
single view, in stats and in receipts, on the API and on the pages alike. The federation's staff see every notice
of the federation. Before one read path existed, `?status=draft` listed every draft of the federation and the stats
and receipts of other officers' notices were served, receipts with the names of members who attended."""
from __future__ import annotations

import pytest
from conftest import World
from test_web_pages import publish
from web_support import Browser


def _draft(world: World, who: str, audience: dict, title: str) -> int:
    r = world.as_("fed", who).post("/api/v1/tenants/fed/notices", json={
        "title": title, "body": "本文", "category": "general", "audience": audience})
    assert r.status_code == 201, r.get_json()
    return r.get_json()["id"]


@pytest.fixture
def notices(world: World) -> dict[str, int]:
    """Staff's draft for the Osaka council, staff's seminar to union-a (which a union-a member attends), and the
    Tokyo officer's own draft."""
    staff_draft = _draft(world, "staff", {"units": [world.ids["council2"]]}, "大阪県協 役員会の議案（非公開）")
    seminar = publish(world, "fed", "staff", {"unions": ["union-a"]}, title="本部主催セミナー")
    member = world.as_("union-a", "a1")
    assert member.put(f"/api/v1/me/inbox/{seminar}/reaction", json={"stamp": "attend"}).status_code == 200
    own = _draft(world, "tokyo", {"units": [world.ids["council"]]}, "東京県協 学習会の案内")
    return {"staff_draft": staff_draft, "seminar": seminar, "own": own}


def _ids(r) -> set[int]:  # type: ignore[no-untyped-def]
    assert r.status_code == 200, r.get_json()
    return {item["id"] for item in r.get_json()["items"]}


@pytest.mark.parametrize("status", [None, "draft", "published"])
def test_council_officer_lists_only_their_own_notices(world: World, notices: dict[str, int],
                                                      status: str | None) -> None:
    query = f"?status={status}" if status else ""
    seen = _ids(world.as_("fed", "tokyo").get(f"/api/v1/tenants/fed/notices{query}"))
    assert notices["staff_draft"] not in seen and notices["seminar"] not in seen
    if status in (None, "draft"):
        assert notices["own"] in seen
    staff_sees = _ids(world.as_("fed", "staff").get(f"/api/v1/tenants/fed/notices{query}"))
    expected = {"draft": {"staff_draft", "own"}, "published": {"seminar"},
                None: {"staff_draft", "own", "seminar"}}[status]
    assert {notices[k] for k in expected} <= staff_sees


@pytest.mark.parametrize("what", ["", "/stats", "/receipts"])
def test_council_officer_gets_404_for_another_officers_notice(world: World, notices: dict[str, int],
                                                               what: str) -> None:
    tokyo = world.as_("fed", "tokyo")
    for key in ("staff_draft", "seminar"):
        r = tokyo.get(f"/api/v1/tenants/fed/notices/{notices[key]}{what}")
        assert r.status_code == 404, (key, r.get_json())
        assert "渡辺" not in r.get_data(as_text=True)
    assert tokyo.get(f"/api/v1/tenants/fed/notices/{notices['own']}{what}").status_code == 200


def test_the_organizer_still_sees_who_shared_their_attendance(world: World, notices: dict[str, int]) -> None:
    r = world.as_("fed", "staff").get(f"/api/v1/tenants/fed/notices/{notices['seminar']}/receipts")
    assert r.status_code == 200
    assert [i["display_name"] for i in r.get_json()["items"]] == ["A渡辺 恵"]


def test_council_officer_pages_show_only_their_own_notices(world: World, notices: dict[str, int]) -> None:
    page = Browser(world.app, "fed", "tokyo")
    for status in ("", "?status=draft"):
        html = page.get(f"/t/fed/notices{status}").get_data(as_text=True)
        assert "東京県協 学習会の案内" in html
        assert "大阪県協 役員会の議案" not in html and "本部主催セミナー" not in html
    for what in ("stats", "receipts"):
        assert page.get(f"/t/fed/notices/{notices['seminar']}/{what}").status_code == 404
        assert page.get(f"/t/fed/notices/{notices['own']}/{what}").status_code == 200
    staff = Browser(world.app, "fed", "staff")
    assert "渡辺" in staff.get(f"/t/fed/notices/{notices['seminar']}/receipts").get_data(as_text=True)


def test_a_union_admin_sees_federation_notices_as_delivered(world: World, notices: dict[str, int]) -> None:
    """The received list names no audience (other unions' slugs) and no author account, like the single view."""
    r = world.as_("union-a", "aadmin").get("/api/v1/tenants/union-a/notices?received=true")
    assert r.status_code == 200
    items = r.get_json()["items"]
    assert [i["id"] for i in items] == [notices["seminar"]]
    assert "audience" not in items[0] and "author" not in items[0]
    assert {"id", "tenant", "title", "category", "body_html", "published_at"} <= set(items[0])
