"""Schema pieces shared by every part of the API."""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, pre_load, validate

from federation.dbutil import MAX_ROW_ID


class StrictSchema(Schema):
    """Unknown fields are rejected (422), never ignored (SPEC)."""

    class Meta:
        unknown = RAISE

    def on_bind_field(self, field_name: str, field_obj: fields.Field) -> None:
        # Bounds every schema gets without each field asking: an integer without its own Range fits a 32-bit
        # column (a larger one is bad input, not an overflow in the driver), and a date or time lies in years
        # the service's arithmetic and timezone conversions can reach without overflowing.
        super().on_bind_field(field_name, field_obj)
        if isinstance(field_obj, fields.Integer) and not _has(field_obj, validate.Range):
            field_obj.validators.append(validate.Range(min=-INT32 - 1, max=INT32))
        elif isinstance(field_obj, fields.Date | fields.DateTime | fields.NaiveDateTime):
            field_obj.validators.append(_plausible_year)

    @pre_load
    def _refuse_nul(self, data: Any, **_kw: Any) -> Any:
        # PostgreSQL text cannot hold NUL: refused here as bad input, not left to fail in the database as a 500.
        if isinstance(data, Mapping):
            bad = {key: ["must not contain NUL characters"] for key, value in data.items() if _has_nul(value)}
            if bad:
                raise ValidationError(bad)
        return data


INT32 = 2**31 - 1
FIRST_YEAR, LAST_YEAR = 1900, 2999


def _has(field_obj: fields.Field, kind: type) -> bool:
    return any(isinstance(v, kind) for v in field_obj.validators)


def _plausible_year(value: dt.date) -> None:
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise ValidationError(f"must be between the years {FIRST_YEAR} and {LAST_YEAR}")


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, Mapping):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    return False


def text(min_len: int = 1, max_len: int = 200, *, validate_also=None, **kw) -> fields.String:  # type: ignore[no-untyped-def]
    checks = [validate.Length(min=min_len, max=max_len)] + ([validate_also] if validate_also else [])
    return fields.String(validate=checks, **kw)


def row_id(**kw) -> fields.Integer:  # type: ignore[no-untyped-def]
    """A row id in a body. Ids are 32-bit in the database: a larger number is bad input (422), not an overflow in
    the driver (500)."""
    return fields.Integer(strict=True, validate=validate.Range(min=1, max=MAX_ROW_ID), **kw)


class PageQuery(StrictSchema):
    cursor = fields.String(load_default=None, validate=validate.Length(max=200))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=100))
