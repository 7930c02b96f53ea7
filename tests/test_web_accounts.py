"""The account pages (the API's /me/password, members/{login_id}/reset and /unlock, as officers and members use
them): changing your own password, the officer's one-time link and unlock from the members page, and what to do
when you forgot your password. Always with a federation and two unions as neighbours."""
from __future__ import annotations

import re

import pytest
from conftest import PW
from web_support import Browser

NEW_PW = "Kumiai-2026-natsu!"


def _signs_in(app, tenant: str, login_id: str, password: str) -> bool:  # type: ignore[no-untyped-def]
    return Browser(app).sign_in(tenant, login_id, password).status_code == 302


def test_a_member_changes_their_password_and_their_other_sign_ins_end(world, app):
    phone, laptop = Browser(app, "union-a", "a1"), Browser(app, "union-a", "a1")
    assert "パスワードの変更" in phone.text("/settings")
    r = phone.post("/settings/password", {"current_password": "wrong-one", "new_password": NEW_PW,
                                          "new_password2": NEW_PW})
    assert r.status_code == 422 and "現在のパスワードが違います" in r.get_data(as_text=True)
    r = phone.post("/settings/password", {"current_password": PW, "new_password": NEW_PW,
                                          "new_password2": NEW_PW + "x"})
    assert r.status_code == 422 and "2つのパスワードが一致しません" in r.get_data(as_text=True)
    r = phone.post("/settings/password", {"current_password": PW, "new_password": "password",
                                          "new_password2": "password"})
    assert r.status_code == 422 and 'id="new_password" ' in r.get_data(as_text=True)
    assert _signs_in(app, "union-a", "a1", PW)  # nothing changed so far
    r = phone.post("/settings/password", {"current_password": PW, "new_password": NEW_PW, "new_password2": NEW_PW})
    assert r.status_code == 302 and "saved=password" in r.headers["Location"]
    assert "パスワードを変更しました" in phone.text("/settings?saved=password")  # this phone stays signed in
    assert laptop.get("/settings").status_code in (302, 303)  # the other sign-in has ended
    assert not _signs_in(app, "union-a", "a1", PW) and _signs_in(app, "union-a", "a1", NEW_PW)


def test_a_signed_out_visitor_is_sent_to_sign_in_and_the_sign_in_page_says_what_to_do(app):
    anonymous = app.test_client()
    assert anonymous.get("/settings/password").status_code in (302, 303, 401)
    signin = anonymous.get("/signin").get_data(as_text=True)
    assert 'href="/signin/help"' in signin and "パスワードを忘れたとき" in signin
    help_page = anonymous.get("/signin/help")
    assert help_page.status_code == 200 and "組合の役員" in help_page.get_data(as_text=True)


def test_an_officer_hands_over_a_one_time_link_from_the_members_page(world, app):
    admin = Browser(app, "union-a", "aadmin")
    listing = admin.text("/t/union-a/members")
    assert 'action="/t/union-a/members/a1/account"' in listing and "パスワード再設定リンク" in listing
    r = admin.post("/t/union-a/members/a1/account", {"op": "link"})
    page = r.get_data(as_text=True)
    assert r.status_code == 200 and 'src="data:image/svg+xml' in page
    url = re.search(r'<code id="account-url">([^<]+)</code>', page).group(1)
    path = url[url.index("/account/"):]
    opened = app.test_client().get(path)
    assert opened.status_code == 200 and "パスワードの設定" in opened.get_data(as_text=True)
    # A second link replaces the first.
    admin.post("/t/union-a/members/a1/account", {"op": "link"})
    assert app.test_client().get(path).status_code == 404


@pytest.mark.parametrize("who", [("union-b", "badmin"), ("fed", "staff"), ("union-a", "a2")])
def test_nobody_outside_the_unions_officers_resets_or_unlocks_its_members(world, app, who):
    outsider = Browser(app, *who)
    for op in ("link", "unlock"):
        r = outsider.post("/t/union-a/members/a1/account", {"op": op})
        assert r.status_code in (403, 404), (who, op, r.status_code)
        assert "/account/" not in r.get_data(as_text=True)
    assert _signs_in(app, "union-a", "a1", PW)


def test_the_officer_unlocks_a_locked_out_member_from_the_page(world, app):
    import dataclasses

    app.config["MUSUBI"] = dataclasses.replace(app.config["MUSUBI"], login_max_failures=2, login_lock_seconds=600)
    for _ in range(2):
        assert not _signs_in(app, "union-a", "a1", "wrong-one")
    assert not _signs_in(app, "union-a", "a1", PW)  # locked: even the right password waits
    r = Browser(app, "union-a", "aadmin").post("/t/union-a/members/a1/account", {"op": "unlock"})
    assert r.status_code == 200 and "ロックを解除しました" in r.get_data(as_text=True)
    assert _signs_in(app, "union-a", "a1", PW)
