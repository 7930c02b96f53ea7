"""Hostile body shapes sent to every JSON-body operation of the OpenAPI document as a signed-in admin: each is a 4xx
in the one error shape naming the field at fault, never a 5xx. Read from the document, so a new operation is swept
without anyone adding it here. Also: cursors a client forged, and error answers whose Content-Length matches the
bytes sent."""
from __future__ import annotations

import base64
import json
import re

import pytest
from conftest import World

API_PARAM = re.compile(r"\{(\w+)\}")
SKIP_OPERATIONS = {("POST", "/api/v1/auth/logout")}  # would end the token the sweep uses

HUGE_INT = "9" * 5000  # past Python's int-string conversion limit
SHAPES = {
    "lone surrogate": '"\\ud800"',
    "5000-digit integer": HUGE_INT,
    "2**63": str(2**63),
    "2**31": str(2**31),
    "year 1": '"0001-01-01"',
    "year 9999": '"9999-12-31T23:59:59+00:00"',
    "naive year 9999": '"9999-12-31T23:59:59"',
}


def _must_refuse(shape: str, prop: dict) -> bool:
    """Whether the shape is bad input for this field whatever the rest of the body says."""
    if shape in ("lone surrogate", "5000-digit integer", "2**63"):
        return True
    if shape == "2**31":
        return prop.get("type") == "integer"
    return prop.get("format") in ("date", "date-time")


def _operations(world: World) -> list[tuple[str, str, dict]]:
    doc = world.client.get("/api/v1/openapi.json").get_json()
    found = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if method not in ("post", "put", "patch", "delete"):
                continue
            content = (op.get("requestBody") or {}).get("content", {})
            if "application/json" not in content or (method.upper(), path) in SKIP_OPERATIONS:
                continue
            schema = content["application/json"]["schema"]
            if "$ref" in schema:
                schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
            found.append((method.upper(), _filled(path), schema.get("properties", {})))
    return found


def _filled(template: str) -> str:
    """Path parameters filled with real-looking values: a union's slug, or the first row's id."""
    return API_PARAM.sub(lambda m: "union-a" if m.group(1) in ("slug", "tenant") else "1", template)


def _send(world: World, method: str, path: str, raw: str | bytes):  # type: ignore[no-untyped-def]
    api = world.as_("union-a", "aadmin") if "/tenants/union-a" in path else world.as_("fed", "fadmin")
    return world.client.open(path, method=method, data=raw, content_type="application/json",
                             headers={"Authorization": f"Bearer {api.token}"})


def _refusal(r) -> dict:  # type: ignore[no-untyped-def]
    body = r.get_json(silent=True) or {}
    return body.get("error") or {}


def test_every_field_of_every_json_operation_refuses_hostile_values_naming_the_field(world: World) -> None:
    operations = _operations(world)
    assert len(operations) >= 20
    failures: list[str] = []
    for method, path, properties in operations:
        for name, prop in properties.items():
            for shape, literal in SHAPES.items():
                r = _send(world, method, path, f'{{"{name}": {literal}}}')
                error = _refusal(r)
                what = f"{method} {path} {name}={shape}: {r.status_code}"
                if r.status_code >= 500 or (r.status_code >= 400 and not error):
                    failures.append(f"{what} {r.get_data(as_text=True)[:200]}")
                elif _must_refuse(shape, prop) and (not 400 <= r.status_code < 500 or name not in error["fields"]):
                    failures.append(f"{what} does not refuse it naming the field: {r.get_data(as_text=True)[:200]}")
    assert not failures, "\n".join(failures[:60])


@pytest.mark.parametrize("shape", ["deep array", "deep object", "over 1 MiB", "huge number", "surrogate key", "nan"])
def test_every_json_operation_refuses_hostile_whole_bodies(world: World, shape: str) -> None:
    depth = 100_000
    raw = {
        "deep array": "[" * depth + "]" * depth,
        "deep object": '{"a":' * depth + "1" + "}" * depth,
        "over 1 MiB": json.dumps({"title": "x" * (1024 * 1024 + 10)}),
        "huge number": HUGE_INT,
        "surrogate key": '{"\\udc00": 1}',
        "nan": '{"limit": NaN}',
    }[shape]
    expected = {"deep array": 400, "deep object": 400, "over 1 MiB": 413}.get(shape, 422)
    failures = []
    for method, path, _ in _operations(world):
        r = _send(world, method, path, raw)
        if r.status_code != expected or not _refusal(r):
            failures.append(f"{method} {path}: {r.status_code} {r.get_data(as_text=True)[:200]}")
    assert not failures, "\n".join(failures)


def _cursor(*key: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


@pytest.mark.parametrize("cursor", [
    _cursor(2**63), _cursor(-(2**63) - 1), _cursor(10**30), _cursor("2026-01-01T00:00:00", 1),
    _cursor("0001-01-01T00:00:00+00:00", 1), _cursor("2026-01-01T00:00:00+00:00", 2**63), _cursor(True),
    _cursor("9999-12-31T23:59:59+00:00", 1),
])
def test_forged_cursors_are_a_400_naming_the_cursor(world: World, cursor: str) -> None:
    doc = world.client.get("/api/v1/openapi.json").get_json()
    paths = [p for p, ops in doc["paths"].items() if "get" in ops
             and any(q.get("name") == "cursor" for q in ops["get"].get("parameters", []))]
    assert paths
    failures = []
    for template in paths:
        path = _filled(template)
        api = world.as_("union-a", "aadmin")
        r = api.get(path, query_string={"cursor": cursor})
        if r.status_code >= 500 or (r.status_code == 200 and "inbox" in path) \
                or (r.status_code == 400 and "cursor" not in _refusal(r).get("fields", {})):
            failures.append(f"GET {path}: {r.status_code} {r.get_data(as_text=True)[:200]}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("case", ["404", "405", "413", "400"])
def test_error_answers_carry_the_length_of_their_own_body(world: World, case: str) -> None:
    api = world.as_("fed", "fadmin")
    headers = {"Authorization": f"Bearer {api.token}"}
    r = {
        "404": lambda: world.client.get("/api/v1/no-such-thing", headers=headers),
        "405": lambda: world.client.delete("/api/v1/openapi.json", headers=headers),
        "413": lambda: world.client.post("/api/v1/auth/login", data=b'{"a":"' + b"x" * (1024 * 1024 + 1) + b'"}',
                                         content_type="application/json"),
        "400": lambda: world.client.post("/api/v1/auth/login", data=b"{not json", content_type="application/json"),
    }[case]()
    assert r.status_code == int(case)
    body = r.get_data()
    assert int(r.headers["Content-Length"]) == len(body), (r.headers, body)
    assert r.mimetype == "application/json"
    assert _refusal(r)["code"]
