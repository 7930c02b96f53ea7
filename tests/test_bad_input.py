"""Bad input is a 4xx that names the field at fault, in the one error shape {"error": {"code", "message",
"fields"}}; never a 500, never a traceback (SPEC "HTTP API", "CLI")."""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import World

from federation.config import PROJECT_ROOT

PROJECT = Path(__file__).resolve().parent.parent

# Who sends each kind of request: someone allowed to, so that only the input can be at fault.
SENDER = {
    "ops": ("platform", "ops"),
    "aud": ("platform", "aud"),
    "fadmin": ("fed", "fadmin"),
    "aadmin": ("union-a", "aadmin"),
    "anonymous": None,
}
MEMBER = {"login_id": "newcomer", "display_name": "新人 一", "name_kana": "しんじん はじめ",
          "password": "Newcomer-pw-1"}


@dataclass(frozen=True)
class Bad:
    id: str
    sender: str
    method: str
    path: str
    status: int
    field: str | None  # the field the error must name (None: a body that is not JSON or not an object)
    json: Any = None
    raw: str | bytes | None = None
    content_type: str = "application/json"
    extra: dict[str, Any] = field(default_factory=dict)


def member(**changes: Any) -> dict[str, Any]:
    body = {**MEMBER, **changes}
    return {k: v for k, v in body.items() if v is not ...}


CASES = [
    # --- not JSON, or JSON that is not an object: 400
    Bad("malformed-json-member", "aadmin", "POST", "/api/v1/tenants/union-a/members", 400, None, raw="{not json"),
    Bad("malformed-json-login", "anonymous", "POST", "/api/v1/auth/login", 400, None, raw='{"tenant": '),
    Bad("truncated-utf8-json", "aadmin", "POST", "/api/v1/tenants/union-a/members", 400, None,
        raw=b'{"login_id": "\xe3\x81"}'),
    Bad("array-body", "aadmin", "POST", "/api/v1/tenants/union-a/members", 400, None, json=[MEMBER]),
    Bad("string-body", "ops", "POST", "/api/v1/tenants", 400, None, json="union-new"),
    Bad("number-body", "aadmin", "PUT", "/api/v1/unions/union-a/affiliation/cascade", 400, None, json=1),
    # --- unknown fields are refused, not ignored: 422 naming them
    Bad("unknown-field-member", "aadmin", "POST", "/api/v1/tenants/union-a/members", 422, "is_admin",
        json=member(is_admin=True)),
    Bad("unknown-field-tenant", "ops", "POST", "/api/v1/tenants", 422, "owner",
        json={"slug": "union-new", "name": "新労組", "kind": "union", "owner": "ops"}),
    Bad("unknown-field-login", "anonymous", "POST", "/api/v1/auth/login", 422, "remember",
        json={"tenant": "union-a", "login_id": "a1", "password": "x" * 10, "remember": True}),
    # a body naming another tenant must not override the one in the path
    Bad("unknown-field-role-tenant-override", "aadmin", "POST", "/api/v1/tenants/union-a/roles", 422, "tenant",
        json={"login_id": "a1", "role": "union_editor", "tenant": "union-b"}),
    Bad("unknown-field-cascade-federation", "aadmin", "PUT", "/api/v1/unions/union-a/affiliation/cascade", 422,
        "federation", json={"cascade": "opted_out", "federation": "fed"}),
    Bad("unknown-field-patch-tenant", "aadmin", "PATCH", "/api/v1/tenants/union-a/members/a1", 422, "tenant_id",
        json={"tenant_id": 1}),
    # --- over-long strings
    Bad("tenant-name-201-chars", "ops", "POST", "/api/v1/tenants", 422, "name",
        json={"slug": "union-new", "name": "労" * 201, "kind": "union"}),
    Bad("slug-41-chars", "ops", "POST", "/api/v1/tenants", 422, "slug",
        json={"slug": "u" * 41, "name": "新労組", "kind": "union"}),
    Bad("display-name-101-chars", "aadmin", "POST", "/api/v1/tenants/union-a/members", 422, "display_name",
        json=member(display_name="名" * 101)),
    Bad("login-id-255-chars", "aadmin", "POST", "/api/v1/tenants/union-a/members", 422, "login_id",
        json=member(login_id="x" * 255)),
    Bad("password-201-chars", "aadmin", "POST", "/api/v1/tenants/union-a/members", 422, "password",
        json=member(password="p" * 201)),
    Bad("unit-name-201-chars", "aadmin", "POST", "/api/v1/tenants/union-a/units", 422, "name",
        json={"name": "支" * 201, "kind": "branch"}),
    Bad("role-41-chars", "aadmin", "POST", "/api/v1/tenants/union-a/roles", 422, "role",
        json={"login_id": "a1", "role": "r" * 41}),
    Bad("patch-kana-101-chars", "aadmin", "PATCH", "/api/v1/tenants/union-a/members/a1", 422, "name_kana",
        json={"name_kana": "あ" * 101}),
    # --- wrong types
    Bad("council-id-as-string", "fadmin", "POST", "/api/v1/federations/fed/affiliations", 422, "council_id",
        json={"union": "union-c", "council_id": "1"}),
    Bad("council-id-as-float", "fadmin", "POST", "/api/v1/federations/fed/affiliations", 422, "council_id",
        json={"union": "union-c", "council_id": 1.5}),
    Bad("council-id-beyond-any-row", "fadmin", "POST", "/api/v1/federations/fed/affiliations", 422, "council_id",
        json={"union": "union-c", "council_id": 10**30}),
    Bad("unit-id-as-bool", "aadmin", "POST", "/api/v1/tenants/union-a/members", 422, "unit_id",
        json=member(unit_id=True)),
    Bad("unit-id-beyond-64-bits", "aadmin", "POST", "/api/v1/tenants/union-a/members", 422, "unit_id",
        json=member(unit_id=2**63)),
    Bad("patch-unit-id-as-bool", "aadmin", "PATCH", "/api/v1/tenants/union-a/members/a1", 422, "unit_id",
        json={"unit_id": False}),
    Bad("parent-id-as-string", "aadmin", "POST", "/api/v1/tenants/union-a/units", 422, "parent_id",
        json={"name": "職場", "kind": "workplace", "parent_id": "1"}),
    Bad("role-unit-id-as-list", "aadmin", "POST", "/api/v1/tenants/union-a/roles", 422, "unit_id",
        json={"login_id": "a1", "role": "union_editor", "unit_id": [1]}),
    Bad("name-as-number", "ops", "POST", "/api/v1/tenants", 422, "name",
        json={"slug": "union-new", "name": 42, "kind": "union"}),
    Bad("cascade-as-bool", "aadmin", "PUT", "/api/v1/unions/union-a/affiliation/cascade", 422, "cascade",
        json={"cascade": True}),
    Bad("display-name-as-null", "aadmin", "PATCH", "/api/v1/tenants/union-a/members/a1", 422, "display_name",
        json={"display_name": None}),
    Bad("login-password-as-object", "anonymous", "POST", "/api/v1/auth/login", 422, "password",
        json={"tenant": "union-a", "login_id": "a1", "password": {"$ne": ""}}),
    # --- values outside the vocabulary
    Bad("slug-with-bang", "ops", "POST", "/api/v1/tenants", 422, "slug",
        json={"slug": "BAD!", "name": "新労組", "kind": "union"}),
    Bad("slug-with-space", "ops", "POST", "/api/v1/tenants", 422, "slug",
        json={"slug": "union new", "name": "新労組", "kind": "union"}),
    Bad("slug-with-trailing-newline", "ops", "POST", "/api/v1/tenants", 422, "slug",
        json={"slug": "union-new\n", "name": "新労組", "kind": "union"}),
    Bad("slug-full-width", "ops", "POST", "/api/v1/tenants", 422, "slug",
        json={"slug": "ｕｎｉｏｎ", "name": "新労組", "kind": "union"}),
    Bad("slug-too-short", "ops", "POST", "/api/v1/tenants", 422, "slug",
        json={"slug": "ab", "name": "新労組", "kind": "union"}),
    Bad("tenant-kind-platform", "ops", "POST", "/api/v1/tenants", 422, "kind",
        json={"slug": "union-new", "name": "新労組", "kind": "platform"}),
    Bad("kana-in-romaji", "aadmin", "POST", "/api/v1/tenants/union-a/members", 422, "name_kana",
        json=member(name_kana="yamada taro")),
    Bad("kana-in-kanji", "aadmin", "POST", "/api/v1/tenants/union-a/members", 422, "name_kana",
        json=member(name_kana="山田 太郎")),
    Bad("patch-display-name-of-spaces", "aadmin", "PATCH", "/api/v1/tenants/union-a/members/a1", 422,
        "display_name", json={"display_name": " \u3000 "}),
    Bad("display-name-of-spaces", "aadmin", "POST", "/api/v1/tenants/union-a/members", 422, "display_name",
        json=member(display_name="   ")),
    Bad("unit-name-of-spaces", "aadmin", "POST", "/api/v1/tenants/union-a/units", 422, "name",
        json={"name": " \u3000 ", "kind": "branch"}),
    Bad("tenant-name-of-spaces", "ops", "POST", "/api/v1/tenants", 422, "name",
        json={"slug": "union-new", "name": "   ", "kind": "union"}),
    Bad("patch-kana-in-romaji", "aadmin", "PATCH", "/api/v1/tenants/union-a/members/a1", 422, "name_kana",
        json={"name_kana": "abc"}),
    Bad("short-password", "aadmin", "POST", "/api/v1/tenants/union-a/members", 422, "password",
        json=member(password="short")),
    Bad("login-id-with-space", "aadmin", "POST", "/api/v1/tenants/union-a/members", 422, "login_id",
        json=member(login_id="a 9")),
    Bad("unit-kind-unknown", "aadmin", "POST", "/api/v1/tenants/union-a/units", 422, "kind",
        json={"name": "銀河", "kind": "galaxy"}),
    Bad("union-unit-of-federation-kind", "aadmin", "POST", "/api/v1/tenants/union-a/units", 422, "kind",
        json={"name": "ブロック", "kind": "block"}),
    Bad("council-without-block", "fadmin", "POST", "/api/v1/tenants/fed/units", 422, "parent_id",
        json={"name": "県協", "kind": "council", "prefecture": "13"}),
    Bad("council-without-prefecture", "fadmin", "POST", "/api/v1/tenants/fed/units", 422, "prefecture",
        json={"name": "県協", "kind": "council", "parent_id": "@block"}),
    Bad("prefecture-48", "fadmin", "POST", "/api/v1/tenants/fed/units", 422, "prefecture",
        json={"name": "県協", "kind": "council", "parent_id": "@block", "prefecture": "48"}),
    Bad("prefecture-on-a-block", "fadmin", "POST", "/api/v1/tenants/fed/units", 422, "prefecture",
        json={"name": "ブロック", "kind": "block", "prefecture": "13"}),
    Bad("status-unknown", "aadmin", "PATCH", "/api/v1/tenants/union-a/members/a1", 422, "status",
        json={"status": "deleted"}),
    Bad("cascade-unknown", "aadmin", "PUT", "/api/v1/unions/union-a/affiliation/cascade", 422, "cascade",
        json={"cascade": "maybe"}),
    Bad("grant-derived-member-role", "aadmin", "POST", "/api/v1/tenants/union-a/roles", 422, "role",
        json={"login_id": "a1", "role": "member"}),
    Bad("grant-federation-role-in-union", "aadmin", "POST", "/api/v1/tenants/union-a/roles", 422, "role",
        json={"login_id": "a1", "role": "fed_admin"}),
    Bad("grant-to-user-of-another-tenant", "aadmin", "POST", "/api/v1/tenants/union-a/roles", 422, "login_id",
        json={"login_id": "b1", "role": "union_editor"}),
    Bad("unit-editor-without-unit", "fadmin", "POST", "/api/v1/tenants/fed/roles", 422, "unit_id",
        json={"login_id": "staff", "role": "unit_editor"}),
    Bad("member-in-another-unions-branch", "aadmin", "POST", "/api/v1/tenants/union-a/members", 422, "unit_id",
        json=member(unit_id="@union-b:branch")),
    Bad("invite-unknown-union", "fadmin", "POST", "/api/v1/federations/fed/affiliations", 422, "union",
        json={"union": "union-zzz", "council_id": "@council"}),
    Bad("invite-to-a-block", "fadmin", "POST", "/api/v1/federations/fed/affiliations", 422, "council_id",
        json={"union": "union-c", "council_id": "@block"}),
    Bad("invite-to-a-union-branch", "fadmin", "POST", "/api/v1/federations/fed/affiliations", 422, "council_id",
        json={"union": "union-c", "council_id": "@union-c:branch"}),
    # --- missing required fields
    Bad("member-without-password", "aadmin", "POST", "/api/v1/tenants/union-a/members", 422, "password",
        json=member(password=...)),
    Bad("invite-without-council", "fadmin", "POST", "/api/v1/federations/fed/affiliations", 422, "council_id",
        json={"union": "union-c"}),
    Bad("tenant-without-kind", "ops", "POST", "/api/v1/tenants", 422, "kind", json={"slug": "union-new", "name": "x"}),
    Bad("login-without-password", "anonymous", "POST", "/api/v1/auth/login", 422, "password",
        json={"tenant": "union-a", "login_id": "a1"}),
    Bad("cascade-empty-object", "aadmin", "PUT", "/api/v1/unions/union-a/affiliation/cascade", 422, "cascade",
        json={}),
    Bad("revoke-without-body", "aadmin", "DELETE", "/api/v1/tenants/union-a/roles", 422, "login_id"),
    # --- conflicts name the field too
    Bad("tenant-slug-taken", "ops", "POST", "/api/v1/tenants", 409, "slug",
        json={"slug": "union-a", "name": "二重", "kind": "union"}),
    Bad("login-id-taken", "aadmin", "POST", "/api/v1/tenants/union-a/members", 409, "login_id",
        json=member(login_id="a1")),
    # --- cursors and query strings
    Bad("members-cursor-garbage", "aadmin", "GET", "/api/v1/tenants/union-a/members?cursor=not-a-cursor!", 400,
        "cursor"),
    Bad("members-cursor-wrong-shape", "aadmin", "GET", "/api/v1/tenants/union-a/members?cursor=WyJhIiwiYiJd", 400,
        "cursor"),
    Bad("members-cursor-not-json", "aadmin", "GET", "/api/v1/tenants/union-a/members?cursor=AAAA", 400, "cursor"),
    Bad("audit-log-cursor-garbage", "aud", "GET", "/api/v1/audit/log?cursor=%%%", 400, "cursor"),
    Bad("audit-log-cursor-string-seq", "aud", "GET", "/api/v1/audit/log?cursor=WyJ4Il0", 400, "cursor"),
    Bad("members-limit-zero", "aadmin", "GET", "/api/v1/tenants/union-a/members?limit=0", 422, "limit"),
    Bad("members-limit-101", "aadmin", "GET", "/api/v1/tenants/union-a/members?limit=101", 422, "limit"),
    Bad("members-limit-word", "aadmin", "GET", "/api/v1/tenants/union-a/members?limit=many", 422, "limit"),
    Bad("audit-since-not-a-date", "aud", "GET", "/api/v1/audit/log?since=yesterday", 422, "since"),
    Bad("audit-check-unknown-object", "aud", "GET",
        "/api/v1/audit/check?subject=user:union-a/a1&tenant=union-a&object=secrets&action=read", 422, "object"),
    Bad("audit-check-unknown-action", "aud", "GET",
        "/api/v1/audit/check?subject=user:union-a/a1&tenant=union-a&object=notices&action=fly", 422, "action"),
    Bad("audit-check-bad-subject", "aud", "GET",
        "/api/v1/audit/check?subject=a1&tenant=union-a&object=notices&action=read", 422, "subject"),
    # An unknown federation login is an error; an unknown union login is answered as any member (F1, no probing).
    Bad("audit-check-unknown-user", "aud", "GET",
        "/api/v1/audit/check?subject=user:fed/zz9&tenant=union-a&object=notices&action=read", 422, "subject"),
    Bad("audit-check-unknown-role", "aud", "GET",
        "/api/v1/audit/check?subject=role:overlord&tenant=union-a&object=notices&action=read", 422, "subject"),
    Bad("audit-check-unknown-tenant", "aud", "GET",
        "/api/v1/audit/check?subject=user:union-a/a1&tenant=nowhere&object=notices&action=read", 422, "tenant"),
    Bad("audit-check-missing-action", "aud", "GET",
        "/api/v1/audit/check?subject=user:union-a/a1&tenant=union-a&object=notices", 422, "action"),
    Bad("who-can-unknown-tenant", "aud", "GET", "/api/v1/audit/who-can?tenant=nowhere&object=notices&action=read",
        422, "tenant"),
    # --- NUL characters, which PostgreSQL text cannot hold
    Bad("nul-in-login-id", "aadmin", "POST", "/api/v1/tenants/union-a/members", 422, "login_id",
        json=member(login_id="a\u00009")),
    Bad("nul-in-sign-in-tenant", "anonymous", "POST", "/api/v1/auth/login", 422, "tenant",
        json={"tenant": "union-a\u0000", "login_id": "a1", "password": "x" * 10}),
    Bad("nul-in-search", "aadmin", "GET", "/api/v1/tenants/union-a/members?q=a%00", 422, "q"),
    Bad("nul-in-path-login-id", "aadmin", "GET", "/api/v1/tenants/union-a/members/a%001", 400, "path"),
    Bad("nul-in-path-slug", "aadmin", "GET", "/api/v1/tenants/union%00a/units", 400, "path"),
    # --- a form post where JSON was expected: the required fields are named
    Bad("form-instead-of-json", "aadmin", "POST", "/api/v1/tenants/union-a/members", 422, "login_id",
        raw="login_id=x&password=y", content_type="application/x-www-form-urlencoded"),
    # --- numbers no id can be, inside bodies (ids are 32-bit columns): 422 naming where, never a driver overflow
    Bad("audience-unit-beyond-32-bits", "fadmin", "POST", "/api/v1/tenants/fed/notices", 422, "audience.units[0]",
        json={"title": "t", "body": "b", "category": "general", "audience": {"units": [2**40]}}),
    Bad("preview-unit-beyond-32-bits", "fadmin", "POST", "/api/v1/tenants/fed/notices/preview", 422,
        "audience.units[0]", json={"audience": {"units": [2**31]}}),
    Bad("relay-notice-beyond-32-bits", "aadmin", "POST", "/api/v1/unions/union-a/relays", 422, "notice_id",
        json={"notice_id": 2**40, "audience": {"all": True}}),
]


def _ids(w: World, value: Any) -> Any:
    """Symbolic unit names in a case ("@council", "@union-b:branch") become the ids of this world."""
    if isinstance(value, str) and value.startswith("@"):
        return w.ids[value[1:]]
    return value


def _send(w: World, case: Bad):  # type: ignore[no-untyped-def]
    api = w.anonymous() if SENDER[case.sender] is None else w.as_(*SENDER[case.sender])  # type: ignore[misc]
    if case.raw is not None:
        return api.client.open(case.path, method=case.method, data=case.raw, content_type=case.content_type,
                               headers=api._headers())
    if case.json is None:
        return getattr(api, case.method.lower())(case.path)
    body = case.json
    if isinstance(body, dict):
        body = {k: _ids(w, v) for k, v in body.items()}
    return getattr(api, case.method.lower())(case.path, json=body)


def assert_error_shape(response, status: int, field: str | None = None) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    text = response.get_data(as_text=True)
    assert response.status_code == status, text[:500]
    assert response.mimetype == "application/json"
    payload = response.get_json()
    assert set(payload) == {"error"}, payload
    error = payload["error"]
    assert set(error) == {"code", "message", "fields"}, error
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["fields"], dict)
    if field is not None:
        assert field in error["fields"], f"expected {field!r} named in {error}"
        assert error["fields"][field], error
    # No traceback, driver name or file system path of the installation may reach a client.
    for leak in ("Traceback", 'File "', "sqlalchemy", "psycopg", "sqlite3", str(PROJECT_ROOT), "site-packages"):
        assert leak not in text
    return error


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_a_4xx_naming_the_field(shared_world: World, case: Bad) -> None:
    assert_error_shape(_send(shared_world, case), case.status, case.field)


def test_unknown_field_error_names_only_the_unknown_field(world: World) -> None:
    r = world.as_("union-a", "aadmin").post("/api/v1/tenants/union-a/members", json=member(nickname="けん"))
    error = assert_error_shape(r, 422, "nickname")
    assert set(error["fields"]) == {"nickname"}
    assert "nickname" in error["message"]


def test_a_body_over_the_size_limit_is_413(world: World) -> None:
    api = world.as_("union-a", "aadmin")
    big = b'{"login_id": "' + b"x" * (26 * 1024 * 1024) + b'"}'
    r = api.client.post("/api/v1/tenants/union-a/members", data=big, content_type="application/json",
                        headers=api._headers())
    assert_error_shape(r, 413)


def test_a_refused_write_is_not_applied_even_in_part(world: World) -> None:
    """A body with one bad field changes nothing: the valid fields beside it are not saved."""
    admin = world.as_("union-a", "aadmin")
    r = admin.patch("/api/v1/tenants/union-a/members/a1", json={"display_name": "改名 済", "name_kana": "abc"})
    assert_error_shape(r, 422, "name_kana")
    assert admin.get("/api/v1/tenants/union-a/members/a1").get_json()["display_name"] == "A渡辺 恵"


WEIRD_VALUES = [None, True, 0, -1, 1.5, 10**40, 1e308, "", " ", "x" * 5000, "\u3000", [], {}, ["a"], {"a": 1},
                "<script>", "' OR 1=1 --", "\ud7ff", "😀" * 10]
FIELDS_BY_ENDPOINT = [
    ("ops", "POST", "/api/v1/tenants", {"slug": "union-new", "name": "新労組", "kind": "union"}),
    ("fadmin", "POST", "/api/v1/tenants/fed/units", {"name": "北海道ブロック", "kind": "block", "parent_id": None,
                                                     "prefecture": None}),
    ("aadmin", "POST", "/api/v1/tenants/union-a/members", {**MEMBER, "unit_id": None}),
    ("aadmin", "PATCH", "/api/v1/tenants/union-a/members/a2", {"status": "active", "unit_id": None,
                                                               "display_name": "青木 健", "name_kana": "あおき けん"}),
    ("aadmin", "POST", "/api/v1/tenants/union-a/roles", {"login_id": "a2", "role": "union_editor", "unit_id": None}),
    ("aadmin", "DELETE", "/api/v1/tenants/union-a/roles", {"login_id": "a2", "role": "union_editor",
                                                           "unit_id": None}),
    ("fadmin", "POST", "/api/v1/federations/fed/affiliations", {"union": "union-c", "council_id": 1}),
    ("aadmin", "PUT", "/api/v1/unions/union-a/affiliation/cascade", {"cascade": "opted_in"}),
    ("anonymous", "POST", "/api/v1/auth/login", {"tenant": "union-c", "login_id": "c1", "password": "wrong-pass-1"}),
]


def test_no_value_in_any_field_makes_a_500(world: World) -> None:
    """Every field of every body endpoint, given each odd value in turn: always a 2xx or a 4xx in the error shape."""
    failures = []
    for sender, method, path, valid in FIELDS_BY_ENDPOINT:
        api = world.anonymous() if SENDER[sender] is None else world.as_(*SENDER[sender])  # type: ignore[misc]
        for name in valid:
            for value in WEIRD_VALUES:
                r = getattr(api, method.lower())(path, json={**valid, name: value})
                if r.status_code >= 500 or (r.status_code >= 400 and "error" not in (r.get_json() or {})):
                    failures.append(f"{method} {path} {name}={value!r:.40}: {r.status_code}")
                elif r.status_code >= 400:
                    assert_error_shape(r, r.status_code)
    assert not failures, "\n".join(failures)


# --- the CLI: one line on stderr and a non-zero exit, never a traceback --------------------------------------------

@pytest.fixture(scope="module")
def cli_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("cli")
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "MUSUBI_DEBUG")}
    env.update(DATABASE_URL=f"sqlite:///{folder / 'musubi.db'}", MUSUBI_INSTANCE=str(folder),
               SECRET_KEY="test-secret-key-0123456789abcdef")
    for args in (["init-db"], ["tenant", "create", "union-x", "--name", "X労組", "--kind", "union"]):
        done = subprocess.run([sys.executable, "cli.py", *args], cwd=PROJECT, env=env, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    return env


CLI_CASES = {
    "slug-with-bang": (["tenant", "create", "BAD!", "--name", "x", "--kind", "union"], "slug"),
    "unknown-kind": (["tenant", "create", "union-y", "--name", "x", "--kind", "galaxy"], "--kind"),
    "missing-argument": (["tenant", "create"], "SLUG"),
    "unknown-tenant": (["user", "create", "nowhere", "u1", "--name", "名前", "--kana", "なまえ", "--password",
                        "Long-enough-1"], "nowhere"),
    "kana-in-romaji": (["user", "create", "union-x", "u1", "--name", "名前", "--kana", "namae", "--password",
                        "Long-enough-1"], "name_kana"),
    "audit-unknown-object": (["audit", "check", "user:union-x/nobody", "union-x", "secrets", "read"], "object"),
}


def test_cli_errors_are_one_line_on_stderr_and_a_non_zero_exit(cli_env: dict[str, str]) -> None:
    # Started together: each is a cold Python start, and they only read (or fail before writing).
    running = {name: subprocess.Popen([sys.executable, "cli.py", *args], cwd=PROJECT, env=cli_env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
               for name, (args, _) in CLI_CASES.items()}
    for name, proc in running.items():
        out, err = proc.communicate(timeout=60)
        expected_word = CLI_CASES[name][1]
        assert proc.returncode != 0, f"{name}: exit 0 with {out!r}"
        lines = err.splitlines()
        assert len(lines) == 1, f"{name}: {err!r}"
        assert expected_word in lines[0], f"{name}: {lines[0]!r}"
        assert "Traceback" not in err and "Error:" not in out


def test_cli_on_a_database_that_was_never_set_up_says_so_in_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "MUSUBI_DEBUG")}
    env.update(DATABASE_URL=f"sqlite:///{tmp_path / 'empty.db'}", MUSUBI_INSTANCE=str(tmp_path),
               SECRET_KEY="test-secret-key-0123456789abcdef")
    done = subprocess.run([sys.executable, "cli.py", "tenant", "create", "union-z", "--name", "Z", "--kind", "union"],
                          cwd=PROJECT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert len(done.stderr.splitlines()) == 1
    assert "init-db" in done.stderr
