"""Opaque keyset cursors: the client hands back what we gave it; a forged or garbled one is a 400, not a 500."""
from __future__ import annotations

import base64
import json
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
        return tuple(t(v) if not isinstance(v, t) else v for t, v in zip(types, values, strict=True))
    except (ValueError, TypeError, UnicodeDecodeError):
        raise APIError(400, "cursor: not a cursor this service gave out", fields={"cursor": ["invalid"]}) from None
