"""Hostile input: the API fuzzed from its own OpenAPI document with a signed-in caller of every role, the Markdown
renderer fuzzed with script-shaped input, and the web defences (sign-in throttling, CSRF, session fixation, open
redirects, security headers) attacked the way a hostile page or script would."""
from __future__ import annotations

import os
import re
import time
from html.parser import HTMLParser

import pytest
from conftest import PW
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

# Bounded so the whole module stays well inside a CI minute: every operation for every role still gets fuzzed.
# MUSUBI_TEST_FUZZ_EXAMPLES raises it for a deeper run by hand.
EXAMPLES_PER_OPERATION = int(os.environ.get("MUSUBI_TEST_FUZZ_EXAMPLES") or 3)

ROLES = {
    "fed_editor": ("fed", "staff"),
    "union_admin": ("union-a", "aadmin"),
    "member": ("union-a", "a1"),
    "auditor": ("platform", "aud"),
}

# Signing out would end the very token the rest of the run uses; sign-out has its own tests.
SKIP_OPERATIONS = {("POST", "/api/v1/auth/logout")}


def _fuzz_settings():  # type: ignore[no-untyped-def]
    return settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, derandomize=True,
                    phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))


@pytest.mark.parametrize("role", sorted(ROLES))
def test_api_fuzzed_from_its_openapi_document_never_fails_on_the_server(world, app, role):
    import schemathesis
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import response_schema_conformance

    # Operations without a declared response schema pass conformance trivially; the 5xx check still bites.
    CHECKS = [not_a_server_error, response_schema_conformance]  # noqa: N806 - a constant of this run
    tenant, login_id = ROLES[role]
    token = world.as_(tenant, login_id).token
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in SKIP_OPERATIONS:
            continue
        operations += 1
        @_fuzz_settings()
        @given(case=operation.as_strategy())
        def fuzz(case) -> None:  # type: ignore[no-untyped-def]
            response = case.call(headers={"Authorization": f"Bearer {token}"})
            case.validate_response(response, checks=CHECKS)

        try:
            fuzz()
        except Exception as exc:  # noqa: BLE001 - collected so one run reports every broken operation
            failures.append(f"{operation.method.upper()} {operation.path}: {str(exc)[:600]}")
    assert operations >= 30
    assert not failures, "\n\n".join(failures)


# --- the Markdown renderer -----------------------------------------------------------------------------------------

FORBIDDEN_TAGS = {"script", "iframe", "style", "object", "embed", "frame", "frameset", "base", "meta", "link",
                  "svg", "math", "form", "img", "video", "audio", "source", "template"}
BAD_SCHEMES = ("javascript:", "data:", "vbscript:")

# Shapes that got past real sanitizers at one time or another: raw tags, autolinks, reference links, entity-encoded
# and whitespace-split schemes, attribute breakouts, mutation-XSS nesting, and Markdown link titles.
PAYLOADS = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    "<img src=x onerror=alert(1)>",
    "<svg/onload=alert(1)>",
    "<iframe src=\"javascript:alert(1)\"></iframe>",
    "<style>@import 'http://evil.example/x.css';</style>",
    "<a href=\"javascript:alert(1)\">x</a>",
    "[x](javascript:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[x](java\tscript:alert(1))",
    "[x](&#106;avascript:alert(1))",
    "[x](&#x6A;&#x61;vascript&#58;alert(1))",
    "[x](javascript&colon;alert(1))",
    "[x]( javascript:alert(1) )",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[x](vbscript:msgbox(1))",
    "[x](%6Aavascript:alert(1))",
    "<javascript:alert(1)>",
    "<data:text/html,<script>alert(1)</script>>",
    "[x][r]\n\n[r]: javascript:alert(1)",
    "![x](javascript:alert(1))",
    "![x\" onerror=\"alert(1)](http://evil.example/a.png)",
    "[x](http://ok.example \"t\" onmouseover=\"alert(1)\")",
    "[x](http://ok.example \"\\\" onmouseover=alert(1) x=\\\"\")",
    "<noscript><p title=\"</noscript><img src=x onerror=alert(1)>\">",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "<svg><style><img src=x onerror=alert(1)></style></svg>",
    "<<script>script>alert(1)<</script>/script>",
    "<scr<script>ipt>alert(1)</script>",
    "<div style=\"background:url(javascript:alert(1))\">x</div>",
    "<a href=\"&#0000106&#0000097vascript:alert(1)\">x</a>",
    "<details open ontoggle=alert(1)>",
    "<body onload=alert(1)>",
    "`<script>alert(1)</script>`",
    "```\n<script>alert(1)</script>\n```",
    "> <iframe srcdoc=\"<script>alert(1)</script>\">",
    "| a |\n|---|\n| <script>alert(1)</script> |",
    "<!--<script>alert(1)//-->",
    "<![CDATA[<script>alert(1)</script>]]>",
    "\u0000<script>alert(1)</script>",
    "[x](\u0000javascript:alert(1))",
]

FRAGMENTS = PAYLOADS + ["<", ">", "\"", "'", "`", "[", "]", "(", ")", "&", "#", ";", ":", "=", "/", "\\", "\n", " ",
                        "\t", "javascript", "data", "on", "onerror", "script", "href", "src", "**", "_", "|", "---",
                        "&#x3c;", "&lt;", "%3C", "http://ok.example/"]

markdown_text = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=12)), max_size=12).map("".join)


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, attrs))

    handle_startendtag = handle_starttag


def assert_safe(html: str) -> None:
    lowered = html.lower()
    for raw in ("<script", "<iframe", "<style"):
        assert raw not in lowered, html
    parser = _Tags()
    parser.feed(html)
    parser.close()
    for tag, attrs in parser.found:
        assert tag not in FORBIDDEN_TAGS, html
        for name, value in attrs:
            assert not name.startswith("on"), html
            assert name != "style", html
            # Browsers drop ASCII whitespace and control characters inside a scheme before reading it.
            compact = re.sub(r"[\x00-\x20]", "", value or "").lower()
            assert not compact.startswith(BAD_SCHEMES), html


@pytest.mark.parametrize("payload", PAYLOADS)
def test_known_xss_shapes_are_sanitized(payload):
    from federation.notices.markdown import render

    assert_safe(render(payload))
    assert_safe(render(f"before {payload} after"))
    assert_safe(render(f"- {payload}\n- [ok](https://ok.example)"))


@settings(max_examples=250, deadline=None, database=None, derandomize=True)
@given(markdown_text)
def test_fuzzed_markdown_never_renders_script(text):
    from federation.notices.markdown import render

    assert_safe(render(text))


def test_safe_markdown_still_renders_links():
    from federation.notices.markdown import render

    html = render("[組合](https://union.example/a) and <https://union.example/b>")
    assert 'href="https://union.example/a"' in html
    assert 'rel="noopener noreferrer nofollow"' in html


# --- brute force -----------------------------------------------------------------------------------------------------

def _limit(app, n: int) -> None:  # type: ignore[no-untyped-def]
    settings_ = app.config["MUSUBI"]
    app.config["MUSUBI"] = settings_.__class__(**{**settings_.__dict__, "login_max_failures": n})


def _login(client, tenant: str, login_id: str, password: str, addr: str):  # type: ignore[no-untyped-def]
    return client.post("/api/v1/auth/login", json={"tenant": tenant, "login_id": login_id, "password": password},
                       environ_base={"REMOTE_ADDR": addr})


def test_brute_force_on_one_account_from_many_addresses_is_throttled(world, app):
    _limit(app, 4)
    client = app.test_client()
    for i in range(4):
        assert _login(client, "union-b", "b1", f"guess-{i}", f"198.51.100.{i + 1}").status_code == 401
    r = _login(client, "union-b", "b1", PW, "198.51.100.99")
    assert r.status_code == 429
    assert r.headers["Retry-After"].isdigit()
    # Another account is not locked by someone else's attack on b1.
    assert _login(client, "union-b", "b2", PW, "198.51.100.99").status_code == 200


def test_password_spraying_from_one_address_gets_one_guess_per_account(world, app):
    settings_ = app.config["MUSUBI"]
    app.config["MUSUBI"] = settings_.__class__(**{**settings_.__dict__, "login_max_failures": 50,
                                                  "login_address_max_failures": 4})
    client = app.test_client()
    for i, who in enumerate(["a1", "a2", "b1", "b2"]):
        tenant = "union-a" if who.startswith("a") else "union-b"
        assert _login(client, tenant, who, f"guess-{i}", "203.0.113.7").status_code == 401
    # A second guess at any sprayed account from that address is refused, even with the right password ...
    r = _login(client, "union-a", "a1", PW, "203.0.113.7")
    assert r.status_code == 429 and r.headers["Retry-After"].isdigit()
    # ... while the address is not locked as a whole: a member behind the same carrier NAT signs in,
    assert _login(app.test_client(), "union-c", "c1", PW, "203.0.113.7").status_code == 200
    # and the sprayed member signs in from their own address.
    assert _login(app.test_client(), "union-a", "a1", PW, "203.0.113.8").status_code == 200


def test_brute_force_on_the_sign_in_page_is_throttled_too(world, app):
    _limit(app, 3)
    client = app.test_client()
    token = _signin_token(client)
    for i in range(3):
        r = client.post("/signin", data={"tenant": "union-a", "login_id": "a2", "password": f"guess-{i}",
                                         "csrf_token": token})
        assert r.status_code == 401
    r = client.post("/signin", data={"tenant": "union-a", "login_id": "a2", "password": PW, "csrf_token": token})
    assert r.status_code == 429
    assert client.get_cookie("musubi_session") is None


# --- CSRF, session fixation, open redirect -------------------------------------------------------------------------

def _signin_token(client) -> str:  # type: ignore[no-untyped-def]
    page = client.get("/signin").get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def _page_sign_in(client, tenant: str, login_id: str, next_url: str | None = None):  # type: ignore[no-untyped-def]
    data = {"tenant": tenant, "login_id": login_id, "password": PW, "csrf_token": _signin_token(client)}
    return client.post("/signin" + (f"?next={next_url}" if next_url is not None else ""), data=data)


def test_cookie_authenticated_api_write_without_csrf_token_is_refused(world, app):
    client = app.test_client()
    r = client.post("/api/v1/auth/login", json={"tenant": "union-a", "login_id": "a1", "password": PW})
    csrf = r.get_json()["csrf_token"]
    assert client.get_cookie("musubi_session") is not None
    nid = _published_notice(world)
    r = client.post(f"/api/v1/me/inbox/{nid}/read")
    assert r.status_code == 403
    assert r.get_json()["error"]["code"] == "csrf_failed"
    r = client.post(f"/api/v1/me/inbox/{nid}/read", headers={"X-CSRF-Token": "forged-" + csrf})
    assert r.status_code == 403
    # With the token the write goes through (once the in-process cascade has delivered the notice).
    deadline = time.monotonic() + 10
    while (status := client.post(f"/api/v1/me/inbox/{nid}/read", headers={"X-CSRF-Token": csrf}).status_code) == 404:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert status in (200, 204)


def _published_notice(world) -> int:  # type: ignore[no-untyped-def]
    r = world.as_("union-a", "aadmin").post("/api/v1/tenants/union-a/notices", json={
        "title": "職場集会", "body": "集まってください", "category": "general", "audience": {"all": True}})
    nid = r.get_json()["id"]
    assert world.as_("union-a", "aadmin").post(f"/api/v1/tenants/union-a/notices/{nid}/publish").status_code == 202
    return nid


def test_page_form_without_its_token_is_refused(world, app):
    client = app.test_client()
    assert _page_sign_in(client, "union-a", "a1").status_code == 302
    r = client.post("/signout")
    assert r.status_code == 403
    assert client.get("/api/v1/me").status_code == 200  # still signed in: the forged sign-out did nothing
    r = client.post("/signout", data={"csrf_token": "not-the-token"})
    assert r.status_code == 403
    assert client.post("/signin", data={"tenant": "union-a", "login_id": "a1", "password": PW}).status_code == 403


def test_a_session_cookie_planted_before_sign_in_is_replaced(shared_world):
    app = shared_world.app
    client = app.test_client()
    planted = "attacker-chosen-session-token-000000000000"
    client.set_cookie("musubi_session", planted)
    assert client.get("/api/v1/me").status_code == 401
    r = _page_sign_in(client, "union-a", "a1")
    assert r.status_code == 302
    after = client.get_cookie("musubi_session").value
    assert after != planted
    attacker = app.test_client()
    attacker.set_cookie("musubi_session", planted)
    assert attacker.get("/api/v1/me").status_code == 401


def test_every_sign_in_issues_a_new_token(shared_world):
    app = shared_world.app
    tokens = set()
    cookies = set()
    for _ in range(3):
        client = app.test_client()
        r = client.post("/api/v1/auth/login", json={"tenant": "union-a", "login_id": "a1", "password": PW})
        tokens.add(r.get_json()["token"])
        cookies.add(client.get_cookie("musubi_session").value)
        browser = app.test_client()
        assert _page_sign_in(browser, "union-a", "a1").status_code == 302
        cookies.add(browser.get_cookie("musubi_session").value)
    assert len(tokens) == 3
    assert len(cookies) == 6


OFFSITE = ["//evil.example", "//evil.example/inbox", "https://evil.example", "http://evil.example/",
           "/\\evil.example", "\\\\evil.example", "/\\/evil.example", "/\t/evil.example", "/%09/evil.example",
           "/%5Cevil.example", "javascript:alert(1)", "https:evil.example", " //evil.example", "///evil.example"]


def _stays_on_site(location: str) -> bool:
    from urllib.parse import urlsplit

    # What a browser would do with it: strip tabs and newlines, read backslashes as slashes.
    seen = re.sub(r"[\t\r\n]", "", location).replace("\\", "/").strip()
    parts = urlsplit(seen)
    return not parts.scheme and not parts.netloc and seen.startswith("/") and not seen.startswith("//")


@pytest.mark.parametrize("target", OFFSITE)
def test_sign_in_never_redirects_off_site(shared_world, target):
    app = shared_world.app
    from urllib.parse import quote

    client = app.test_client()
    r = _page_sign_in(client, "union-a", "a1", quote(target, safe=""))
    assert r.status_code == 302
    assert _stays_on_site(r.headers["Location"]), r.headers["Location"]
    r = client.get("/signin", query_string={"next": target})  # already signed in: straight to `next`
    assert r.status_code == 302
    assert _stays_on_site(r.headers["Location"]), r.headers["Location"]
    r = client.get("/lang/en", query_string={"next": target})
    assert _stays_on_site(r.headers["Location"]), r.headers["Location"]


def test_a_local_next_is_still_honoured(shared_world):
    app = shared_world.app
    client = app.test_client()
    r = _page_sign_in(client, "union-a", "a1", "/inbox%3Fcursor%3Dx")
    assert r.headers["Location"] == "/inbox?cursor=x"


# --- security headers ------------------------------------------------------------------------------------------------

def _common_headers(r) -> None:  # type: ignore[no-untyped-def]
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["Referrer-Policy"] in ("same-origin", "no-referrer", "strict-origin-when-cross-origin")
    assert "no-store" in r.headers["Cache-Control"]


def test_security_headers_on_api_and_pages(shared_world):
    world, app = shared_world, shared_world.app
    client = app.test_client()
    api = world.as_("union-a", "a1")
    for r in (api.get("/api/v1/me"), api.get("/api/v1/me/inbox"), client.get("/api/v1/me"),
              client.post("/api/v1/auth/login", json={"tenant": "x"})):
        _common_headers(r)
    pages = [client.get("/signin")]
    _page_sign_in(client, "union-a", "a1")
    pages.append(client.get("/inbox"))
    for r in pages:
        assert r.status_code == 200 and r.mimetype == "text/html"
        _common_headers(r)
        csp = r.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
        assert "unsafe-inline" not in csp
