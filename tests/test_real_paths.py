"""Every GET of the OpenAPI document and every page, with real objects in the path (the notices, documents, surveys,
applications, attachments and invitations of a federation and two unions), asked by every kind of caller: never a
server error, and every API refusal in the one error shape. The fuzzer (test_hostile_input.py) mostly meets made-up
ids and 404s; this walks the paths an officer, a member or an auditor actually opens. It found a member's list of
their union's notices answering 500."""
from __future__ import annotations

import itertools

import pytest
from conftest import World
from real_world import API_PARAM, CALLERS, NOT_JSON, PAGE_PARAM, PAGE_VALUES, _filled, _objects


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
    fed_notice, union_notice, b_notice, officers_notice = (int(v) for v in values["notice_id"])
    thread = f"/api/v1/tenants/{'union-b' if who == 'neighbour member' else 'union-a'}/notices/{union_notice}/comments"
    if who == "member":
        assert {fed_notice, union_notice} <= inbox and b_notice not in inbox and officers_notice not in inbox
        assert [c["body"] for c in api.get(thread).get_json()["items"]] == ["A労組の職場の声"]
        listed = {n["id"] for n in api.get("/api/v1/tenants/union-a/notices").get_json()["items"]}
        assert listed == {union_notice}
        docs = api.get("/api/v1/tenants/union-a/documents").get_json()["items"]
        assert [d["id"] for d in docs] == [int(values["document_id"][0])]
    elif who == "neighbour member":
        assert b_notice in inbox and union_notice not in inbox
        assert api.get(thread).status_code == 404
        assert api.get("/api/v1/tenants/union-a/documents").status_code == 404
    else:
        assert api.get("/api/v1/tenants/union-a/surveys").status_code == 404
        assert fed_notice in {n["id"] for n in api.get("/api/v1/tenants/fed/notices").get_json()["items"]}


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
