"""Accounts without e-mail, and sign-in that one attacker cannot turn against many members.

- Login ids have one form (NFKC, kept in the case written) and one key (case folded) that is unique and matched;
  invisible and bidi characters are refused, wherever an id enters.
- An account is locked after repeated failures, with a wait that doubles; a busy address (carrier NAT) cannot lock
  out the members behind it; a union officer unlocks, and only their own union's members.
- A member changes their password; an officer hands out a one-time, expiring link to reset it or to activate a
  member imported as invited. Every change of a password ends the person's other sessions.
- The commonest passwords are refused; behind https cookies are Secure and HSTS is sent.
Every case has the neighbour union and the federation in the world (conftest.build_world).
"""
from __future__ import annotations

import dataclasses
import re

import pytest
from conftest import PW, World, login
from web_support import CSRF_FIELD

NEW_PW = "Kumiai-2026-natsu!"


def _create(world: World, login_id: str, password: str = PW):  # type: ignore[no-untyped-def]
    return world.as_("union-a", "aadmin").post("/api/v1/tenants/union-a/members", json={
        "login_id": login_id, "display_name": "新人 一郎", "name_kana": "しんじん いちろう", "password": password})


def _sign_in(world: World, tenant: str, login_id: str, password: str, address: str = "203.0.113.7"):  # type: ignore[no-untyped-def]
    # A browser of its own each time: a cookie from an earlier sign-in would make this a cookie-authenticated write.
    return world.app.test_client().post("/api/v1/auth/login", json={"tenant": tenant, "login_id": login_id,
                                                          "password": password},
                             environ_base={"REMOTE_ADDR": address})


def _settings(app, **changes):  # type: ignore[no-untyped-def]
    app.config["MUSUBI"] = dataclasses.replace(app.config["MUSUBI"], **changes)


# --- one form of a login id ------------------------------------------------------------------------------------------

def test_fullwidth_and_case_are_one_account_and_sign_in_either_way(world: World) -> None:
    r = _create(world, "ＥＭＰ００１")
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["login_id"] == "EMP001"  # as written, once NFKC has made it halfwidth
    again = _create(world, "emp001")
    assert again.status_code == 409 and "login_id" in again.get_json()["error"]["fields"]
    for typed in ("emp001", "EMP001", "ＥＭＰ００１"):
        assert _sign_in(world, "union-a", typed, PW).status_code == 200, typed
    # The neighbour union may have its own emp001: ids are unique within a tenant only.
    r = world.as_("union-b", "badmin").post("/api/v1/tenants/union-b/members", json={
        "login_id": "Emp001", "display_name": "別人", "name_kana": "べつじん", "password": PW})
    assert r.status_code == 201 and r.get_json()["login_id"] == "Emp001"


@pytest.mark.parametrize("look_alike", ["emp\u200b002", "\u202eemp002", "emp002\u2066", "e\ufe0fmp002",
                                        "emp\u00a0002", "emp\u3000002", "\u2060emp002"])
def test_invisible_and_bidi_characters_are_refused_naming_login_id(world: World, look_alike: str) -> None:
    r = _create(world, look_alike)
    assert r.status_code == 422, r.get_json()
    assert "login_id" in r.get_json()["error"]["fields"]


def test_csv_import_normalises_and_names_the_row_with_an_invisible_character(world: World, app) -> None:  # type: ignore[no-untyped-def]
    from federation.extensions import db
    from tenants import members_csv
    from tenants.models import Tenant, User

    with app.app_context():
        union = db.session.query(Tenant).filter_by(slug="union-a").one()
        bad = members_csv.check(union, "社員番号,氏名,よみ\nＥ３０００１,山田 花子,やまだ はなこ\n"
                                       "e30002\u200d,青木 翔,あおき しょう\n".encode())
        assert not bad.ok
        assert any("line 3" in p and "invisible" in p for p in bad.problems), bad.problems
        good = members_csv.check(union, "社員番号,氏名,よみ\nＥ３０００１,山田 花子,やまだ はなこ\n".encode())
        assert good.ok, good.problems
        members_csv.commit(union, good, actor="operator:test")
        assert db.session.query(User).filter_by(tenant_id=union.id, login_id="E30001").one().status == "invited"
        dup = members_csv.check(union, "社員番号,氏名,よみ\ne30001,別人,べつじん\n".encode())
        assert not dup.ok  # the same person once normalised and case folded


def test_migration_keeps_login_ids_as_written_and_keys_them(world: World, app) -> None:  # type: ignore[no-untyped-def]
    import sqlalchemy as sa
    from alembic import command

    from federation.database import alembic_config, upgrade
    from federation.extensions import db

    with app.app_context():
        db.session.remove()
        with db.engine.begin() as connection:
            command.downgrade(alembic_config(connection), "0006_audit_anchor")  # before login keys
            tenant_id = connection.execute(sa.text("SELECT id FROM tenants WHERE slug = 'union-a'")).scalar_one()
            connection.execute(sa.text(
                "INSERT INTO users (tenant_id, login_id, display_name, name_kana, kana_key, status, created_at) "
                "VALUES (:t, 'ＥＭＰ０９９', '旧 会員', 'きゅう かいいん', 'きゅう かいいん', 'invited', "
                "'2026-01-01')"),
                {"t": tenant_id})
        db.session.remove()
        upgrade()
        with db.engine.connect() as connection:
            rows = dict(connection.execute(sa.text(
                "SELECT login_id, login_key FROM users WHERE tenant_id = :t AND login_key IN ('emp099', 'a1')"),
                {"t": tenant_id}).all())
    assert rows == {"EMP099": "emp099", "a1": "a1"}
    # And the key is what the new constraint holds unique: EMP099's other case is refused.
    r = _create(world, "emp099")
    assert r.status_code == 409, r.get_json()


# --- lockout ---------------------------------------------------------------------------------------------------------

def test_an_account_locks_after_repeated_failures_and_its_officer_unlocks_it(world: World, app) -> None:  # type: ignore[no-untyped-def]
    _settings(app, login_max_failures=3, login_lock_seconds=600)
    for _ in range(3):
        assert _sign_in(world, "union-a", "a1", "wrong-pass-xyz").status_code == 401
    locked = _sign_in(world, "union-a", "a1", PW)
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 500  # even the right password waits
    # Another union's admin and the federation cannot unlock union-a's member (and learn nothing).
    assert world.as_("union-b", "badmin").post("/api/v1/tenants/union-a/members/a1/unlock").status_code in (403, 404)
    assert world.as_("fed", "staff").post("/api/v1/tenants/union-a/members/a1/unlock").status_code in (403, 404)
    r = world.as_("union-a", "aadmin").post("/api/v1/tenants/union-a/members/a1/unlock")
    assert r.status_code == 200 and r.get_json() == {"login_id": "a1", "failures_forgotten": 3}
    assert _sign_in(world, "union-a", "a1", PW).status_code == 200
    log = world.as_("platform", "aud").get("/api/v1/audit/log?kind=user.unlock").get_json()["items"]
    assert [e["tenant"] for e in log] == ["union-a"]


def test_the_wait_doubles_with_each_further_failure(world: World, app) -> None:  # type: ignore[no-untyped-def]
    from datetime import timedelta

    from federation.auth.models import LoginFailure
    from federation.extensions import db, utcnow

    _settings(app, login_max_failures=2, login_lock_seconds=100)
    with app.app_context():
        # Five failures in a row, the last just now: three beyond the limit, so 100 * 2**3 seconds.
        db.session.add_all([LoginFailure(key="acct:union-a/a2", at=utcnow() - timedelta(seconds=5 - i))
                            for i in range(5)])
        db.session.commit()
    r = _sign_in(world, "union-a", "a2", PW)
    assert r.status_code == 429 and 700 < int(r.headers["Retry-After"]) <= 801


def test_a_busy_address_does_not_lock_out_the_members_behind_it(world: World, app) -> None:  # type: ignore[no-untyped-def]
    _settings(app, login_max_failures=50, login_address_max_failures=4)
    nat = "198.51.100.20"
    for login_id in ("a1", "a2", "a3", "aeditor"):
        assert _sign_in(world, "union-a", login_id, "sprayed-pass-1", nat).status_code == 401
    # A member nobody has failed at signs in from the same address with the right password.
    assert _sign_in(world, "union-b", "b1", PW, nat).status_code == 200
    # But a second guess at an account already tried from that address is refused, right password or not.
    assert _sign_in(world, "union-a", "a2", "another-guess-2", nat).status_code == 429
    # From another address that member is not locked.
    assert _sign_in(world, "union-a", "a2", PW, "192.0.2.55").status_code == 200


# --- passwords ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("weak", ["password1", "qwerty123", "12345678", "aaaaaaaa", "emp00777"])
def test_the_commonest_passwords_and_the_login_id_are_refused(world: World, weak: str) -> None:
    r = _create(world, "emp00777", password=weak)
    assert r.status_code == 422 and "password" in r.get_json()["error"]["fields"], weak


def test_a_member_changes_their_password_and_their_other_sessions_end(world: World) -> None:
    phone = login(world.client, "union-a", "a1")
    pc = login(world.app.test_client(), "union-a", "a1")
    wrong = phone.post("/api/v1/me/password", json={"current_password": "not-it-at-all", "new_password": NEW_PW})
    assert wrong.status_code == 422 and "current_password" in wrong.get_json()["error"]["fields"]
    weak = phone.post("/api/v1/me/password", json={"current_password": PW, "new_password": "password1"})
    assert weak.status_code == 422 and "new_password" in weak.get_json()["error"]["fields"]
    assert phone.post("/api/v1/me/password", json={"current_password": PW, "new_password": NEW_PW}).status_code == 204
    assert phone.get("/api/v1/me").status_code == 200  # this sign-in stays
    assert pc.get("/api/v1/me").status_code == 401  # every other one ended
    assert _sign_in(world, "union-a", "a1", PW).status_code == 401
    assert _sign_in(world, "union-a", "a1", NEW_PW).status_code == 200


def _link(world: World, login_id: str) -> dict:
    r = world.as_("union-a", "aadmin").post(f"/api/v1/tenants/union-a/members/{login_id}/reset")
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def _set_on_page(world: World, url: str, password: str, again: str | None = None):  # type: ignore[no-untyped-def]
    path = url[url.index("/account/"):]
    browser = world.app.test_client()
    page = browser.get(path)
    if page.status_code != 200:
        return page
    token = CSRF_FIELD.search(page.get_data(as_text=True)).group(1)
    return browser.post(path, data={"csrf_token": token, "password": password, "password2": again or password})


def test_an_officer_resets_a_password_with_a_one_time_link(world: World) -> None:
    other = login(world.app.test_client(), "union-a", "a2")
    link = _link(world, "a2")
    assert link["purpose"] == "reset" and link["reset_url"].startswith("http")
    assert link["qr_svg"].startswith("data:image/svg+xml")
    assert re.search(r"/account/[\w-]{40,}$", link["reset_url"])
    assert _set_on_page(world, link["reset_url"], NEW_PW, "differs-from-it-9").status_code == 422
    done = _set_on_page(world, link["reset_url"], NEW_PW)
    assert done.status_code == 200 and "パスワードを設定しました" in done.get_data(as_text=True)
    assert other.get("/api/v1/me").status_code == 401  # the old sign-ins died with the old password
    assert _sign_in(world, "union-a", "a2", NEW_PW).status_code == 200
    assert _set_on_page(world, link["reset_url"], "Yet-another-2026!").status_code == 404  # used once


def test_a_newer_link_replaces_the_older_one(world: World) -> None:
    first, second = _link(world, "a3"), _link(world, "a3")
    assert _set_on_page(world, first["reset_url"], NEW_PW).status_code == 404
    assert _set_on_page(world, second["reset_url"], NEW_PW).status_code == 200


def test_only_the_members_own_union_issues_links(world: World) -> None:
    for tenant, who in (("union-b", "badmin"), ("fed", "staff"), ("platform", "ops"), ("union-a", "a1")):
        r = world.as_(tenant, who).post("/api/v1/tenants/union-a/members/a2/reset")
        assert r.status_code in (403, 404), (who, r.status_code)
        assert "reset_url" not in r.get_data(as_text=True)
    assert world.as_("union-b", "badmin").post("/api/v1/tenants/union-b/members/a2/reset").status_code == 404


def test_a_member_imported_as_invited_activates_with_a_link(world: World, app) -> None:  # type: ignore[no-untyped-def]
    from federation.extensions import db
    from tenants import members_csv
    from tenants.models import Tenant

    with app.app_context():
        union = db.session.query(Tenant).filter_by(slug="union-a").one()
        report = members_csv.check(union, "社員番号,氏名,よみ\n40001,新井 結衣,あらい ゆい\n".encode())
        members_csv.commit(union, report, actor="operator:test")
    assert _sign_in(world, "union-a", "40001", NEW_PW).status_code == 401
    link = _link(world, "40001")
    assert link["purpose"] == "activate"
    assert _set_on_page(world, link["reset_url"], NEW_PW).status_code == 200
    assert _sign_in(world, "union-a", "40001", NEW_PW).status_code == 200
    member = world.as_("union-a", "aadmin").get("/api/v1/tenants/union-a/members/40001").get_json()
    assert member["status"] == "active"


def test_a_made_up_link_is_a_plain_404(world: World) -> None:
    r = world.app.test_client().get("/account/" + "x" * 43)
    assert r.status_code == 404 and "このリンクは使えません" in r.get_data(as_text=True)


# --- behind https ---------------------------------------------------------------------------------------------

def test_behind_https_cookies_are_secure_and_hsts_is_sent(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from federation.config import load_settings

    monkeypatch.setenv("MUSUBI_PUBLIC_URL", "https://musubi.example.jp")
    monkeypatch.delenv("MUSUBI_SECURE_COOKIES", raising=False)
    monkeypatch.delenv("MUSUBI_HSTS_SECONDS", raising=False)
    settings = load_settings()
    assert settings.secure_cookies is True and settings.hsts_seconds >= 180 * 86400
    monkeypatch.setenv("MUSUBI_PUBLIC_URL", "http://127.0.0.1:5000")
    plain = load_settings()
    assert plain.secure_cookies is False and plain.hsts_seconds == 0


def test_hsts_goes_only_on_https_responses(app, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from federation import create_app

    monkeypatch.setenv("MUSUBI_HSTS_SECONDS", "1000")  # the app fixture's database and instance stay as they are
    client = create_app({"TESTING": True}).test_client()
    assert client.get("/healthz", base_url="https://musubi.example.jp").headers["Strict-Transport-Security"] \
        == "max-age=1000"
    assert "Strict-Transport-Security" not in client.get("/healthz").headers  # plain http: the embedded demo
