"""Settings a multi-host deployment needs: the public address printed in QR codes, trusted proxies for the client's
address, and SECRET_KEY rotation that keeps printed invitations working while the old key stays listed."""
from __future__ import annotations

import dataclasses
import io

import pytest
import segno
from conftest import PW
from sqlalchemy import select

from federation.config import ConfigError, load_settings

A = "/api/v1/tenants/union-a"
NEWCOMER = {"display_name": "新入 二郎", "name_kana": "しんにゅう じろう", "password": "Shinnyu-2026-pass!"}


def _invite(world) -> dict:  # type: ignore[no-untyped-def]
    r = world.as_("union-a", "aadmin").post(f"{A}/invitations", json={})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def _png(url: str) -> bytes:
    out = io.BytesIO()
    segno.make(url, error="m", micro=False).save(out, kind="png", scale=8, border=4)
    return out.getvalue()


def _settings(app, **changes):  # type: ignore[no-untyped-def]
    app.config["MUSUBI"] = dataclasses.replace(app.config["MUSUBI"], **changes)


def test_qr_code_carries_the_public_url_whatever_host_the_request_named(world, app):
    inv = _invite(world)
    admin = world.as_("union-a", "aadmin")
    # Without a public URL the request's own address is all there is.
    assert admin.get(f"{A}/invitations/{inv['id']}/qr.png").data == _png(f"http://localhost/register/{inv['token']}")
    _settings(app, public_url="https://musubi.example.org")
    forged_host = admin.client.get(f"{A}/invitations/{inv['id']}/qr.png",
                                   headers={**admin._headers(), "Host": "attacker.example"})
    assert forged_host.status_code == 200
    assert forged_host.data == _png(f"https://musubi.example.org/register/{inv['token']}")


def test_a_rotated_secret_key_keeps_printed_invitations_only_while_the_old_key_is_listed(world, app):
    printed, second = _invite(world), _invite(world)
    old = app.config["SECRET_KEY"]
    app.config["SECRET_KEY"] = "rotated-secret-key-fedcba9876543210"
    app.config["SECRET_KEY_FALLBACKS"] = [old]
    anon = world.anonymous()
    r = anon.post(f"/api/v1/register/{printed['token']}", json={**NEWCOMER, "login_id": "E-ROT-1"})
    assert r.status_code == 201, r.get_json()
    # New invitations are signed with the new key: the token differs, and it works.
    fresh = _invite(world)
    assert fresh["token"] != printed["token"]
    assert anon.post(f"/api/v1/register/{fresh['token']}", json={**NEWCOMER, "login_id": "E-ROT-2"}).status_code == 201
    # Once the old key is dropped from the list, what was signed with it is no invitation at all.
    app.config["SECRET_KEY_FALLBACKS"] = []
    r = anon.post(f"/api/v1/register/{second['token']}", json={**NEWCOMER, "login_id": "E-ROT-3"})
    assert r.status_code == 404
    assert anon.post(f"/api/v1/register/{fresh['token']}",
                     json={**NEWCOMER, "login_id": "E-ROT-4"}).status_code == 201


def _failure_keys(app) -> set[str]:  # type: ignore[no-untyped-def]
    from federation.auth.models import LoginFailure
    from federation.extensions import db

    with app.app_context():
        return set(db.session.execute(select(LoginFailure.key)).scalars())


WRONG = {"tenant": "union-a", "login_id": "a1", "password": "wrong-password-1"}
XFF = {"X-Forwarded-For": "198.51.100.7", "X-Forwarded-Proto": "https"}


def test_forwarded_for_is_ignored_unless_a_proxy_is_trusted(world, app):
    r = app.test_client().post("/api/v1/auth/login", json=WRONG, headers=XFF)
    assert r.status_code == 401
    # A client cannot pick the address its failures are counted under when no proxy is configured.
    assert "addr:198.51.100.7" not in _failure_keys(app) and "addr:127.0.0.1" in _failure_keys(app)


def test_behind_one_trusted_proxy_failures_count_per_client_address(world, app, monkeypatch):
    from federation import create_app

    monkeypatch.setenv("MUSUBI_PROXY_HOPS", "1")
    behind = create_app({"TESTING": True})
    try:
        _behind_a_proxy(world, app, behind)
    finally:
        # A second app has its own engine: close its pooled connections here, not in a later test's garbage.
        from federation.extensions import db

        with behind.app_context():
            db.session.remove()
            db.engine.dispose()


def _behind_a_proxy(world, app, behind) -> None:  # type: ignore[no-untyped-def]
    client = behind.test_client()
    assert client.post("/api/v1/auth/login", json=WRONG, headers=XFF).status_code == 401
    assert "addr:198.51.100.7" in _failure_keys(app)
    # The scheme and host the member used reach the app too: links made from the request follow them.
    inv = _invite(world)
    signed_in = client.post("/api/v1/auth/login", json={"tenant": "union-a", "login_id": "aadmin", "password": PW},
                            headers=XFF)
    assert signed_in.status_code == 200, signed_in.get_json()
    token = signed_in.get_json()["token"]
    png = client.get(f"{A}/invitations/{inv['id']}/qr.png",
                     headers={**XFF, "X-Forwarded-Host": "musubi.example.org", "Authorization": f"Bearer {token}"})
    assert png.status_code == 200
    assert png.data == _png(f"https://musubi.example.org/register/{inv['token']}")


@pytest.mark.parametrize(("name", "value", "message"), [
    ("MUSUBI_PUBLIC_URL", "ftp://musubi.example.org", "MUSUBI_PUBLIC_URL"),
    ("MUSUBI_PUBLIC_URL", "https://musubi.example.org/?next=x", "MUSUBI_PUBLIC_URL"),
    ("MUSUBI_PROXY_HOPS", "9", "MUSUBI_PROXY_HOPS"),
    ("MUSUBI_PROXY_HOPS", "one", "MUSUBI_PROXY_HOPS"),
    ("MUSUBI_SECRET_KEY_FALLBACKS", "short", "MUSUBI_SECRET_KEY_FALLBACKS"),
])
def test_unusable_deployment_settings_are_refused_by_name(monkeypatch, tmp_path, name, value, message):
    monkeypatch.setenv("MUSUBI_INSTANCE", str(tmp_path))
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        load_settings()


def test_deployment_settings_parse(monkeypatch, tmp_path):
    monkeypatch.setenv("MUSUBI_INSTANCE", str(tmp_path))
    monkeypatch.setenv("MUSUBI_PUBLIC_URL", "https://musubi.example.org/")
    monkeypatch.setenv("MUSUBI_PROXY_HOPS", "2")
    monkeypatch.setenv("MUSUBI_SECRET_KEY_FALLBACKS", "old-key-0123456789abcdef, older-key-0123456789abcdef")
    s = load_settings()
    assert (s.public_url, s.proxy_hops) == ("https://musubi.example.org", 2)
    assert s.secret_key_fallbacks == ("old-key-0123456789abcdef", "older-key-0123456789abcdef")
