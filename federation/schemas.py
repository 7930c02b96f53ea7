"""Schema pieces shared by every part of the API."""
from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate


class StrictSchema(Schema):
    """Unknown fields are rejected (422), never ignored (SPEC)."""

    class Meta:
        unknown = RAISE


def text(min_len: int = 1, max_len: int = 200, *, validate_also=None, **kw) -> fields.String:  # type: ignore[no-untyped-def]
    checks = [validate.Length(min=min_len, max=max_len)] + ([validate_also] if validate_also else [])
    return fields.String(validate=checks, **kw)


class PageQuery(StrictSchema):
    cursor = fields.String(load_default=None, validate=validate.Length(max=200))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=100))
