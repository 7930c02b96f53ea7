from __future__ import annotations

from marshmallow import ValidationError
from marshmallow import fields as mf

from federation.notices.schemas import AudienceField
from federation.schemas import StrictSchema, text


class AnyList(mf.Field):
    """Checked in depth by the service (field by field, naming fields[i].key); here only that it is a list."""

    def _deserialize(self, value, attr, data, **kwargs):  # type: ignore[no-untyped-def]
        if not isinstance(value, list):
            raise ValidationError("a list of fields {key, label, type, choices?, unit?}")
        return value


class AnyObject(mf.Field):
    def _deserialize(self, value, attr, data, **kwargs):  # type: ignore[no-untyped-def]
        if not isinstance(value, dict):
            raise ValidationError("an object {key: value}")
        return value


class ReportIn(StrictSchema):
    title = text(1, 200, required=True)
    fields = AnyList(required=True)
    due_at = mf.AwareDateTime(required=True)
    audience = AudienceField(required=True)


class ReportOut(StrictSchema):
    id = mf.Integer()
    title = mf.String()
    fields = mf.Raw()
    audience = AudienceField()
    due_at = mf.DateTime()
    closed_at = mf.DateTime(allow_none=True)
    created_at = mf.DateTime()
    is_open = mf.Boolean()


class ReportList(StrictSchema):
    items = mf.List(mf.Nested(ReportOut))


class ReportAnswerIn(StrictSchema):
    values = AnyObject(required=True)


class ReportAnswerOut(StrictSchema):
    version = mf.Integer()
    submitted_at = mf.DateTime()
    values = mf.Raw()


class UnionReportOut(StrictSchema):
    id = mf.Integer()
    federation = mf.String()
    federation_name = mf.String()
    title = mf.String()
    fields = mf.Raw()
    due_at = mf.DateTime()
    closed_at = mf.DateTime(allow_none=True)
    is_open = mf.Boolean()
    answer = mf.Nested(ReportAnswerOut, allow_none=True)
    versions = mf.List(mf.Nested(ReportAnswerOut))


class UnionReportList(StrictSchema):
    items = mf.List(mf.Nested(UnionReportOut))


class ReportAnswersOut(StrictSchema):
    report_id = mf.Integer()
    addressed = mf.Integer()
    answered = mf.Integer()
    items = mf.Raw()
    unanswered = mf.Raw()
    councils = mf.Raw()
    blocks = mf.Raw()
    overall = mf.Raw()


class ReportReminderOut(StrictSchema):
    report_id = mf.Integer()
    unions = mf.Integer()
