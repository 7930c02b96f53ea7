"""Sign-in, tokens, sessions, rate limiting, and F7: revocation and suspension take effect on the next request."""
from __future__ import annotations

from conftest import PW, login


def test_login_returns_token_user_and_sets_an_httponly_cookie(world):
    r = world.client.post("/api/v1/auth/login", json={"tenant": "union-a", "login_id": "a1", "password": PW})
    assert r.status_code == 200
    body = r.get_json()
    assert body["user"]["login_id"] == "a1" and body["user"]["tenant"] == "union-a"
    assert len(body["token"]) >= 40
    cookie = r.headers["Set-Cookie"]
    assert "musubi_session=" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "password" not in body["user"]


def test_wrong_tenant_user_or_password_all_answer_the_same_401(world):
    answers = []
    for tenant, login_id, pw in (("nope", "a1", PW), ("union-a", "nobody", PW), ("union-a", "a1", "wrong-pass-1"),
                                 ("union-b", "a1", PW)):
        r = world.client.post("/api/v1/auth/login", json={"tenant": tenant, "login_id": login_id, "password": pw})
        answers.append((r.status_code, r.get_json()))
    assert {status for status, _ in answers} == {401}
    assert len({str(body) for _, body in answers}) == 1


def test_me_shows_user_tenant_and_roles_including_derived_member(world):
    me = world.as_("union-a", "aadmin").get("/api/v1/me").get_json()
    assert me["user"]["login_id"] == "aadmin"
    assert me["tenant"] == {"slug": "union-a", "name": "A通信労組", "kind": "union"}
    roles = {(r["role"], r["derived"]) for r in me["roles"]}
    assert roles == {("union_admin", False), ("member", True)}


def test_anonymous_gets_401_on_me_and_on_tenant_data(world):
    anon = world.anonymous()
    assert anon.get("/api/v1/me").status_code == 401
    r = anon.get("/api/v1/tenants/union-a/members")
    assert r.status_code == 401
    assert r.get_json()["error"]["code"] == "unauthorized"


def test_logout_kills_the_token_at_once(world):
    api = login(world.client, "union-a", "a1")
    assert api.get("/api/v1/me").status_code == 200
    assert api.post("/api/v1/auth/logout").status_code == 204
    assert api.get("/api/v1/me").status_code == 401


def test_suspension_ends_every_token_of_the_user_on_the_next_request(world):
    member = login(world.client, "union-a", "a2")
    second_device = login(world.client, "union-a", "a2")
    assert member.get("/api/v1/me").status_code == 200
    admin = world.as_("union-a", "aadmin")
    r = admin.patch("/api/v1/tenants/union-a/members/a2", json={"status": "suspended"})
    assert r.status_code == 200 and r.get_json()["status"] == "suspended"
    assert member.get("/api/v1/me").status_code == 401
    assert second_device.get("/api/v1/me").status_code == 401
    r = world.client.post("/api/v1/auth/login", json={"tenant": "union-a", "login_id": "a2", "password": PW})
    assert r.status_code == 401


def test_revoked_role_is_denied_on_the_next_request_with_a_token_issued_before(world):
    editor = login(world.client, "union-a", "aeditor")
    assert editor.get("/api/v1/tenants/union-a/members").status_code == 200
    admin = world.as_("union-a", "aadmin")
    r = admin.delete("/api/v1/tenants/union-a/roles", json={"login_id": "aeditor", "role": "union_editor"})
    assert r.status_code == 204
    r = editor.get("/api/v1/tenants/union-a/members")
    assert r.status_code == 403  # still a member of union-a: knows the list exists, may not read it
    r = admin.post("/api/v1/tenants/union-a/roles", json={"login_id": "aeditor", "role": "union_editor"})
    assert r.status_code == 201
    assert editor.get("/api/v1/tenants/union-a/members").status_code == 200


def test_revocation_made_by_another_process_is_seen_on_the_next_request(world, app):
    """A second app (as another gunicorn worker would be) revokes; this process must not answer from its cache."""
    from sqlalchemy import select

    from federation import create_app
    from federation.extensions import db
    from tenants.models import Tenant
    from tenants.service import revoke_role, user_in

    fed_staff = login(world.client, "fed", "staff")
    assert fed_staff.get("/api/v1/tenants/fed/members").status_code == 200  # warms this process's cache
    other = create_app({"TESTING": True})
    with other.app_context():
        fed = db.session.execute(select(Tenant).where(Tenant.slug == "fed")).scalar_one()
        revoke_role(fed, user_in(fed, "staff"), "fed_editor", None, actor="operator:test")
        # Close the second app's pooled connections now; left to the garbage collector, PostgreSQL's would raise a
        # ResourceWarning in whichever later test happens to collect them.
        db.session.remove()
        db.engine.dispose()
    assert fed_staff.get("/api/v1/tenants/fed/members").status_code == 403


def test_repeated_failed_sign_ins_are_throttled_even_with_the_right_password_afterwards(world, app):
    app.config["MUSUBI"] = app.config["MUSUBI"].__class__(**{**app.config["MUSUBI"].__dict__,
                                                             "login_max_failures": 3})
    for _ in range(3):
        r = world.client.post("/api/v1/auth/login", json={"tenant": "union-b", "login_id": "b1",
                                                          "password": "wrong-pass-x"})
        assert r.status_code == 401
    r = world.client.post("/api/v1/auth/login", json={"tenant": "union-b", "login_id": "b1", "password": PW})
    assert r.status_code == 429
    assert r.headers["Retry-After"].isdigit()
    assert r.get_json()["error"]["code"] == "rate_limited"


def test_cookie_writes_need_the_csrf_token(world):
    c = world.app.test_client()
    r = c.post("/api/v1/auth/login", json={"tenant": "union-a", "login_id": "aadmin", "password": PW})
    csrf = r.get_json()["csrf_token"]
    body = {"login_id": "newbie", "display_name": "新人 一", "name_kana": "しんじん はじめ",
            "password": "Newbie-pass-1"}
    assert c.post("/api/v1/tenants/union-a/members", json=body).status_code == 403
    r = c.post("/api/v1/tenants/union-a/members", json=body, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 201
    assert c.get("/api/v1/me").status_code == 200  # reads need no token


def test_a_cached_inbox_page_costs_the_sign_in_query_alone(world, app):
    """The sign-in query brings everything the inbox needs: a page served from the cache sends one statement to the
    database, and g.user is not loaded for it. /me, which shows the user's row, reads it."""
    from sqlalchemy import event

    from federation.extensions import db

    member = world.as_("union-a", "a1")
    assert member.get("/api/v1/me/inbox").headers["X-Inbox-Cache"] in ("hit", "miss")
    with app.app_context():
        engine = db.engine
    statements: list[str] = []

    def seen(conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        r = member.get("/api/v1/me/inbox")
        assert r.status_code == 200 and r.headers["X-Inbox-Cache"] == "hit"
        assert len(statements) == 1 and "auth_sessions" in statements[0], statements
        statements.clear()
        me = member.get("/api/v1/me").get_json()
        assert me["user"]["login_id"] == "a1" and me["tenant"]["slug"] == "union-a"
        assert len(statements) == 2 and "FROM users" in statements[1], statements
    finally:
        event.remove(engine, "before_cursor_execute", seen)


def test_g_user_is_the_row_the_request_already_holds(world, app):
    """A view that loaded and changed the caller's own row before asking for g.user gets that same object back,
    with its change, not a fresh copy laid over it."""
    from flask import g

    from federation.auth.service import load_caller
    from federation.extensions import db
    from tenants.models import User

    token = world.as_("union-a", "a1").token
    with app.test_request_context("/api/v1/me", headers={"Authorization": f"Bearer {token}"}):
        load_caller()
        mine = db.session.get(User, g.caller.id)
        mine.display_name = "変更中 一郎"
        assert g.user is mine and g.user.display_name == "変更中 一郎"
        db.session.rollback()
    with app.test_request_context("/api/v1/me", headers={"Authorization": f"Bearer {token}"}):
        load_caller()
        assert g.user.login_id == "a1" and g.user.display_name != "変更中 一郎"
        assert g.auth_session.id == g.caller.session_id and g.auth_session.revoked_at is None
    with app.test_request_context("/api/v1/me"):
        load_caller()
        assert g.user is None and g.get("user") is None and g.auth_session is None
