from __future__ import annotations

import json

from marshmallow import fields, validate

from federation.dbutil import MAX_ROW_ID
from federation.schemas import StrictSchema, text
from federation.space.documents.service import latest_of


class DocumentForm(StrictSchema):
    """The multipart fields beside `file` (the file itself is read from the upload, not from this schema)."""

    title = text(1, 200, required=True)
    folder = text(1, 100, load_default=None)
    tags = fields.String(load_default=None, validate=validate.Length(max=1100),
                         metadata={"description": "comma-separated"})
    audience = fields.String(load_default=None, validate=validate.Length(max=10_000),
                             metadata={"description": 'JSON: {"all": true} (default) or {"units": [ids]}'})


class DocumentListQuery(StrictSchema):
    folder = text(1, 100, load_default=None)
    tag = text(1, 50, load_default=None)


class DownloadQuery(StrictSchema):
    version = fields.Integer(load_default=None, validate=validate.Range(min=1, max=MAX_ROW_ID))


class VersionOut(StrictSchema):
    version = fields.Integer()
    filename = fields.String()
    content_type = fields.String()
    size = fields.Integer()
    sha256 = fields.String()
    created_at = fields.DateTime()


class DocumentOut(StrictSchema):
    id = fields.Integer()
    title = fields.String()
    folder = fields.String(allow_none=True)
    tags = fields.Function(lambda d: json.loads(d.tags))
    audience = fields.Function(lambda d: json.loads(d.audience))
    latest_version = fields.Integer()
    latest = fields.Function(lambda d: VersionOut().dump(latest_of(d)))
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class DocumentList(StrictSchema):
    items = fields.List(fields.Nested(DocumentOut))


class VersionList(StrictSchema):
    items = fields.List(fields.Nested(VersionOut))
