"""Opaque keyset cursors: the client hands back what we gave it; a forged or garbled one is a 400, not a 500."""
from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

from federation.errors import APIError


def encode_cursor(*key: Any) -> str:
    raw = json.dumps(list(key), separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str | None, types: tuple[type, ...]) -> tuple[Any, ...] | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
        if not isinstance(values, list) or len(values) != len(types):
            raise ValueError
        return tuple(_value(t, v) for t, v in zip(types, values, strict=True))
    except (ValueError, TypeError, UnicodeDecodeError, OverflowError, RecursionError):
        raise APIError(400, "cursor: not a cursor this service gave out", fields={"cursor": ["invalid"]}) from None


INT64 = 2**63 - 1


def _value(kind: type, value: Any) -> Any:
    """One key of a cursor, as the query will bind it: an integer a 64-bit column can compare with, an aware
    timestamp (a naive one cannot be compared with the stored UTC ones), text that encodes."""
    if kind is int:
        if not isinstance(value, int) or isinstance(value, bool) or not -INT64 - 1 <= value <= INT64:
            raise ValueError
        return value
    if kind is datetime:
        if not isinstance(value, str):
            raise ValueError
        at = datetime.fromisoformat(value)
        if at.tzinfo is None or not 1 < at.year < 9999:
            raise ValueError
        return at
    if kind is str:
        if not isinstance(value, str):
            raise ValueError
        value.encode("utf-8")  # a lone surrogate raises UnicodeEncodeError, a ValueError
        return value
    return value if isinstance(value, kind) else kind(value)


def page_key(raw: str | None) -> int | None:
    """A page's "before"/"after" id from a query string: an integer a 64-bit column can compare with, or None (the
    first page) for anything else, however long or large."""
    if not raw or len(raw) > 20:
        return None
    try:
        value = int(raw)
    except ValueError:
        return None
    return value if -INT64 - 1 <= value <= INT64 else None
