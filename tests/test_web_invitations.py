"""The invitation pages: the union admin issues an invitation (union or unit, expiry, use limit, approval), prints the
flyer with its QR code, revokes it, lets pending registrations in, and reads registrations per unit; every page
answers as the API does (404 outside the union, 403 for members without the right), bad input is a 422 that creates
nothing, and forms without their token are refused."""
from __future__ import annotations

import json
import re
from datetime import date, timedelta

import pytest
from conftest import World
from web_support import Browser, latin_words, visible_text

A = "/api/v1/tenants/union-a"
P = "/t/union-a/invitations"
NEWCOMER = {"login_id": "E20260401", "display_name": "新入 一郎", "name_kana": "しんにゅう いちろう",
            "password": "Shinnyu-2026-pass!"}
# Names of formats, as they are printed on Japanese flyers and menus too.
FORMATS = {"QR", "SVG", "PNG"}


def listed(world: World) -> list[dict]:
    return world.as_("union-a", "aadmin").get(f"{A}/invitations").get_json()["items"]


def issue(browser: Browser, **over: str):  # type: ignore[no-untyped-def]
    return browser.post(P, {"unit_id": "", "label": "", "expires_on": "", "max_uses": "", **over})


def issued_id(response) -> int:  # type: ignore[no-untyped-def]
    assert response.status_code == 302, response.get_data(as_text=True)[:3000]
    found = re.search(r"/invitations/(\d+)\?done=created$", response.headers["Location"])
    assert found, response.headers["Location"]
    return int(found.group(1))


def register(world: World, token: str, **over: str):  # type: ignore[no-untyped-def]
    return world.anonymous().post(f"/api/v1/register/{token}", json={**NEWCOMER, **over})


# --- the admin's journey -------------------------------------------------------------------------------------------

def test_admin_issues_a_unit_invitation_and_gets_a_printable_flyer(world, app):
    admin = Browser(app, "union-a", "aadmin")
    page = admin.text(P)
    assert "招待を発行" in page and "a工場支部" in page and "組合全体" in page
    branch2 = world.ids["union-a:branch2"]
    inv_id = issued_id(issue(admin, unit_id=str(branch2), label="2026年度 新入社員", max_uses="5",
                             needs_approval="on"))
    [inv] = listed(world)
    assert inv["id"] == inv_id and inv["unit_id"] == branch2 and inv["max_uses"] == 5 and inv["needs_approval"]
    assert inv["label"] == "2026年度 新入社員" and inv["state"] == "active"

    flyer = admin.text(f"{P}/{inv_id}?done=created")
    assert "A通信労組に加入しましょう" in flyer and "a工場支部" in flyer and "2026年度 新入社員" in flyer
    assert f'<img class="flyer-qr" src="{P}/{inv_id}/qr.png"' in flyer
    assert f'href="{P}/{inv_id}/qr.svg"' in flyer
    assert f"/register/{inv['token']}" in flyer and "有効期限" in flyer
    png = admin.get(f"{P}/{inv_id}/qr.png")
    assert png.status_code == 200 and png.mimetype == "image/png" and png.data.startswith(b"\x89PNG\r\n\x1a\n")
    svg = admin.get(f"{P}/{inv_id}/qr.svg")
    assert svg.status_code == 200 and svg.mimetype == "image/svg+xml" and b"<svg" in svg.data
    assert svg.headers["Content-Disposition"].startswith("attachment;")
    # The flyer prints alone: the officer tools are marked to stay off paper.
    assert 'class="card no-print"' in flyer

    rows = admin.text(P)
    assert "a工場支部" in rows and "0 / 5" in rows and "有効" in rows and "承認が必要" in rows


def test_expiry_date_is_the_end_of_that_day_in_japan(world, app):
    day = (date.today() + timedelta(days=60)).isoformat()
    admin = Browser(app, "union-a", "aadmin")
    issued_id(issue(admin, expires_on=day))
    assert listed(world)[0]["expires_at"].startswith(f"{day}T14:59")  # 23:59 in Japan


def test_states_are_shown_in_japanese_and_revoking_stops_the_code(world, app):
    from federation.extensions import db
    from federation.space.invitations.models import Invitation

    admin = Browser(app, "union-a", "aadmin")
    once = issued_id(issue(admin, max_uses="1"))
    old = issued_id(issue(admin))
    gone = issued_id(issue(admin))
    tokens = {i["id"]: i["token"] for i in listed(world)}
    assert register(world, tokens[once]).status_code == 201
    with app.app_context():
        row = db.session.get(Invitation, old)
        row.expires_at = row.created_at - timedelta(days=1)
        db.session.commit()
    r = admin.post(f"{P}/{gone}/revoke")
    assert r.status_code == 302 and r.headers["Location"].endswith(f"{P}?done=revoked")
    assert register(world, tokens[gone], login_id="E2").status_code == 410
    states = {i["id"]: i["state"] for i in listed(world)}
    assert states == {once: "used_up", old: "expired", gone: "revoked"}
    page = admin.text(f"{P}?done=revoked")
    for word in ("上限到達", "期限切れ", "取り消し済み", "取り消しました", "1 / 1"):
        assert word in page, word
    # A revoked invitation offers no second revoke; the confirmation is asked before the first.
    assert page.count(f'action="{P}/{gone}/revoke"') == 0
    assert f'action="{P}/{once}/revoke"' in page and 'data-confirm="' in page
    assert "この招待は使えなくなっています" in admin.text(f"{P}/{gone}")


@pytest.mark.parametrize(("over", "message"), [
    ({"max_uses": "たくさん"}, "利用上限"),
    ({"max_uses": "0"}, "利用上限"),
    ({"expires_on": "2020-01-01"}, "有効期限"),
    ({"expires_on": "2026-02-30"}, "有効期限"),
    ({"expires_on": (date.today() + timedelta(days=400)).isoformat()}, "有効期限"),
    ({"unit_id": "abc"}, "所属"),
    ({"label": "x" * 101}, "ラベル"),
])
def test_bad_input_is_named_with_422_and_creates_nothing(world, app, over, message):
    admin = Browser(app, "union-a", "aadmin")
    r = issue(admin, **over)
    assert r.status_code == 422
    page = r.get_data(as_text=True)
    assert message in page and "保存していません" in page
    assert listed(world) == []


def test_a_unit_of_another_union_is_refused(world, app):
    admin = Browser(app, "union-a", "aadmin")
    r = issue(admin, unit_id=str(world.ids["union-b:branch"]))
    assert r.status_code == 422 and "この組合の所属" in r.get_data(as_text=True)
    assert listed(world) == []


def test_pending_registrations_are_listed_and_approved(world, app):
    admin = Browser(app, "union-a", "aadmin")
    inv_id = issued_id(issue(admin, unit_id=str(world.ids["union-a:branch"]), needs_approval="on"))
    token = listed(world)[0]["token"]
    assert inv_id and register(world, token).status_code == 201
    assert "1人が承認を待っています" in admin.text(P)
    page = admin.text(f"{P}/pending")
    assert "新入 一郎" in page and "しんにゅう いちろう" in page and "E20260401" in page and "a本社支部" in page
    reg = re.search(r'name="registration_id" value="(\d+)"', page)
    assert reg
    r = admin.post(f"{P}/pending", {"registration_id": reg.group(1)})
    assert r.status_code == 302
    done = admin.text(r.headers["Location"])
    assert "サインインできるようになりました" in done and "承認を待っている登録はありません" in done
    ok = world.client.post("/api/v1/auth/login", json={"tenant": "union-a", "login_id": "E20260401",
                                                       "password": NEWCOMER["password"]})
    assert ok.status_code == 200
    world.client.delete_cookie("musubi_session")
    # Approving twice is a conflict; garbage is named; an id of nobody is not found.
    assert admin.post(f"{P}/pending", {"registration_id": reg.group(1)}).status_code == 409
    assert admin.post(f"{P}/pending", {"registration_id": "x"}).status_code == 422
    assert admin.post(f"{P}/pending", {"registration_id": "99999"}).status_code == 404


def test_report_counts_registrations_per_unit(world, app):
    admin = Browser(app, "union-a", "aadmin")
    branch2 = world.ids["union-a:branch2"]
    issued_id(issue(admin, unit_id=str(branch2)))
    issued_id(issue(admin, unit_id=str(branch2), needs_approval="on"))
    tokens = [i["token"] for i in listed(world)]  # newest first: the one needing approval
    assert register(world, tokens[0], login_id="E1").status_code == 201
    assert register(world, tokens[1], login_id="E2").status_code == 201
    assert register(world, tokens[1], login_id="E3").status_code == 201
    page = admin.text(f"{P}/report")
    row = re.search(r"<th scope=\"row\">a工場支部</th>(.*?)</tr>", page, re.S)
    assert row
    assert re.findall(r'<td class="num">(\d+)</td>', row.group(1)) == ["3", "2", "1"]
    other = re.search(r"<th scope=\"row\">a本社支部</th>(.*?)</tr>", page, re.S)
    assert other and re.findall(r'<td class="num">(\d+)</td>', other.group(1)) == ["0", "0", "0"]
    assert "合計" in page and "新入社員" in page


# --- who may open what ---------------------------------------------------------------------------------------------

OUTSIDERS = [("fed", "fadmin"), ("fed", "staff"), ("platform", "aud"), ("platform", "ops"), ("union-b", "badmin"),
             ("union-b", "b1")]


@pytest.fixture
def issued(world: World, app) -> int:  # type: ignore[no-untyped-def]
    return issued_id(issue(Browser(app, "union-a", "aadmin"), needs_approval="on"))


def pages_of(inv_id: int) -> list[str]:
    return [P, f"{P}/{inv_id}", f"{P}/{inv_id}/qr.png", f"{P}/{inv_id}/qr.svg", f"{P}/pending", f"{P}/report"]


@pytest.mark.parametrize("who", OUTSIDERS, ids=lambda w: f"{w[0]}/{w[1]}")
def test_the_federation_the_auditor_and_neighbours_get_404_everywhere(world, app, issued, who):
    browser = Browser(app, *who)
    for path in pages_of(issued):
        r = browser.get(path)
        assert r.status_code == 404, (who, path, r.status_code)
        assert b"/register/" not in r.data and not r.data.startswith(b"\x89PNG")
    assert browser.post(f"{P}/{issued}/revoke").status_code == 404
    assert issue(browser).status_code == 404
    assert browser.post(f"{P}/pending", {"registration_id": "1"}).status_code == 404
    assert [i["state"] for i in listed(world)] == ["active"]


@pytest.mark.parametrize("who", ["a1", "aeditor"])
def test_members_and_editors_of_the_union_get_403(world, app, issued, who):
    browser = Browser(app, "union-a", who)
    for path in pages_of(issued):
        assert browser.get(path).status_code == 403, (who, path)
    assert browser.post(f"{P}/{issued}/revoke").status_code == 403
    assert issue(browser).status_code == 403
    assert [i["state"] for i in listed(world)] == ["active"]


def test_forms_without_the_pages_token_are_refused(world, app, issued):
    admin = Browser(app, "union-a", "aadmin")
    assert admin.post(P, {"unit_id": "", "expires_on": ""}, token=False).status_code == 403
    assert admin.post(f"{P}/{issued}/revoke", token=False).status_code == 403
    assert admin.post(f"{P}/{issued}/revoke", {"csrf_token": "forged"}, token=False).status_code == 403
    assert [i["state"] for i in listed(world)] == ["active"]


def test_the_menu_shows_invitations_to_the_union_admin_only(world, app):
    assert f'href="{P}"' in Browser(app, "union-a", "aadmin").text("/settings")
    for who in (("union-a", "a1"), ("union-a", "aeditor"), ("fed", "fadmin"), ("platform", "aud")):
        assert "/invitations" not in Browser(app, *who).text("/settings"), who


# --- Japanese first ------------------------------------------------------------------------------------------------

def test_invitation_pages_show_no_untranslated_english_in_japanese_mode(world, app, issued):
    admin = Browser(app, "union-a", "aadmin")
    admin.client.set_cookie("musubi_lang", "ja")
    assert register(world, listed(world)[0]["token"]).status_code == 201
    pages: dict[str, str] = {}

    def visit(path: str, status: int = 200, data: dict | None = None) -> None:
        r = admin.get(path) if data is None else admin.post(path, data)
        assert r.status_code == status, (path, r.status_code)
        pages[path + (" (post)" if data is not None else "")] = visible_text(r.get_data(as_text=True))

    for path in (P, f"{P}?done=revoked", f"{P}/{issued}", f"{P}/{issued}?done=created", f"{P}/pending",
                 f"{P}/report"):
        visit(path)
    visit(P, 422, {"unit_id": "x", "expires_on": "1999-01-01", "max_uses": "0", "label": ""})
    visit(f"{P}/pending", 422, {"registration_id": "x"})
    assert admin.post(f"{P}/{issued}/revoke").status_code == 302
    visit(f"{P}/{issued}")
    visit(f"{P}/pending?done=approved")
    a1 = Browser(app, "union-a", "a1")
    a1.client.set_cookie("musubi_lang", "ja")
    r = a1.get(P)
    assert r.status_code == 403
    pages["member"] = visible_text(r.get_data(as_text=True))

    allowed = FORMATS | {"musubi", "union", "a1", "aadmin"}
    leftovers = {name: sorted(latin_words(text) - allowed) for name, text in pages.items()}
    assert {k: v for k, v in leftovers.items() if v} == {}, json.dumps(leftovers, ensure_ascii=False)
