"""`python cli.py serve` says where it really listens (the port it was given, not always 5000), and while
MUSUBI_PUBLIC_URL is unset both `serve` and the invitation pages warn that QR codes carry the request's address
(127.0.0.1 on a trial), which members' phones cannot open."""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

from browser_world import free_port
from conftest import World
from web_support import Browser, visible_text

ROOT = Path(__file__).resolve().parent.parent
WARNING_JA = "サービスの公開アドレス"


def test_the_banner_names_the_port_and_warns_without_a_public_address() -> None:
    from federation.cli import serve_banner

    lines = serve_banner("127.0.0.1", 8123, None)
    assert lines[0] == "musubi on http://127.0.0.1:8123/"
    assert len(lines) == 2 and lines[1].startswith("warning: MUSUBI_PUBLIC_URL is not set")
    assert serve_banner("127.0.0.1", 8123, "https://musubi.example.jp") == ["musubi on http://127.0.0.1:8123/"]
    every = serve_banner("0.0.0.0", 8080, "https://musubi.example.jp")
    assert every == ["musubi on http://127.0.0.1:8080/ (listening on every interface)"]
    assert serve_banner("::1", 8080, "https://x.example")[0] == "musubi on http://[::1]:8080/"


def test_serve_prints_the_port_it_was_given(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "MUSUBI_PUBLIC_URL")}
    env.update(DATABASE_URL=f"sqlite:///{tmp_path / 'serve.db'}", SECRET_KEY="serve-secret-key-0123456789abcdef",
               MUSUBI_INSTANCE=str(tmp_path), PYTHONUNBUFFERED="1")
    subprocess.run([sys.executable, "cli.py", "init-db"], cwd=ROOT, env=env, check=True, capture_output=True,
                   timeout=120)
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "cli.py", "serve", "--port", str(port)], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        end = time.time() + 60
        while time.time() < end and "musubi on" not in log.read_text():
            assert proc.poll() is None, log.read_text()[-2000:]
            time.sleep(0.1)
        time.sleep(0.3)  # the warning line follows the address
        printed = log.read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert f"musubi on http://127.0.0.1:{port}/" in printed, printed
    assert port == 5000 or ":5000/" not in printed  # Flask's default port, not a given port that starts 5000
    assert "warning: MUSUBI_PUBLIC_URL is not set" in printed


def _flyer(world: World, app) -> tuple[Browser, int]:  # type: ignore[no-untyped-def]
    admin = Browser(app, "union-a", "aadmin")
    r = admin.post("/t/union-a/invitations", {"unit_id": "", "label": "", "expires_on": "", "max_uses": ""})
    assert r.status_code == 302, r.get_data(as_text=True)[:2000]
    return admin, int(r.headers["Location"].split("/invitations/")[1].split("?")[0])


def test_the_invitation_pages_warn_while_the_public_address_is_unset(world: World, app) -> None:  # type: ignore[no-untyped-def]
    assert app.config["MUSUBI"].public_url is None
    admin, inv_id = _flyer(world, app)
    for path in (f"/t/union-a/invitations/{inv_id}", "/t/union-a/invitations"):
        html = admin.text(path)
        assert WARNING_JA in visible_text(html), path
        assert "<code>MUSUBI_PUBLIC_URL</code>" in html and "<code>http://localhost</code>" in html
    english = Browser(app, "union-a", "aadmin")
    english.client.set_cookie("musubi_lang", "en")
    assert "The public address of the service" in english.text(f"/t/union-a/invitations/{inv_id}")


def test_no_warning_once_the_public_address_is_set(world: World, app) -> None:  # type: ignore[no-untyped-def]
    app.config["MUSUBI"] = dataclasses.replace(app.config["MUSUBI"], public_url="https://musubi.example.jp")
    admin, inv_id = _flyer(world, app)
    for path in (f"/t/union-a/invitations/{inv_id}", "/t/union-a/invitations"):
        html = admin.text(path)
        assert WARNING_JA not in html and "public-url-warning" not in html, path
    assert "https://musubi.example.jp/" in admin.text(f"/t/union-a/invitations/{inv_id}")
