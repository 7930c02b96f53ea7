"""A running musubi for the browser tests: `python cli.py serve` on a free port against a fresh SQLite database, the
world built through the CLI and the JSON API exactly as an operator and the officers would: once per session, each
further test module starting from a copy of that first build."""
from __future__ import annotations

import atexit
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
PW = "Browser-pass-2026!"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
SCREENSHOTS = ROOT / "artifacts" / "screenshots"


def browser_missing_reason() -> str | None:
    """Why the browser tests cannot run here, or None. CI sets MUSUBI_REQUIRE_BROWSER=1: there they must run."""
    if os.environ.get("MUSUBI_REQUIRE_BROWSER"):
        return None
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is not installed (apt-get install chromium); set MUSUBI_REQUIRE_BROWSER=1 to insist"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[test]')"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Api:
    def __init__(self, base: str, tenant: str, login_id: str) -> None:
        self.base = base
        r = requests.post(f"{base}/api/v1/auth/login", json={"tenant": tenant, "login_id": login_id, "password": PW},
                          timeout=20)
        assert r.status_code == 200, r.text
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {r.json()['token']}"

    def call(self, method: str, path: str, json: Any = None, ok: tuple[int, ...] = (200, 201, 202, 204)) -> Any:
        r = self.session.request(method, self.base + path, json=json, timeout=30)
        assert r.status_code in ok, f"{method} {path}: {r.status_code} {r.text[:500]}"
        return r.json() if r.content else None

    def close(self) -> None:
        self.session.close()


_FIRST_BUILD: list[Any] = []  # the session's first built world: a copy of its instance folder, and its ids


class ServedWorld:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
        self.env.update(DATABASE_URL=f"sqlite:///{tmp / 'browser.db'}", SECRET_KEY="browser-secret-key-0123456789",
                        MUSUBI_INSTANCE=str(tmp), PYTHONUNBUFFERED="1", MUSUBI_SCHEDULER_TICK_SECONDS="2")
        self.proc: subprocess.Popen[bytes] | None = None
        self.ids: dict[str, int] = {}
        self._apis: dict[tuple[str, str], Api] = {}

    def cli(self, *args: str) -> str:
        p = subprocess.run([sys.executable, "cli.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True,
                           timeout=120)
        assert p.returncode == 0, f"cli {' '.join(args)}: {p.stderr[-1500:]}"
        return p.stdout

    def api(self, tenant: str, login_id: str) -> Api:
        key = (tenant, login_id)
        if key not in self._apis:
            self._apis[key] = Api(self.base, tenant, login_id)
        return self._apis[key]

    def start(self) -> None:
        log = (self.tmp / "serve.log").open("w")
        self.proc = subprocess.Popen([sys.executable, "cli.py", "serve", "--host", "127.0.0.1", "--port",
                                      str(self.port)], cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        end = time.time() + 60
        while time.time() < end:
            if self.proc.poll() is not None:
                raise AssertionError("serve exited: " + (self.tmp / "serve.log").read_text()[-2000:])
            try:
                if requests.get(self.base + "/signin", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise AssertionError("serve never answered")

    def stop(self) -> None:
        for api in self._apis.values():
            api.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def build(self) -> None:
        """fed (a block, the 東京県協 council) with union-a opted in and union-b opted out, both on that council.
        Built the first time in a session; later worlds start from a copy of its instance folder (the database, the
        VAPID key) and its ids, the nine CLI processes and the API calls not run again."""
        if _FIRST_BUILD:
            folder, ids = _FIRST_BUILD
            shutil.copytree(folder, self.tmp, dirs_exist_ok=True)
            self.ids.update(ids)
            self.start()
            return
        self._build()
        kept = Path(tempfile.mkdtemp(prefix="musubi-browser-world-"))
        atexit.register(shutil.rmtree, kept, True)
        for item in self.tmp.iterdir():
            if item.name.startswith(("browser.db", "serve.log")):
                continue
            (shutil.copytree if item.is_dir() else shutil.copy2)(item, kept / item.name)
        # The server is running: SQLite's backup copies a consistent database, the write-ahead log included.
        source, target = sqlite3.connect(self.tmp / "browser.db"), sqlite3.connect(kept / "browser.db")
        try:
            source.backup(target)
        finally:
            source.close()
            target.close()
        _FIRST_BUILD.extend((kept, dict(self.ids)))

    def _build(self) -> None:
        c = self.cli
        c("init-db")
        c("push", "init-vapid")
        c("tenant", "create", "fed", "--name", "情報通信産業労働組合連合会", "--kind", "federation")
        c("tenant", "create", "union-a", "--name", "A通信労働組合", "--kind", "union")
        c("tenant", "create", "union-b", "--name", "B建設労働組合", "--kind", "union")
        for tenant, login, name, kana, role in (
            ("platform", "aud", "監査 太郎", "かんさ たろう", "auditor"),
            ("fed", "fadmin", "連合会 管理者", "れんごうかい かんりしゃ", "fed_admin"),
            ("union-a", "aadmin", "執行 一郎", "しっこう いちろう", "union_admin"),
            ("union-b", "badmin", "執行 二郎", "しっこう じろう", "union_admin"),
        ):
            c("user", "create", tenant, login, "--name", name, "--kana", kana, "--password", PW, "--role", role)
        self.start()
        fadmin = self.api("fed", "fadmin")
        block = fadmin.call("POST", "/api/v1/tenants/fed/units", {"name": "関東信越ブロック", "kind": "block"})["id"]
        council = fadmin.call("POST", "/api/v1/tenants/fed/units", {"name": "東京県協", "kind": "council",
                                                                   "parent_id": block, "prefecture": "13"})["id"]
        self.ids.update(block=block, council=council)
        fadmin.call("POST", "/api/v1/tenants/fed/members", {"login_id": "staff", "display_name": "書記局 花子",
                                                           "name_kana": "しょききょく はなこ", "password": PW})
        fadmin.call("POST", "/api/v1/tenants/fed/roles", {"login_id": "staff", "role": "fed_editor"})
        members = {"union-a": (("a1", "渡辺 恵", "わたなべ めぐみ"), ("a2", "青木 健", "あおき けん"),
                               ("a3", "加藤 翔", "カトウ ショウ")),
                   "union-b": (("b1", "山田 舞", "やまだ まい"), ("b2", "石井 誠", "いしい まこと"))}
        for union in ("union-a", "union-b"):
            fadmin.call("POST", "/api/v1/federations/fed/affiliations", {"union": union, "council_id": council})
            admin = self.api(union, union[-1] + "admin")
            admin.call("POST", f"/api/v1/unions/{union}/affiliation/accept")
            branch = admin.call("POST", f"/api/v1/tenants/{union}/units", {"name": "本社支部", "kind": "branch"})["id"]
            for login, name, kana in members[union]:
                admin.call("POST", f"/api/v1/tenants/{union}/members", {"login_id": login, "display_name": name,
                                                                       "name_kana": kana, "password": PW,
                                                                       "unit_id": branch})
        self.api("union-a", "aadmin").call("PUT", "/api/v1/unions/union-a/affiliation/cascade",
                                           {"cascade": "opted_in"})

    def publish(self, title: str, *, category: str = "seminar", audience: dict[str, Any] | None = None) -> int:
        staff = self.api("fed", "staff")
        body = {"title": title, "category": category, "audience": audience or {"units": [self.ids["council"]]},
                "body": "秋の研修会を開きます。\n\n- 会場: 連合会館\n- 持ち物: **筆記用具**",
                "event": {"starts_at": "2026-12-05T09:30:00Z", "ends_at": "2026-12-05T11:30:00Z",
                          "place": "連合会館 201会議室"}}
        notice_id = staff.call("POST", "/api/v1/tenants/fed/notices", body)["id"]
        staff.call("POST", f"/api/v1/tenants/fed/notices/{notice_id}/publish")
        self.wait_for_cascade(notice_id)
        return notice_id

    def wait_for_cascade(self, notice_id: int, timeout: float = 30) -> None:
        staff = self.api("fed", "staff")
        end = time.time() + timeout
        while time.time() < end:
            stats = staff.call("GET", f"/api/v1/tenants/fed/notices/{notice_id}/stats")
            if stats["progress"]["done"]:
                return
            time.sleep(0.2)
        raise AssertionError(f"the cascade of notice {notice_id} never finished")


def copy_to_docs(names: list[str]) -> None:
    target = ROOT / "docs" / "screenshots"
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copyfile(SCREENSHOTS / name, target / name)


# --- what every browser journey does ------------------------------------------------------------------------------

def expect(locator):  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def sign_in(page, tenant: str, login_id: str) -> None:  # type: ignore[no-untyped-def]
    page.goto("/signin")
    page.get_by_label("組合・産別のコード").fill(tenant)
    page.get_by_label("社員番号またはメールアドレス").fill(login_id)
    page.get_by_label("パスワード").fill(PW)
    page.get_by_role("button", name="ログイン").click()
    page.wait_for_url(re.compile(r".*/(inbox|t/.+/notices|audit)$"))


def assert_fits_phone(page) -> None:  # type: ignore[no-untyped-def]
    """Nothing on the page is wider than a phone: no sideways scrolling to reach a button or a number."""
    # A click that navigates returns once the new page's document has arrived; its stylesheet may still be on the
    # way, and an unstyled page is as wide as its longest unbroken line.
    page.wait_for_load_state("load")
    page.set_viewport_size(PHONE)
    page.evaluate(_NEXT_FRAME)
    widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], (
        f"{page.url} is {widths[0]}px wide on a {widths[1]}px phone; widest: {page.evaluate(_WIDEST)}"
    )


# Resolves once the browser has painted twice: after a resize, the page has been laid out at the new width.
_NEXT_FRAME = "() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))"

# The elements whose right edge lies furthest beyond the viewport, to name the culprit when a page is too wide.
_WIDEST = """() => [...document.querySelectorAll('body *')]
  .map(el => [el.getBoundingClientRect().right, el])
  .filter(([right]) => right > window.innerWidth)
  .sort((a, b) => b[0] - a[0]).slice(0, 3)
  .map(([right, el]) => `${el.tagName.toLowerCase()}${el.className ? '.' + el.className : ''}`
    + ` ends at ${Math.round(right)}px`)
  .join('; ')"""


def shoot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    """The page at phone and at desktop width, whole length, after checking that it fits the phone."""
    assert_fits_phone(page)
    for label, size in (("phone", PHONE), ("desktop", DESKTOP)):
        page.set_viewport_size(size)
        # A page that was laid out at the other width is painted again before it is photographed.
        page.evaluate(_NEXT_FRAME)
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{label}.png"), full_page=True)
    page.set_viewport_size(PHONE)
