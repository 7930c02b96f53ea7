from __future__ import annotations

from marshmallow import ValidationError, fields

from federation.notices.schemas import AudienceField
from federation.schemas import StrictSchema, text


class AnyList(fields.Field):
    """Checked in depth by the service (field by field, naming fields[i].key); here only that it is a list."""

    def _deserialize(self, value, attr, data, **kwargs):  # type: ignore[no-untyped-def]
        if not isinstance(value, list):
            raise ValidationError("a list of fields {key, label, type, choices?, unit?}")
        return value


class AnyObject(fields.Field):
    def _deserialize(self, value, attr, data, **kwargs):  # type: ignore[no-untyped-def]
        if not isinstance(value, dict):
            raise ValidationError("an object {key: value}")
        return value


class ReportIn(StrictSchema):
    title = text(1, 200, required=True)
    fields = AnyList(required=True)
    due_at = fields.AwareDateTime(required=True)
    audience = AudienceField(required=True)


class ReportOut(StrictSchema):
    id = fields.Integer()
    title = fields.String()
    fields = fields.Raw()
    audience = AudienceField()
    due_at = fields.DateTime()
    closed_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()
    is_open = fields.Boolean()


class ReportList(StrictSchema):
    items = fields.List(fields.Nested(ReportOut))


class AnswerIn(StrictSchema):
    values = AnyObject(required=True)


class AnswerOut(StrictSchema):
    version = fields.Integer()
    submitted_at = fields.DateTime()
    values = fields.Raw()


class UnionReportOut(StrictSchema):
    id = fields.Integer()
    federation = fields.String()
    federation_name = fields.String()
    title = fields.String()
    fields = fields.Raw()
    due_at = fields.DateTime()
    closed_at = fields.DateTime(allow_none=True)
    is_open = fields.Boolean()
    answer = fields.Nested(AnswerOut, allow_none=True)
    versions = fields.List(fields.Nested(AnswerOut))


class UnionReportList(StrictSchema):
    items = fields.List(fields.Nested(UnionReportOut))


class AnswersOut(StrictSchema):
    report_id = fields.Integer()
    addressed = fields.Integer()
    answered = fields.Integer()
    items = fields.Raw()
    unanswered = fields.Raw()
    councils = fields.Raw()
    blocks = fields.Raw()
    overall = fields.Raw()


class ReminderOut(StrictSchema):
    report_id = fields.Integer()
    unions = fields.Integer()
