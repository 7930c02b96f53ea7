"""Every GET of the OpenAPI document and every page, with real objects in the path (the notices, documents, surveys,
applications, attachments and invitations of a federation and two unions), asked by every kind of caller: never a
server error, and every API refusal in the one error shape. The fuzzer (test_hostile_input.py) mostly meets made-up
ids and 404s; this walks the paths an officer, a member or an auditor actually opens. It found a member's list of
their union's notices answering 500."""
from __future__ import annotations

import io
import itertools
import re
from collections.abc import Iterator

import pytest
from conftest import World

from federation.demo import one_page_pdf

CALLERS = {
    "federation staff": ("fed", "staff"),
    "federation admin": ("fed", "fadmin"),
    "council officer": ("fed", "tokyo"),
    "union admin": ("union-a", "aadmin"),
    "union editor": ("union-a", "aeditor"),
    "member": ("union-a", "a1"),
    "neighbour member": ("union-b", "b1"),
    "neighbour admin": ("union-b", "badmin"),
    "auditor": ("platform", "aud"),
    "platform operator": ("platform", "ops"),
}
# Answers that are files or pictures rather than JSON.
NOT_JSON = re.compile(r"(\.csv|\.png|\.svg|/download|/export|/attachments/\{attachment_id\})$")


API_PARAM = re.compile(r"\{(\w+)\}")  # /tenants/{slug}
PAGE_PARAM = re.compile(r"<(?:\w+:)?(\w+)>")  # /t/<slug>/notices/<int:notice_id>


def _filled(template: str, param: re.Pattern[str], values: dict[str, list[str]]) -> Iterator[str]:
    """The template with every combination of real values for its parameters."""
    names = param.findall(template)
    missing = [n for n in names if n not in values]
    assert not missing, f"{template}: no real value for {missing}; add one to _objects or PAGE_VALUES"
    parts = param.split(template)  # text, name, text, name, ..., text
    for combo in itertools.product(*(values[n] for n in names)):
        parts[1::2] = combo
        yield "".join(parts)


def _ok(r, what: str) -> dict:  # type: ignore[no-untyped-def]
    assert r.status_code in (200, 201, 202), (what, r.status_code, r.get_json())
    return r.get_json()


def _browser_subscription() -> dict:
    """What a phone's browser hands over when it subscribes (its push service is never asked here)."""
    import base64
    import secrets

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    point = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return {"endpoint": f"https://push.example.invalid/send/{secrets.token_urlsafe(16)}",
            "keys": {"p256dh": b64(point), "auth": b64(secrets.token_bytes(16))}}


def _objects(world: World) -> dict[str, list[str]]:
    """One of everything, made through the API the way people make them; path parameter -> values to try."""
    staff, aeditor, aadmin, a1 = (world.as_(*CALLERS[k]) for k in ("federation staff", "union editor",
                                                                    "union admin", "member"))
    A = "/api/v1/tenants/union-a"  # noqa: N806

    def notice(api, slug: str, title: str) -> int:  # type: ignore[no-untyped-def]
        made = _ok(api.post(f"/api/v1/tenants/{slug}/notices", json={
            "title": title, "body": "本文", "category": "seminar", "audience": {"all": True}}), title)
        _ok(api.post(f"/api/v1/tenants/{slug}/notices/{made['id']}/publish"), title)
        return made["id"]

    fed_notice = notice(staff, "fed", "連合会セミナー")
    union_notice = notice(aeditor, "union-a", "A労組 職場集会")
    b_notice = notice(world.as_("union-b", "beditor"), "union-b", "B労組 職場集会")
    _ok(a1.put(f"/api/v1/me/inbox/{fed_notice}/reaction", json={"stamp": "attend"}), "stamp")
    doc = _ok(aeditor.post(f"{A}/documents", data={
        "title": "議案書", "file": (io.BytesIO(one_page_pdf("議案書")), "議案書.pdf", "application/pdf")},
        content_type="multipart/form-data"), "document")
    survey = _ok(aeditor.post(f"{A}/surveys", json={
        "title": "職場アンケート", "anonymous": True, "opens_at": "2026-01-01T00:00:00+09:00",
        "closes_at": "2099-01-01T00:00:00+09:00",
        "questions": [{"kind": "single", "text": "満足ですか", "options": ["はい", "いいえ"]}]}), "survey")
    _ok(a1.post(f"{A}/surveys/{survey['id']}/answers", json={"answers": {str(survey["questions"][0]["id"]): 0}}),
        "answer")
    kind = _ok(aadmin.post(f"{A}/application-types", json={
        "name": "慶弔費申請", "fields": [{"key": "event", "label": "事由", "kind": "text", "required": True}]}),
        "application type")
    application = _ok(a1.post(f"{A}/applications", json={"type_id": kind["id"], "values": {"event": "結婚"}}),
                      "application")
    attachment = _ok(a1.post(f"{A}/applications/{application['id']}/attachments", data={
        "file": (io.BytesIO(one_page_pdf("会葬礼状")), "会葬礼状.pdf", "application/pdf")},
        content_type="multipart/form-data"), "attachment")
    invitation = _ok(aadmin.post(f"{A}/invitations", json={"valid_days": 30}), "invitation")
    gated = _ok(aadmin.post(f"{A}/invitations", json={"valid_days": 30, "needs_approval": True}), "gated invitation")
    _ok(world.anonymous().post(f"/api/v1/register/{gated['token']}", json={
        "login_id": "E20261201", "display_name": "新入 花子", "name_kana": "しんにゅう はなこ",
        "password": "Shinnyu-2026-pass!"}), "registration")
    pending = _ok(aadmin.get(f"{A}/registrations/pending"), "pending")["items"]
    device = _ok(a1.post("/api/v1/me/push-subscriptions", json=_browser_subscription()), "push subscription")
    return {
        "device_id": [str(device["id"])],
        "slug": ["fed", "union-a", "union-b", "platform"],
        "fed": ["fed"],
        "union": ["union-a"],
        "notice_id": [str(fed_notice), str(union_notice), str(b_notice)],
        "document_id": [str(doc["id"])],
        "survey_id": [str(survey["id"])],
        "app_id": [str(application["id"])],
        "attachment_id": [str(attachment["id"])],
        "inv_id": [str(invitation["id"])],
        "token": [invitation["token"]],
        "registration_id": [str(pending[0]["registration_id"])],
        "login_id": ["a1", "b1", "staff"],
    }


def test_every_get_on_real_objects_answers_every_caller_without_a_server_error(world: World) -> None:
    values = _objects(world)
    paths = [p for p, ops in world.client.get("/api/v1/openapi.json").get_json()["paths"].items() if "get" in ops]
    assert len(paths) >= 40
    asked = 0
    failures: list[str] = []
    for who, (tenant, login_id) in CALLERS.items():
        api = world.as_(tenant, login_id)
        for template in paths:
            for path in _filled(template, API_PARAM, values):
                r = api.get(path)
                asked += 1
                if r.status_code >= 500:
                    failures.append(f"{who} GET {path}: {r.status_code} {r.get_data(as_text=True)[:200]}")
                elif r.status_code >= 400:
                    body = r.get_json(silent=True) or {}
                    if not {"code", "message"} <= set(body.get("error", {})):
                        failures.append(f"{who} GET {path}: {r.status_code} without the error shape")
                elif not NOT_JSON.search(template) and r.get_json(silent=True) is None:
                    failures.append(f"{who} GET {path}: {r.status_code} {r.mimetype}, not JSON")
    assert asked >= len(CALLERS) * len(paths)
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("who", ["member", "neighbour member", "federation staff"])
def test_the_lists_a_caller_opens_answer_with_their_own_objects(world: World, who: str) -> None:
    """The control for the sweep above: the same setup is visible where it should be, so the sweep did meet real
    objects and not only refusals."""
    values = _objects(world)
    api = world.as_(*CALLERS[who])
    inbox = {i["notice"]["id"] for i in api.get("/api/v1/me/inbox").get_json()["items"]}
    fed_notice, union_notice, b_notice = (int(v) for v in values["notice_id"])
    if who == "member":
        assert {fed_notice, union_notice} <= inbox and b_notice not in inbox
        listed = {n["id"] for n in api.get("/api/v1/tenants/union-a/notices").get_json()["items"]}
        assert listed == {union_notice}
        docs = api.get("/api/v1/tenants/union-a/documents").get_json()["items"]
        assert [d["id"] for d in docs] == [int(values["document_id"][0])]
    elif who == "neighbour member":
        assert b_notice in inbox and union_notice not in inbox
        assert api.get("/api/v1/tenants/union-a/documents").status_code == 404
    else:
        assert api.get("/api/v1/tenants/union-a/surveys").status_code == 404
        assert fed_notice in {n["id"] for n in api.get("/api/v1/tenants/fed/notices").get_json()["items"]}


# Page parameters that differ in name from the API's.
PAGE_VALUES = {"code": ["ja", "en"], "filename": ["css/musubi.css"]}


def test_every_page_on_real_objects_answers_every_caller_without_a_server_error(world: World, app) -> None:
    """The same walk over the pages (every GET route outside /api), signed in with the browser's cookie; the pages
    answer in HTML, so a refusal is a 403/404 page, a redirect to sign-in, or a 4xx naming the field."""
    from web_support import Browser

    values = {**_objects(world), **PAGE_VALUES}
    routes = sorted({r.rule for r in app.url_map.iter_rules() if "GET" in r.methods and not r.rule.startswith("/api")})
    assert len(routes) >= 40
    failures: list[str] = []
    for who, (tenant, login_id) in CALLERS.items():
        browser = Browser(app, tenant, login_id)
        for rule in routes:
            for path in _filled(rule, PAGE_PARAM, values):
                if path.startswith("/lang/"):
                    continue  # switching the language answers a redirect and changes nothing else
                r = browser.get(path)
                if r.status_code >= 500:
                    failures.append(f"{who} GET {path}: {r.status_code} {r.get_data(as_text=True)[:200]}")
                r.close()  # files (static, downloads) are streamed: let them go
    assert not failures, "\n".join(failures)


FUZZED_AS = ["federation staff", "union admin", "member", "auditor"]


@pytest.mark.parametrize("who", FUZZED_AS)
def test_every_operation_fuzzed_on_real_objects_never_fails_on_the_server(world: World, app, who: str) -> None:
    """Bodies and queries generated from the OpenAPI document, sent to paths that name real objects: past the 404
    that made-up ids meet, into the services. Writes and deletes go through too (the world is this test's own)."""
    import schemathesis
    from test_hostile_input import SKIP_OPERATIONS

    real = _objects(world)
    token = world.as_(*CALLERS[who]).token
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    failures: list[str] = []
    fuzzed = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        names = API_PARAM.findall(operation.path)
        if not names or (operation.method.upper(), operation.path) in SKIP_OPERATIONS:
            continue
        fuzzed += 1
        # union-a's objects, in union-a's paths (the slug of every tenant path here is union-a).
        path_values = {n: ("union-a" if n == "slug" else real[n][0]) for n in names}
        try:
            _fuzzer(operation, path_values, token)()
        except Exception as exc:  # noqa: BLE001 - collected so one run reports every broken operation
            failures.append(f"{operation.method.upper()} {operation.path}: {str(exc)[:600]}")
    assert fuzzed >= 30
    assert not failures, "\n\n".join(failures)


def _fuzzer(operation, path_values: dict[str, str], token: str):  # type: ignore[no-untyped-def]
    from hypothesis import given
    from schemathesis.checks import not_a_server_error
    from test_hostile_input import _fuzz_settings

    @_fuzz_settings()
    @given(case=operation.as_strategy())
    def fuzz(case) -> None:  # type: ignore[no-untyped-def]
        case.path_parameters = {**(case.path_parameters or {}), **path_values}
        response = case.call(headers={"Authorization": f"Bearer {token}"})
        case.validate_response(response, checks=[not_a_server_error])

    return fuzz


# Field names the page forms use, each given a value no form expects.
JUNK_FORM = {name: value for name, value in zip(
    ("title", "body", "name", "kind", "op", "stamp", "audience", "target", "units", "unit_id", "parent_id",
     "notice_id", "login_id", "role", "status", "comment", "when", "publish_at", "valid_days", "max_uses",
     "registration_id", "type_id", "question", "anonymous", "opens_at", "closes_at", "folder", "tags", "cascade"),
    itertools.cycle(["", "x", "-1", str(2**40), "２", "<b>", "\u3000", "0"]), strict=False)}
SIGNS_OUT = ("/signout", "/signin")  # ending or replacing the session would stop the walk itself


def test_every_page_form_sent_empty_or_with_junk_never_fails_on_the_server(world: World, app) -> None:
    """Every POST route outside /api, on real objects, as every kind of caller, with the right CSRF token and an
    empty form or one full of values no form expects: refusals and 422s, never a 5xx."""
    from web_support import Browser

    values = {**_objects(world), **PAGE_VALUES}
    routes = sorted({r.rule for r in app.url_map.iter_rules()
                     if "POST" in r.methods and not r.rule.startswith("/api") and r.rule not in SIGNS_OUT})
    assert len(routes) >= 20
    failures: list[str] = []
    for who, (tenant, login_id) in CALLERS.items():
        browser = Browser(app, tenant, login_id)
        for rule in routes:
            for path in _filled(rule, PAGE_PARAM, values):
                for form in ({}, JUNK_FORM):
                    r = browser.post(path, form)
                    if r.status_code >= 500:
                        failures.append(f"{who} POST {path} {'junk' if form else 'empty'}: {r.status_code}")
                    r.close()
    assert not failures, "\n".join(failures)
