"""Reading a JSON request body without letting its shape reach the server as an error.

Every body the API parses comes through here (webargs, via flask-smorest's Blueprint). What Python's json module or
the database would choke on is refused as bad input first: a body over JSON_BODY_LIMIT is a 413; nesting too deep
for the parser is a 400; an integer too long to convert or too large for a 64-bit column, a non-finite number, or
a string holding a lone UTF-16 surrogate (no encoder accepts it) is a 422 naming the field.
"""
from __future__ import annotations

import json
import math
from typing import Any

from flask import Request
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request

JSON_BODY_LIMIT = 1024 * 1024  # a JSON body; file uploads have their own limit (MAX_CONTENT_LENGTH)
MAX_INT_DIGITS = 20  # more than any 64-bit integer needs; Python refuses to convert past 4300
INT64 = 2**63 - 1


class _TooLong:
    """Stands in for an integer literal too long to convert, so the walk below can name its field."""


TOO_LONG = _TooLong()


def _parse_int(literal: str) -> int | _TooLong:
    return int(literal) if len(literal.lstrip("-")) <= MAX_INT_DIGITS else TOO_LONG


def _error(status: int, message: str, fields: dict[str, list[str]]) -> Exception:
    # Imported here: the extensions module installs this parser, and federation.errors imports what needs them.
    from federation.errors import APIError

    return APIError(status, message, fields=fields)


def too_large() -> Exception:
    return _error(413, f"a JSON body may be at most {JSON_BODY_LIMIT} bytes", {"json": ["too large"]})


def loads(raw: bytes) -> Any:
    if len(raw) > JSON_BODY_LIMIT:
        raise too_large()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _error(400, "the request body is not valid JSON", {"json": ["not UTF-8"]}) from None
    try:
        data = json.loads(text, parse_int=_parse_int)
    except RecursionError:
        raise _error(400, "the request body is nested too deeply", {"json": ["nested too deeply"]}) from None
    except ValueError:
        raise _error(400, "the request body is not valid JSON", {"json": ["Invalid JSON body."]}) from None
    bad = hostile_values(data)
    if bad:
        raise _error(422, "; ".join(f"{k}: {v[0]}" for k, v in bad.items()), bad)
    return data


def hostile_values(data: Any) -> dict[str, list[str]]:
    """Field path -> message for every value no column or encoder could take. Iterative: depth costs no stack."""
    bad: dict[str, list[str]] = {}
    stack: list[tuple[str, Any]] = [("", data)]
    while stack and len(bad) < 20:
        path, value = stack.pop()
        message = _problem(value)
        if message:
            bad[path or "json"] = [message]
        elif isinstance(value, dict):
            for key, item in value.items():
                sub = f"{path}.{key}" if path else str(key)
                if _has_surrogate(key):
                    bad[path or "json"] = ["a field name is not valid Unicode text (lone surrogate)"]
                    continue
                stack.append((sub, item))
        elif isinstance(value, list):
            stack.extend((f"{path}.{i}" if path else str(i), item) for i, item in enumerate(value))
    return bad


def _problem(value: Any) -> str | None:
    if value is TOO_LONG:
        return "number out of range"
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and not -INT64 - 1 <= value <= INT64:
        return "number out of range"
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number"
    if isinstance(value, str) and _has_surrogate(value):
        return "not valid Unicode text (lone surrogate)"
    return None


def _has_surrogate(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


class BodyParser(FlaskParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._schemas: dict[type, Any] = {}

    def _get_schema(self, argmap: Any, req: Request) -> Any:
        """One instance per schema class, made on first use. webargs builds a new one for every request, and making
        a schema's fields was a tenth of a cached inbox request; our schemas keep nothing of a load on the instance,
        so one instance serves every request and thread."""
        if isinstance(argmap, type):
            found = self._schemas.get(argmap)
            if found is None:
                found = self._schemas.setdefault(argmap, super()._get_schema(argmap, req))
            return found
        return super()._get_schema(argmap, req)

    def _raw_load_json(self, req: Request) -> Any:
        if not is_json_request(req):
            return core.missing
        if (req.content_length or 0) > JSON_BODY_LIMIT:
            raise too_large()
        return loads(req.get_data(cache=True))
