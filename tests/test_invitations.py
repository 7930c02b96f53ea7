"""Invitations: signed, expiring, use-limited tokens; QR codes; self-registration (active or pending approval);
the per-unit report; revocation; throttling; and F1/F8 for every endpoint."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

A = "/api/v1/tenants/union-a"
NEWCOMER = {"login_id": "E20260401", "display_name": "新入 一郎", "name_kana": "しんにゅう いちろう",
            "password": "Shinnyu-2026-pass!"}


def invite(world, **body):  # type: ignore[no-untyped-def]
    r = world.as_("union-a", "aadmin").post(f"{A}/invitations", json=body)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def register(world, token, **over):  # type: ignore[no-untyped-def]
    return world.anonymous().post(f"/api/v1/register/{token}", json={**NEWCOMER, **over})


def users_named(world, login_id):  # type: ignore[no-untyped-def]
    from federation.extensions import db
    from tenants.models import User

    with world.app.app_context():
        return [(u.tenant.slug, u.unit_id, u.status) for u in
                db.session.execute(select(User).where(User.login_id == login_id)).scalars()]


def test_registration_creates_one_active_member_in_the_unit(world):
    branch2 = world.ids["union-a:branch2"]
    inv = invite(world, unit_id=branch2, label="2026年度 新入社員")
    assert inv["state"] == "active" and inv["register_path"] == f"/register/{inv['token']}"
    info = world.anonymous().get(f"/api/v1/register/{inv['token']}").get_json()
    assert info["union"] == "union-a" and info["unit_name"] == inv["unit_name"] and not info["needs_approval"]
    r = register(world, inv["token"])
    assert r.status_code == 201, r.get_json()
    assert r.get_json() == {"login_id": "E20260401", "display_name": "新入 一郎", "union": "union-a",
                            "unit_id": branch2, "status": "active"}
    assert users_named(world, "E20260401") == [("union-a", branch2, "active")]
    # The new member signs in at once with what they chose.
    ok = world.client.post("/api/v1/auth/login", json={"tenant": "union-a", "login_id": "E20260401",
                                                       "password": NEWCOMER["password"]})
    assert ok.status_code == 200
    world.client.delete_cookie("musubi_session")
    # The same employee number twice is a conflict, and still one user.
    again = register(world, inv["token"])
    assert again.status_code == 409 and "login_id" in again.get_json()["error"]["fields"]
    assert len(users_named(world, "E20260401")) == 1
    assert world.as_("union-a", "aadmin").get(f"{A}/invitations/{inv['id']}").get_json()["uses"] == 1


def test_registration_needing_approval_is_pending_until_the_admin_approves(world):
    inv = invite(world, needs_approval=True)
    r = register(world, inv["token"])
    assert r.status_code == 201 and r.get_json()["status"] == "invited" and r.get_json()["unit_id"] is None
    denied = world.client.post("/api/v1/auth/login", json={"tenant": "union-a", "login_id": "E20260401",
                                                           "password": NEWCOMER["password"]})
    assert denied.status_code in (401, 403)
    admin = world.as_("union-a", "aadmin")
    pending = admin.get(f"{A}/registrations/pending").get_json()["items"]
    assert [p["login_id"] for p in pending] == ["E20260401"]
    assert world.as_("union-a", "a1").post(f"{A}/registrations/{pending[0]['registration_id']}/approve") \
        .status_code == 403
    ok = admin.post(f"{A}/registrations/{pending[0]['registration_id']}/approve")
    assert ok.status_code == 200 and ok.get_json()["status"] == "active"
    assert admin.post(f"{A}/registrations/{pending[0]['registration_id']}/approve").status_code == 409
    assert admin.post(f"{A}/registrations/999/approve").status_code == 404
    assert users_named(world, "E20260401") == [("union-a", None, "active")]
    assert admin.get(f"{A}/registrations/pending").get_json()["items"] == []


def test_over_used_invitation_is_refused_with_410(world):
    inv = invite(world, max_uses=1)
    assert register(world, inv["token"]).status_code == 201
    r = register(world, inv["token"], login_id="E20260402")
    assert r.status_code == 410 and r.get_json()["error"]["code"] == "used_up"
    assert users_named(world, "E20260402") == []
    assert world.anonymous().get(f"/api/v1/register/{inv['token']}").status_code == 410


def test_expired_invitation_is_refused_with_410(world):
    from federation.extensions import db, utcnow
    from federation.space.invitations.models import Invitation

    inv = invite(world, valid_days=1)
    with world.app.app_context():
        db.session.get(Invitation, inv["id"]).expires_at = utcnow() - timedelta(minutes=1)
        db.session.commit()
    r = register(world, inv["token"])
    assert r.status_code == 410 and r.get_json()["error"]["code"] == "expired"
    assert users_named(world, NEWCOMER["login_id"]) == []
    assert world.as_("union-a", "aadmin").get(f"{A}/invitations/{inv['id']}").get_json()["state"] == "expired"


def test_revoked_invitation_is_refused_at_once(world):
    inv = invite(world)
    admin = world.as_("union-a", "aadmin")
    out = admin.delete(f"{A}/invitations/{inv['id']}")
    assert out.status_code == 200 and out.get_json()["state"] == "revoked"
    r = register(world, inv["token"])
    assert r.status_code == 410 and r.get_json()["error"]["code"] == "revoked"
    assert users_named(world, NEWCOMER["login_id"]) == []


def test_forged_and_foreign_tokens_are_404(world):
    inv = invite(world)
    head, _, sig = inv["token"].rpartition(".")
    for token in ("nonsense", f"{head}.{sig[:-2]}xx", inv["token"] + "x"):
        r = register(world, token)
        assert r.status_code == 404 and r.get_json()["error"]["message"] == "not found", token
    # A token signed with another key names the same id but is not ours.
    from itsdangerous import URLSafeSerializer

    forged = URLSafeSerializer("another-secret", salt="musubi.invitation").dumps({"i": inv["id"], "t": 1})
    assert register(world, forged).status_code == 404
    assert users_named(world, NEWCOMER["login_id"]) == []


def test_registration_is_rate_limited_per_address(world):
    world.app.config["MUSUBI_REGISTER_LIMIT"] = 2
    inv = invite(world)
    assert register(world, inv["token"], login_id="E1").status_code == 201
    assert register(world, inv["token"], login_id="E2").status_code == 201
    r = register(world, inv["token"], login_id="E3")
    assert r.status_code == 429 and r.headers["Retry-After"]
    assert users_named(world, "E3") == []


def test_probing_employee_numbers_counts_against_the_limit(world):
    world.app.config["MUSUBI_REGISTER_LIMIT"] = 2
    inv = invite(world)
    assert register(world, inv["token"], login_id="a1").status_code == 409
    assert register(world, inv["token"], login_id="a2").status_code == 409
    assert register(world, inv["token"], login_id="a3").status_code == 429


def test_bad_registration_input_is_4xx_naming_the_field(world):
    inv = invite(world)
    cases = [
        ({"login_id": ""}, "login_id"),
        ({"login_id": "E 1"}, "login_id"),
        ({"display_name": " "}, "display_name"),
        ({"name_kana": "Shinnyu"}, "name_kana"),
        ({"password": "short"}, "password"),
        ({"password": 12345678}, "password"),
        ({"email": "x@example.jp"}, "email"),
    ]
    for over, field in cases:
        r = register(world, inv["token"], **over)
        assert r.status_code == 422 and field in r.get_json()["error"]["fields"], (over, r.get_json())
    missing = world.anonymous().post(f"/api/v1/register/{inv['token']}", json={"login_id": "E9"})
    assert missing.status_code == 422 and "password" in missing.get_json()["error"]["fields"]
    assert world.anonymous().post(f"/api/v1/register/{inv['token']}", data="{",
                                  content_type="application/json").status_code == 400
    assert world.as_("union-a", "aadmin").get(f"{A}/invitations/{inv['id']}").get_json()["uses"] == 0


def test_bad_invitation_input_is_422_naming_the_field(world):
    admin = world.as_("union-a", "aadmin")
    foreign_unit = world.ids["union-b:branch"]
    cases = [
        ({"unit_id": foreign_unit}, "unit_id"),
        ({"unit_id": "x"}, "unit_id"),
        ({"valid_days": 0}, "valid_days"),
        ({"valid_days": 400}, "valid_days"),
        ({"valid_days": 7, "expires_at": "2030-01-01T00:00:00+09:00"}, "valid_days"),
        ({"max_uses": 0}, "max_uses"),
        ({"expires_at": "2020-01-01T00:00:00+09:00"}, "expires_at"),
        ({"expires_at": "2026-12-01T00:00:00"}, "expires_at"),
        ({"expires_at": "tomorrow"}, "expires_at"),
        ({"needs_approval": "maybe"}, "needs_approval"),
        ({"label": "x" * 101}, "label"),
        ({"colour": "red"}, "colour"),
    ]
    for body, field in cases:
        r = admin.post(f"{A}/invitations", json=body)
        assert r.status_code == 422 and field in r.get_json()["error"]["fields"], (body, r.get_json())
    assert admin.get(f"{A}/invitations").get_json()["items"] == []
    assert admin.get(f"{A}/invitations/999").status_code == 404
    assert admin.get(f"{A}/invitations/999/qr.png").status_code == 404


def test_qr_codes_encode_the_registration_url(world):
    inv = invite(world)
    admin = world.as_("union-a", "aadmin")
    png = admin.get(f"{A}/invitations/{inv['id']}/qr.png")
    assert png.status_code == 200 and png.mimetype == "image/png" and png.data.startswith(b"\x89PNG\r\n\x1a\n")
    svg = admin.get(f"{A}/invitations/{inv['id']}/qr.svg")
    assert svg.status_code == 200 and svg.mimetype == "image/svg+xml" and b"<svg" in svg.data
    import segno

    expected = segno.make(f"http://localhost/register/{inv['token']}", error="m", micro=False)
    assert admin.get(f"{A}/invitations/{inv['id']}/qr.png").data == _png(expected)


def _png(code) -> bytes:  # type: ignore[no-untyped-def]
    import io

    out = io.BytesIO()
    code.save(out, kind="png", scale=8, border=4)
    return out.getvalue()


def test_report_counts_registrations_per_unit(world):
    b1, b2 = world.ids["union-a:branch"], world.ids["union-a:branch2"]
    first, second = invite(world, unit_id=b1), invite(world, unit_id=b2, needs_approval=True)
    assert register(world, first["token"], login_id="E1").status_code == 201
    assert register(world, first["token"], login_id="E2").status_code == 201
    assert register(world, second["token"], login_id="E3").status_code == 201
    report = world.as_("union-a", "aadmin").get(f"{A}/invitations/report").get_json()
    by_unit = {u["unit_id"]: u for u in report["units"]}
    assert report["total"] == 3
    assert (by_unit[b1]["registered"], by_unit[b1]["active"], by_unit[b1]["pending"]) == (2, 2, 0)
    assert (by_unit[b2]["registered"], by_unit[b2]["active"], by_unit[b2]["pending"]) == (1, 0, 1)
    assert by_unit[None]["registered"] == 0
    # Nothing of union-a shows in the neighbour's report.
    assert world.as_("union-b", "badmin").get("/api/v1/tenants/union-b/invitations/report").get_json()["total"] == 0
    from federation.extensions import db
    from tenants.models import User

    with world.app.app_context():
        assert db.session.execute(select(func.count()).select_from(User)
                                  .where(User.login_id.in_(["E1", "E2", "E3"]))).scalar_one() == 3


OUTSIDERS = [("fed", "fadmin"), ("fed", "staff"), ("platform", "aud"), ("platform", "ops"), ("union-b", "badmin"),
             ("union-b", "b1")]


def test_federation_auditor_platform_admin_and_neighbour_get_404_for_every_invitation_endpoint(world):
    inv = invite(world, needs_approval=True)
    assert register(world, inv["token"]).status_code == 201
    reg_id = world.as_("union-a", "aadmin").get(f"{A}/registrations/pending").get_json()["items"][0][
        "registration_id"]
    endpoints = [
        ("get", f"{A}/invitations", None), ("post", f"{A}/invitations", {}),
        ("get", f"{A}/invitations/{inv['id']}", None), ("get", f"{A}/invitations/{inv['id']}/qr.png", None),
        ("get", f"{A}/invitations/{inv['id']}/qr.svg", None), ("get", f"{A}/invitations/report", None),
        ("get", f"{A}/registrations/pending", None), ("post", f"{A}/registrations/{reg_id}/approve", None),
        ("delete", f"{A}/invitations/{inv['id']}", None),
    ]
    for tenant, login in OUTSIDERS:
        who = world.as_(tenant, login)
        for method, path, body in endpoints:
            r = getattr(who, method)(path, json=body) if body is not None else getattr(who, method)(path)
            assert r.status_code == 404, (tenant, login, method, path, r.status_code)
            assert r.get_json()["error"]["message"] == "not found"
    # A plain member or an editor of the union itself knows the union: 403 on every officer-only endpoint.
    for login in ("a1", "aeditor"):
        who = world.as_("union-a", login)
        for method, path, body in endpoints:
            r = getattr(who, method)(path, json=body) if body is not None else getattr(who, method)(path)
            assert r.status_code == 403, (login, method, path, r.status_code)
    assert world.as_("union-a", "aadmin").get(f"{A}/invitations/{inv['id']}").get_json()["state"] == "active"
    assert users_named(world, NEWCOMER["login_id"]) == [("union-a", None, "invited")]
    assert world.anonymous().get(f"{A}/invitations").status_code == 401


def _form_token(world, token):  # type: ignore[no-untyped-def]
    import re

    page = world.client.get(f"/register/{token}")
    assert page.status_code == 200
    return page, re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)


def test_registration_page_registers_in_japanese_with_a_double_submit_token(world):
    inv = invite(world, unit_id=world.ids["union-a:branch"])
    page, csrf = _form_token(world, inv["token"])
    html = page.get_data(as_text=True)
    assert "組合員登録" in html and "A通信労組" in html and "社員番号" in html
    assert page.headers["Referrer-Policy"] == "no-referrer"
    form = {**NEWCOMER, "csrf_token": csrf}
    # Without the cookie the page set, the form is refused: a cross-site form cannot know the token.
    other = world.app.test_client()
    assert other.post(f"/register/{inv['token']}", data=form).status_code == 403
    bad = world.client.post(f"/register/{inv['token']}", data={**form, "name_kana": "Shinnyu"})
    assert bad.status_code == 422 and "よみ" in bad.get_data(as_text=True)
    done = world.client.post(f"/register/{inv['token']}", data=form)
    assert done.status_code == 201 and "登録しました" in done.get_data(as_text=True)
    assert users_named(world, NEWCOMER["login_id"]) == [("union-a", world.ids["union-a:branch"], "active")]


def test_registration_page_refuses_forged_and_closed_invitations(world):
    inv = invite(world, max_uses=1)
    assert world.client.get("/register/forged-token").status_code == 404
    assert register(world, inv["token"]).status_code == 201
    closed = world.client.get(f"/register/{inv['token']}")
    assert closed.status_code == 410 and "上限" in closed.get_data(as_text=True)
