"""Every route of the app (API and pages, every method) × every kind of caller, on real objects of union A, union B
and the federation: outsiders never get a 2xx on union A's objects nor see its names in the body, refusals are
403/404 in the one error shape (F1, F5, F8), anonymous callers are sent to sign in, the owner's officers can read,
and a refused write changes nothing.

The expected outcome is not written per case: each route is classified once in OWNERS by who owns what it names
(a regular expression over the rule; the first that matches wins), and the checks follow from the class. A route no
pattern matches fails the test by name, so a new route cannot ship without saying whose it is.
"""
from __future__ import annotations

import re

import pytest
from conftest import World
from real_world import PAGE_VALUES, _filled, _objects

# --- who owns what a route names -----------------------------------------------------------------------------------

PUBLIC = "public"  # anyone, signed in or not: sign-in, health, static files, an invitation's own link
SELF = "signed-in self"  # the caller's own account, inbox and devices: any signed-in caller, nobody else's
PLATFORM = "platform"  # the list of tenants: platform roles only
AUDITOR = "auditor"  # the audit views: the auditor (and the platform) only
FEDERATION = "federation in path"  # /federations/<fed>/...: that federation's staff
UNION = "union in path"  # /unions/<union>/...: the union's affiliation, its officers and its federation's
TENANT = "tenant in path"  # /tenants/<slug>/..., /t/<slug>/...: whatever the tenant's firewall allows

OWNERS: list[tuple[str, str]] = [
    (r"^/(healthz|readyz|offline|sw\.js|manifest\.webmanifest)?$", PUBLIC),
    (r"^/(static|lang|text-size)/", PUBLIC),
    (r"^/(signin|signout|signin/help)$", PUBLIC),
    (r"^(/api/v1)?/register/<token>$", PUBLIC),
    (r"^/account/<token>$", PUBLIC),  # an officer's one-time reset or activation link: the token is the permission
    (r"^/api/v1/(auth/login|auth/logout|openapi\.json|push/vapid-public-key)$", PUBLIC),
    (r"^/api/v1/me(/|$)", SELF),
    (r"^/(inbox|settings)(/|$)", SELF),
    (r"^/(notices|surveys|ballots|reports)/<int:\w+>", SELF),
    (r"^/api/v1/tenants$", PLATFORM),
    (r"^(/api/v1)?/audit(/|$)", AUDITOR),
    (r"^/api/v1/federations/<fed>/", FEDERATION),
    (r"^/api/v1/unions/<union>/", UNION),
    (r"^(/api/v1/tenants|/t)/<slug>(/|$)", TENANT),
]

# The callers, and which of them are outsiders to union A.
CALLERS = {
    "federation editor": ("fed", "staff"),
    "council officer": ("fed", "tokyo"),
    "union A admin": ("union-a", "aadmin"),
    "union A member": ("union-a", "a1"),
    "union B admin": ("union-b", "badmin"),
    "union B member": ("union-b", "b1"),
    "auditor": ("platform", "aud"),
    "platform admin": ("platform", "ops"),
}
UNION_B = ("union B admin", "union B member")
OUTSIDERS = ("federation editor", "council officer", "union B admin", "union B member", "auditor", "platform admin")
# What a union keeps to itself: its federation sees its affiliation and what it relays, never these.
UNION_ONLY = re.compile(r"/(documents|surveys|applications|invitations|members|registrations|ballots|kpi)(/|$)")
# Names and titles that belong to union A alone: none may reach union B's people in any answer.
A_SECRETS = ("A労組 職場集会", "議案書", "職場アンケート", "慶弔費申請", "A渡辺 恵", "A執行 委員長", "A本社支部",
             "E20261201", "新入 花子", "A労組 役員選挙", "A労組の職場の声", "A労組からの質問", "A労組の役員の返信")
WRITES = ("POST", "PUT", "PATCH", "DELETE")
# Ending or replacing the caller's own session would stop the walk; these are covered by the auth tests.
SESSION = {"/signout", "/signin", "/api/v1/auth/logout", "/api/v1/auth/login"}


# A rule's parameters, converters and all: <slug>, <int:notice_id>, <int(max=2147483647):survey_id>, <any(a, b):op>.
PARAM = re.compile(r"<(?:[^:>]+:)?(\w+)>")


# Who may use each role-owned class at all (the firewall's roles, policies/roles.csv).
OWN_ROLES = {
    PLATFORM: ("auditor", "platform admin"),
    AUDITOR: ("auditor", "platform admin"),
    # The platform reads affiliations everywhere (policies/roles.csv: auditor, any, affiliation, read), never content.
    FEDERATION: ("federation editor", "council officer", "auditor", "platform admin"),
}


def owner(rule: str) -> str | None:
    for pattern, who in OWNERS:
        if re.search(pattern, rule):
            return who
    return None


def _routes(app) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return sorted((r.rule, m) for r in app.url_map.iter_rules() for m in r.methods - {"HEAD", "OPTIONS"})


def test_every_route_is_classified(app) -> None:  # type: ignore[no-untyped-def]
    missing = sorted({rule for rule, _ in _routes(app) if owner(rule) is None})
    assert not missing, ("routes with no isolation class; add a pattern to OWNERS in tests/test_route_matrix.py: "
                         + ", ".join(missing))


@pytest.fixture(scope="module")
def matrix_world(_module_world: World) -> tuple[World, dict[str, list[str]]]:
    values = _objects(_module_world)
    # Union A's objects and union A's slug only: the owner is known, so is everyone outside it.
    values.update(slug=["union-a"], union=["union-a"], login_id=["a1"], **PAGE_VALUES)
    return _module_world, values


# Objects that are not union A's, met in union A's paths (the federation's notices, one of them on its officers'
# channel, and union B's): 404 there is right, even for union A's own officers.
FOREIGN = re.compile(r"/notices/(1|3|4)(/|$)")
# Pages only a federation has (the report request form, the answers' CSV): a union's own officers get 404 there.
FEDERATION_PAGES = re.compile(r"^/t/[^/]+/reports/(new|\d+/answers\.csv)$")


def _snapshot(app) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Rows per table, but the audit trail and sessions, which a refusal may rightly add to."""
    from sqlalchemy import func, select

    from federation.extensions import db

    with app.app_context():
        return {t.name: db.session.execute(select(func.count()).select_from(t)).scalar_one()
                for t in db.metadata.sorted_tables if not re.search(r"audit|session|login|rate", t.name)}


def _cases(app, values) -> list[tuple[str, str, str, str]]:  # type: ignore[no-untyped-def]
    out = []
    for rule, method in _routes(app):
        if rule in SESSION or rule.startswith(("/static", "/lang", "/text-size")):
            continue
        for concrete in _any_expanded(rule):
            for path in _filled(concrete, PARAM, values):
                out.append((rule, method, path, owner(rule) or ""))
    return out


ANY = re.compile(r"<any\(([^)]*)\):\w+>")


def _any_expanded(rule: str) -> list[str]:
    """A rule with an `any(...)` converter, once per word it accepts: each route is sent only what it serves."""
    match = ANY.search(rule)
    if not match:
        return [rule]
    words = [w.strip() for w in match.group(1).split(",")]
    return [c for w in words for c in _any_expanded(rule[:match.start()] + w + rule[match.end():])]


def _send(world: World, who: str | None, method: str, path: str):  # type: ignore[no-untyped-def]
    from web_support import Browser

    api = path.startswith("/api/")
    if who is None:
        client = world.app.test_client()
        return client.open(path, method=method, json={} if api and method in WRITES else None)
    tenant, login_id = CALLERS[who]
    if api:
        caller = world.as_(tenant, login_id)
        return caller.client.open(path, method=method, headers=caller._headers(),
                                  json={} if method in WRITES else None)
    browser = Browser(world.app, tenant, login_id)
    return browser.get(path) if method == "GET" else browser.post(path, {})


# Found by this matrix: the audit API read its query before it asked who was calling, so an anonymous request
# without the query got 422 (naming the missing fields) instead of 401. Held here by name as well as in the sweep.
ANONYMOUS_AUDIT_QUERIES = {("GET", f"/api/v1/audit/{p}") for p in ("check", "exposure/diff", "what-can", "who-can")}


@pytest.mark.parametrize("method,path", sorted(ANONYMOUS_AUDIT_QUERIES))
def test_anonymous_audit_query_is_401_first(app, method: str, path: str) -> None:  # type: ignore[no-untyped-def]
    assert app.test_client().open(path, method=method).status_code == 401


def _same_as_nowhere(world: World, who: str | None, method: str, path: str, body: str) -> bool:
    r = _send(world, who, method, path.replace("/union-a", "/no-such-union", 1))
    other = r.get_data().decode("utf-8", "replace")
    r.close()
    return r.status_code == 422 and other == body


def _check(failures: list[str], who: str | None, method: str, path: str, cls: str, r,  # type: ignore[no-untyped-def]
           world: World | None = None) -> None:
    api = path.startswith("/api/")
    status, body = r.status_code, r.get_data().decode("utf-8", "replace")
    r.close()
    where = f"{who or 'anonymous'} {method} {path}"
    if status >= 500:
        failures.append(f"{where}: {status}")
        return
    if status >= 400 and api:
        error = (r.get_json(silent=True) or {}).get("error", {})
        if not {"code", "message"} <= set(error):
            failures.append(f"{where}: {status} without the error shape")
    if status == 422 and api and method in WRITES and "/union-a" in path:
        # A body the schema refuses is refused before the firewall is asked. That is no leak only if the answer is
        # the same for a union that does not exist: the 422 must say nothing about union A.
        if not (world and _same_as_nowhere(world, who, method, path, body)):
            failures.append(f"{where}: 422 that differs from the one for a union that does not exist")
        return
    if who is None:
        # Anonymous: 401 on the API, sent to sign in on the pages.
        if api and status != 401:
            failures.append(f"{where}: {status}, not 401")
        if not api and not (status in (302, 303) and "/signin" in r.headers.get("Location", "")):
            failures.append(f"{where}: {status}, not sent to sign in")
        return
    if who in UNION_B and cls in (TENANT, UNION):
        # Union A's objects, asked by union B: union A does not exist for them (F1, F8).
        if status not in (403, 404, 422):
            failures.append(f"{where}: {status}, an outsider got through")
    if who in UNION_B or (who in OUTSIDERS and cls == TENANT and UNION_ONLY.search(path)):
        leaked = [s for s in A_SECRETS if s in body]
        if leaked:
            failures.append(f"{where}: body names {leaked}")
    # Routes only some roles may use at all: everyone else is refused, whatever the route names.
    if cls in OWN_ROLES and who not in OWN_ROLES[cls] and status not in (403, 404, 422):
        failures.append(f"{where}: {status}, {cls} route answered a caller outside it")
    if who == "union A admin" and cls == TENANT and method == "GET" and status >= 400 and not FOREIGN.search(path) \
            and not FEDERATION_PAGES.search(path):
        failures.append(f"{where}: {status}, the owner's officer cannot read")


def test_reads_by_every_caller(matrix_world) -> None:  # type: ignore[no-untyped-def]
    world, values = matrix_world
    failures: list[str] = []
    for _rule, method, path, cls in _cases(world.app, values):
        if method != "GET" or cls == PUBLIC:
            continue
        _check(failures, None, method, path, cls, _send(world, None, method, path))
        for who in CALLERS:
            _check(failures, who, method, path, cls, _send(world, who, method, path))
    assert not failures, "\n".join(failures)


def test_refused_writes_change_nothing(matrix_world) -> None:  # type: ignore[no-untyped-def]
    """Writes to union A's objects by union B's people and by anonymous callers: refused, and every table (but the
    audit trail) holds what it held before."""
    world, values = matrix_world
    failures: list[str] = []
    for _rule, method, path, cls in _cases(world.app, values):
        if method not in WRITES or cls not in (TENANT, UNION):
            continue
        for who in (None, *UNION_B):
            before = _snapshot(world.app)
            r = _send(world, who, method, path)
            location = r.headers.get("Location", "")
            ok = r.status_code < 300 or (r.status_code < 400 and "/signin" not in location)
            _check(failures, who, method, path, cls, r, world)
            after = _snapshot(world.app)
            changed = sorted(t for t in before if before[t] != after.get(t))
            if changed or ok:
                failures.append(f"{who or 'anonymous'} {method} {path}: {r.status_code}, changed {changed}")
    assert not failures, "\n".join(failures)


# --- a council officer and another council's notices ----------------------------------------------------------------

COUNCIL_ROUTES = [
    ("/api/v1/tenants/fed/notices/{draft}", "draft"),
    ("/api/v1/tenants/fed/notices/{sent}", "sent"),
    ("/api/v1/tenants/fed/notices/{sent}/stats", "stats"),
    ("/api/v1/tenants/fed/notices/{sent}/receipts", "receipts"),
    ("/t/fed/notices/{sent}/stats", "stats page"),
    ("/t/fed/notices/{sent}/receipts", "receipts page"),
    ("/api/v1/tenants/fed/notices", "list"),
    ("/t/fed/notices", "list page"),
]
OSAKA = "大阪県協だけの会議"


@pytest.fixture(scope="module")
def osaka_notices(matrix_world) -> dict[str, int]:  # type: ignore[no-untyped-def]
    world, _values = matrix_world
    staff = world.as_("fed", "staff")
    audience = {"units": [world.ids["council2"]]}
    draft = staff.post("/api/v1/tenants/fed/notices", json={"title": OSAKA + "（案）", "body": OSAKA,
                                                            "category": "seminar", "audience": audience})
    sent = staff.post("/api/v1/tenants/fed/notices", json={"title": OSAKA, "body": OSAKA, "category": "seminar",
                                                           "audience": audience})
    assert draft.status_code == sent.status_code == 201
    assert staff.post(f"/api/v1/tenants/fed/notices/{sent.get_json()['id']}/publish").status_code in (200, 202)
    return {"draft": draft.get_json()["id"], "sent": sent.get_json()["id"]}


@pytest.mark.parametrize("template,what", COUNCIL_ROUTES)
def test_council_officer_sees_nothing_of_another_council(matrix_world, osaka_notices, template: str,  # type: ignore[no-untyped-def]
                                                         what: str) -> None:
    world, _values = matrix_world
    r = _send(world, "council officer", "GET", template.format(**osaka_notices))
    body = r.get_data().decode("utf-8", "replace")
    r.close()
    assert OSAKA not in body, f"{what}: the Tokyo council officer reads Osaka's notice"
    if what not in ("list", "list page"):
        assert r.status_code in (403, 404), what
