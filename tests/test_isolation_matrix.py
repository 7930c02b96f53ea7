"""Every foundation and auditor endpoint × every role × (own tenant, a neighbour union, a federation): the exact
status, and nothing of the neighbour in a refusal (F1, F5, F8).

The expectations below are written out by hand from the SPEC and policies/roles.csv, not derived from the code under
test. F8 as the SPEC states it: a refused caller gets 403 only when they may know the object exists (it is their own
tenant, or they may read that kind of object there), otherwise 404, exactly as for a tenant that is not there. A path
naming a tenant of the wrong kind (/federations/union-a/..., /unions/fed/...) names nothing that exists: 404.

Cases that change nothing (reads, and writes the firewall refuses) share one world built once for the module, in a
database of its own; each write that is expected to succeed gets a fresh world, so no case depends on another.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import World

# --- who asks, and from where --------------------------------------------------------------------------------------

SIGN_IN = {
    "platform_admin": ("platform", "ops"),
    "auditor": ("platform", "aud"),
    "fed_admin": ("fed", "fadmin"),
    "fed_editor": ("fed", "staff"),
    "union_admin": ("union-a", "aadmin"),
    "union_editor": ("union-a", "aeditor"),
    "member": ("union-a", "a1"),
    "anonymous": None,
}

# own tenant / a neighbour union / a federation, for each role. Federation staff's neighbour is union-a, the union
# most exposed to them (affiliated and opted in); their "federation" target is another federation, fed2.
TARGETS = {
    "platform_admin": {"own": "platform", "neighbour": "union-a", "federation": "fed"},
    "auditor": {"own": "platform", "neighbour": "union-a", "federation": "fed"},
    "fed_admin": {"own": "fed", "neighbour": "union-a", "federation": "fed2"},
    "fed_editor": {"own": "fed", "neighbour": "union-a", "federation": "fed2"},
    "union_admin": {"own": "union-a", "neighbour": "union-b", "federation": "fed"},
    "union_editor": {"own": "union-a", "neighbour": "union-b", "federation": "fed"},
    "member": {"own": "union-a", "neighbour": "union-b", "federation": "fed"},
    "anonymous": {"own": "union-a", "neighbour": "union-b", "federation": "fed"},
}
TARGET_ORDER = ("own", "neighbour", "federation")
ANONYMOUS = 401  # anonymous callers get 401 on every endpoint below, before anything is looked up

# --- the expectation table: (own, neighbour, federation), or one status where the endpoint names no tenant -------

EXPECT: dict[str, dict[str, Any]] = {
    "me.get": {
        "platform_admin": 200, "auditor": 200, "fed_admin": 200, "fed_editor": 200,
        "union_admin": 200, "union_editor": 200, "member": 200,
    },
    "tenants.list": {  # platform roles read every tenant; nobody else may know the list exists
        "platform_admin": 200, "auditor": 200, "fed_admin": 404, "fed_editor": 404,
        "union_admin": 404, "union_editor": 404, "member": 404,
    },
    "tenants.create": {  # the auditor is inside the platform tenant, so knows it exists: 403
        "platform_admin": 201, "auditor": 403, "fed_admin": 404, "fed_editor": 404,
        "union_admin": 404, "union_editor": 404, "member": 404,
    },
    "units.list": {
        "platform_admin": (403, 404, 404),  # F1: a platform role reads no union's org units
        "auditor": (403, 404, 404),
        "fed_admin": (200, 404, 404),
        "fed_editor": (200, 404, 404),
        "union_admin": (200, 404, 404),
        "union_editor": (200, 404, 404),
        "member": (200, 404, 404),
    },
    "units.create": {
        "platform_admin": (403, 404, 404),
        "auditor": (403, 404, 404),
        "fed_admin": (201, 404, 404),
        "fed_editor": (403, 404, 404),
        "union_admin": (201, 404, 404),
        "union_editor": (403, 404, 404),
        "member": (403, 404, 404),
    },
    "members.list": {
        "platform_admin": (200, 404, 404),  # its own platform users only
        "auditor": (403, 404, 404),  # F1: the auditor lists nobody
        "fed_admin": (200, 404, 404),
        "fed_editor": (200, 404, 404),
        "union_admin": (200, 404, 404),
        "union_editor": (200, 404, 404),
        "member": (403, 404, 404),  # a plain member does not browse the member list
    },
    "member.get": {
        "platform_admin": (200, 404, 404),
        "auditor": (403, 404, 404),
        "fed_admin": (200, 404, 404),
        "fed_editor": (200, 404, 404),
        "union_admin": (200, 404, 404),
        "union_editor": (200, 404, 404),
        "member": (403, 404, 404),
    },
    "members.create": {
        "platform_admin": (201, 404, 404),
        "auditor": (403, 404, 404),
        "fed_admin": (201, 404, 404),
        "fed_editor": (403, 404, 404),
        "union_admin": (201, 404, 404),
        "union_editor": (403, 404, 404),
        "member": (403, 404, 404),
    },
    "member.patch": {
        "platform_admin": (200, 404, 404),
        "auditor": (403, 404, 404),
        "fed_admin": (200, 404, 404),
        "fed_editor": (403, 404, 404),
        "union_admin": (200, 404, 404),
        "union_editor": (403, 404, 404),
        "member": (403, 404, 404),
    },
    "roles.list": {
        "platform_admin": (200, 404, 404),
        "auditor": (200, 200, 200),  # F6: the auditor sees who holds which role everywhere
        "fed_admin": (200, 404, 404),
        "fed_editor": (403, 404, 404),
        "union_admin": (200, 404, 404),
        "union_editor": (403, 404, 404),
        "member": (403, 404, 404),
    },
    "roles.grant": {
        "platform_admin": (201, 404, 404),  # F1: no platform role makes anyone an officer of a union
        "auditor": (403, 403, 403),  # may read roles everywhere, so knows they exist; changes nothing
        "fed_admin": (201, 404, 404),
        "fed_editor": (403, 404, 404),
        "union_admin": (201, 404, 404),
        "union_editor": (403, 404, 404),
        "member": (403, 404, 404),
    },
    "roles.revoke": {
        "platform_admin": (204, 404, 404),
        "auditor": (403, 403, 403),
        "fed_admin": (204, 404, 404),
        "fed_editor": (403, 404, 404),
        "union_admin": (204, 404, 404),
        "union_editor": (403, 404, 404),
        "member": (403, 404, 404),
    },
    "federation_affiliations.list": {
        "platform_admin": (404, 404, 404),  # /federations/platform and /federations/union-a name no federation
        "auditor": (404, 404, 200),
        "fed_admin": (200, 404, 404),  # another federation's affiliations are not theirs to see
        "fed_editor": (200, 404, 404),
        "union_admin": (404, 404, 404),
        "union_editor": (404, 404, 404),
        "member": (404, 404, 404),
    },
    "federation_affiliations.invite": {
        "platform_admin": (404, 404, 404),
        "auditor": (404, 404, 403),
        "fed_admin": (201, 404, 404),
        "fed_editor": (403, 404, 404),  # inviting is the federation admin's
        "union_admin": (404, 404, 404),
        "union_editor": (404, 404, 404),
        "member": (404, 404, 404),
    },
    "federation_affiliations.end": {
        "platform_admin": (404, 404, 404),
        "auditor": (404, 404, 403),
        "fed_admin": (200, 404, 404),
        "fed_editor": (403, 404, 404),
        "union_admin": (404, 404, 404),
        "union_editor": (404, 404, 404),
        "member": (404, 404, 404),
    },
    "union_affiliation.get": {
        "platform_admin": (404, 404, 404),
        "auditor": (404, 200, 404),
        "fed_admin": (404, 404, 404),  # the federation reads its affiliations on its own side, not the union's
        "fed_editor": (404, 404, 404),
        "union_admin": (200, 404, 404),
        "union_editor": (200, 404, 404),
        "member": (403, 404, 404),
    },
    "union_affiliation.end": {
        "platform_admin": (404, 404, 404),
        "auditor": (404, 403, 404),
        "fed_admin": (404, 404, 404),
        "fed_editor": (404, 404, 404),
        "union_admin": (200, 404, 404),
        "union_editor": (403, 404, 404),
        "member": (403, 404, 404),
    },
    "union_affiliation.accept": {
        "platform_admin": (404, 404, 404),
        "auditor": (404, 403, 404),
        "fed_admin": (404, 404, 404),  # a federation cannot accept its own invitation for the union
        "fed_editor": (404, 404, 404),
        "union_admin": (200, 404, 404),
        "union_editor": (403, 404, 404),
        "member": (403, 404, 404),
    },
    "cascade.set": {  # F3: only the union's own admin
        "platform_admin": (404, 404, 404),
        "auditor": (404, 403, 404),  # may read every cascade state, so knows it exists
        "fed_admin": (404, 404, 404),
        "fed_editor": (404, 404, 404),
        "union_admin": (200, 404, 404),
        "union_editor": (403, 404, 404),
        "member": (403, 404, 404),
    },
    "audit.check": {
        "platform_admin": (403, 403, 403),  # inside the platform tenant, but reads no audit data
        "auditor": (200, 200, 200),
        "fed_admin": (404, 404, 404),
        "fed_editor": (404, 404, 404),
        "union_admin": (404, 404, 404),
        "union_editor": (404, 404, 404),
        "member": (404, 404, 404),
    },
    "audit.who_can": {
        "platform_admin": (403, 403, 403),
        "auditor": (200, 200, 200),
        "fed_admin": (404, 404, 404),
        "fed_editor": (404, 404, 404),
        "union_admin": (404, 404, 404),
        "union_editor": (404, 404, 404),
        "member": (404, 404, 404),
    },
    "audit.log": {
        "platform_admin": (403, 403, 403),
        "auditor": (200, 200, 200),
        "fed_admin": (404, 404, 404),
        "fed_editor": (404, 404, 404),
        "union_admin": (404, 404, 404),
        "union_editor": (404, 404, 404),
        "member": (404, 404, 404),
    },
    "audit.exposure": {
        "platform_admin": 403, "auditor": 200, "fed_admin": 404, "fed_editor": 404,
        "union_admin": 404, "union_editor": 404, "member": 404,
    },
    "audit.log_verify": {
        "platform_admin": 403, "auditor": 200, "fed_admin": 404, "fed_editor": 404,
        "union_admin": 404, "union_editor": 404, "member": 404,
    },
}

# --- how each endpoint is called --------------------------------------------------------------------------------

# A user of each tenant to look up or patch, a grant that is new there, and a grant that exists and may be revoked.
SOMEONE_IN = {"platform": "aud", "union-a": "a1", "union-b": "b1", "union-c": "c1", "fed": "tokyo", "fed2": "staff"}
NEW_GRANT = {
    "platform": {"login_id": "ops", "role": "auditor"},
    "fed": {"login_id": "tokyo", "role": "fed_editor"},
    "fed2": {"login_id": "staff", "role": "fed_admin"},
    "union-a": {"login_id": "a1", "role": "union_editor"},
    "union-b": {"login_id": "b1", "role": "union_editor"},
}
EXISTING_GRANT = {
    "platform": {"login_id": "aud", "role": "auditor"},
    "fed": {"login_id": "staff", "role": "fed_editor"},
    "fed2": {"login_id": "staff", "role": "fed_editor"},
    "union-a": {"login_id": "aeditor", "role": "union_editor"},
    "union-b": {"login_id": "beditor", "role": "union_editor"},
}
NEWCOMER = {"login_id": "newcomer", "display_name": "新人 一", "name_kana": "しんじん はじめ",
            "password": "Newcomer-pw-1"}


def _unit_body(slug: str, ids: dict[str, int]) -> dict[str, Any]:
    if slug.startswith("union"):
        return {"name": "新設支部", "kind": "branch"}
    return {"name": "新設ブロック", "kind": "block"}


@dataclass(frozen=True)
class Call:
    method: str
    path: str  # {t}: the target tenant; {someone}: a user of it
    body: Callable[[str, dict[str, int]], Any] | None = None
    setup: Callable[[World], None] | None = None  # only for a write expected to succeed, in its fresh world


def _reinvite_union_a(w: World) -> None:
    """Leave union-a with a pending invitation, so that accepting it can succeed."""
    from sqlalchemy import select

    from federation.extensions import db
    from tenants import service as ts
    from tenants.models import Tenant

    with w.app.app_context():
        fed = db.session.execute(select(Tenant).where(Tenant.slug == "fed")).scalar_one()
        union = db.session.execute(select(Tenant).where(Tenant.slug == "union-a")).scalar_one()
        live = ts.live_affiliation(union)
        assert live is not None
        ts.end_affiliation(live, actor="operator:test", side="federation")
        ts.invite(fed, "union-a", w.ids["council"], actor="operator:test")


CALLS: dict[str, Call] = {
    "me.get": Call("GET", "/api/v1/me"),
    "tenants.list": Call("GET", "/api/v1/tenants"),
    "tenants.create": Call("POST", "/api/v1/tenants",
                           lambda t, ids: {"slug": "union-new", "name": "新労組", "kind": "union"}),
    "units.list": Call("GET", "/api/v1/tenants/{t}/units"),
    "units.create": Call("POST", "/api/v1/tenants/{t}/units", _unit_body),
    "members.list": Call("GET", "/api/v1/tenants/{t}/members"),
    "member.get": Call("GET", "/api/v1/tenants/{t}/members/{someone}"),
    "members.create": Call("POST", "/api/v1/tenants/{t}/members", lambda t, ids: dict(NEWCOMER)),
    "member.patch": Call("PATCH", "/api/v1/tenants/{t}/members/{someone}",
                         lambda t, ids: {"display_name": "改名 済"}),
    "roles.list": Call("GET", "/api/v1/tenants/{t}/roles"),
    "roles.grant": Call("POST", "/api/v1/tenants/{t}/roles", lambda t, ids: dict(NEW_GRANT[t])),
    "roles.revoke": Call("DELETE", "/api/v1/tenants/{t}/roles", lambda t, ids: dict(EXISTING_GRANT[t])),
    "federation_affiliations.list": Call("GET", "/api/v1/federations/{t}/affiliations"),
    "federation_affiliations.invite": Call("POST", "/api/v1/federations/{t}/affiliations",
                                           lambda t, ids: {"union": "union-c", "council_id": ids["council"]}),
    "federation_affiliations.end": Call("DELETE", "/api/v1/federations/{t}/affiliations/union-b"),
    "union_affiliation.get": Call("GET", "/api/v1/unions/{t}/affiliation"),
    "union_affiliation.end": Call("DELETE", "/api/v1/unions/{t}/affiliation"),
    "union_affiliation.accept": Call("POST", "/api/v1/unions/{t}/affiliation/accept", setup=_reinvite_union_a),
    "cascade.set": Call("PUT", "/api/v1/unions/{t}/affiliation/cascade", lambda t, ids: {"cascade": "opted_out"}),
    "audit.check": Call("GET", "/api/v1/audit/check?subject=user:union-a/a1&tenant={t}&object=notices&action=read"),
    "audit.who_can": Call("GET", "/api/v1/audit/who-can?tenant={t}&object=notices&action=read"),
    "audit.log": Call("GET", "/api/v1/audit/log?tenant={t}"),
    "audit.exposure": Call("GET", "/api/v1/audit/exposure"),
    "audit.log_verify": Call("GET", "/api/v1/audit/log/verify"),
}

# What a refusal must never mention: each tenant's own names, login ids, display names and unit names.
FOREIGN = {
    "platform": ["musubi platform", "監査 太郎", "運用 次郎"],
    "fed": ["情報通信労連", "fadmin", "tokyo", "書記 花子", "連合 管理", "東京 県協", "関東ブロック", "東京県協"],
    "fed2": ["fed2", "建設産業労連", "別連 職員"],
    **{f"union-{x}": [f"union-{x}", f"{x.upper()}通信労組" if x != "c" else "C放送労組", f"{x}admin", f"{x}editor",
                      f"{x}1", f"{x}2", f"{x}3", f"{x.upper()}執行 委員長", f"{x.upper()}教宣 部長",
                      f"{x.upper()}渡辺 恵", f"{x}本社支部", f"{x}工場支部"] for x in "abc"},
}
ERROR_CODES = {401: "unauthorized", 403: "forbidden", 404: "not_found"}


@dataclass(frozen=True)
class Case:
    endpoint: str
    role: str
    target: str | None  # own / neighbour / federation; None where the endpoint names no tenant
    slug: str | None
    status: int

    @property
    def changes_something(self) -> bool:
        return CALLS[self.endpoint].method != "GET" and self.status < 300

    @property
    def id(self) -> str:
        where = f"-in-{self.target}-{self.slug}" if self.target else ""
        verdict = f"gets-{self.status}" if self.status < 300 else f"refused-{self.status}"
        return f"{self.role}-{verdict}-on-{self.endpoint}{where}"


def _cases() -> list[Case]:
    cases = []
    for endpoint, table in EXPECT.items():
        assert endpoint in CALLS, endpoint
        assert set(table) == set(SIGN_IN) - {"anonymous"}, f"{endpoint}: every role needs a row"
        for role in SIGN_IN:
            if role == "anonymous":
                statuses = ANONYMOUS if "{t}" not in CALLS[endpoint].path else (ANONYMOUS,) * 3
            else:
                statuses = table[role]
            if isinstance(statuses, int):
                cases.append(Case(endpoint, role, None, None, statuses))
                continue
            for target, status in zip(TARGET_ORDER, statuses, strict=True):
                cases.append(Case(endpoint, role, target, TARGETS[role][target], status))
    return cases


CASES = _cases()
UNCHANGING = [c for c in CASES if not c.changes_something]
CHANGING = [c for c in CASES if c.changes_something]


def _request(w: World, case: Case):  # type: ignore[no-untyped-def]
    call = CALLS[case.endpoint]
    slug = case.slug or ""
    path = call.path.format(t=slug, someone=SOMEONE_IN.get(slug, "nobody"))
    api = w.anonymous() if SIGN_IN[case.role] is None else w.as_(*SIGN_IN[case.role])  # type: ignore[misc]
    kwargs = {"json": call.body(slug, w.ids)} if call.body else {}
    return getattr(api, call.method.lower())(path, **kwargs)


def _assert_outcome(case: Case, response) -> None:  # type: ignore[no-untyped-def]
    body = response.get_data(as_text=True)
    assert response.status_code == case.status, f"{case.id}: got {response.status_code} {body[:300]}"
    if case.status < 400:
        return
    # A refusal says its status and nothing else: no object, no tenant, no count, no name (F8).
    payload = response.get_json()
    assert set(payload) == {"error"}
    assert set(payload["error"]) == {"code", "message", "fields"}
    assert payload["error"]["code"] == ERROR_CODES[case.status]
    assert payload["error"]["fields"] == {}
    home = SIGN_IN[case.role][0] if SIGN_IN[case.role] else None
    for tenant, names in FOREIGN.items():
        if tenant == home:
            continue
        for name in names:
            assert name not in body, f"{case.id}: the refusal mentions {name!r} of {tenant}"


@pytest.mark.parametrize("case", UNCHANGING, ids=[c.id for c in UNCHANGING])
def test_refusals_and_reads(shared_world: World, case: Case) -> None:
    _assert_outcome(case, _request(shared_world, case))


@pytest.mark.parametrize("case", CHANGING, ids=[c.id for c in CHANGING])
def test_permitted_writes(world: World, case: Case) -> None:
    setup = CALLS[case.endpoint].setup
    if setup is not None:
        setup(world)
    _assert_outcome(case, _request(world, case))


def test_the_table_covers_every_role_target_and_endpoint() -> None:
    """A guard on the table itself: every endpoint has a row for every role, and the two groups split it all."""
    assert len(UNCHANGING) + len(CHANGING) == len(CASES)
    targeted = [e for e, c in CALLS.items() if "{t}" in c.path]
    assert len(CASES) == len(targeted) * len(SIGN_IN) * 3 + (len(CALLS) - len(targeted)) * len(SIGN_IN)
