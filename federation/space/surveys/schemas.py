from __future__ import annotations

import json

from marshmallow import ValidationError, fields, validate, validates_schema

from federation.schemas import StrictSchema
from federation.schemas import text as text_field
from federation.space.surveys.models import KINDS


class QuestionIn(StrictSchema):
    kind = fields.String(required=True, validate=validate.OneOf(KINDS))
    text = text_field(1, 500, required=True)
    options = fields.List(text_field(1, 200), load_default=list, validate=validate.Length(max=30))
    required = fields.Boolean(load_default=True)

    @validates_schema
    def _options_fit_kind(self, data, **_kw):  # type: ignore[no-untyped-def]
        options = data.get("options") or []
        if data.get("kind") == "text" and options:
            raise ValidationError("a free-text question has no options", "options")
        if data.get("kind") in ("single", "multiple"):
            if len(options) < 2:
                raise ValidationError("a choice question needs at least 2 options", "options")
            if len(set(options)) != len(options):
                raise ValidationError("options must differ", "options")


class SurveyIn(StrictSchema):
    title = text_field(1, 200, required=True)
    description = text_field(0, 5000, load_default="")
    anonymous = fields.Boolean(load_default=False)
    opens_at = fields.AwareDateTime(required=True)
    closes_at = fields.AwareDateTime(required=True)
    questions = fields.List(fields.Nested(QuestionIn), required=True, validate=validate.Length(min=1, max=100))

    @validates_schema
    def _closes_after_opening(self, data, **_kw):  # type: ignore[no-untyped-def]
        if data.get("opens_at") and data.get("closes_at") and data["closes_at"] <= data["opens_at"]:
            raise ValidationError("must be after opens_at", "closes_at")


class AnswerIn(StrictSchema):
    answers = fields.Dict(keys=fields.String(validate=validate.Length(max=12)), values=fields.Raw(allow_none=True),
                          required=True, metadata={"description": "{question_id: option index | [indexes] | text}"})


class QuestionOut(StrictSchema):
    id = fields.Integer()
    position = fields.Integer()
    kind = fields.String()
    text = fields.String()
    options = fields.Function(lambda q: json.loads(q.options))
    required = fields.Boolean()


class SurveyBrief(StrictSchema):
    id = fields.Integer()
    title = fields.String()
    description = fields.String()
    anonymous = fields.Boolean()
    opens_at = fields.DateTime()
    closes_at = fields.DateTime()
    is_open = fields.Boolean()
    answered = fields.Boolean()
    created_at = fields.DateTime()


class SurveyOut(SurveyBrief):
    questions = fields.List(fields.Nested(QuestionOut))


class SurveyList(StrictSchema):
    items = fields.List(fields.Nested(SurveyBrief))


class AnswerAck(StrictSchema):
    survey_id = fields.Integer()
    answered = fields.Boolean()


class OptionCount(StrictSchema):
    option = fields.String()
    count = fields.Integer(allow_none=True, metadata={"description": "null while an anonymous survey has too few "
                                                                     "respondents to show counts"})


class TextAnswer(StrictSchema):
    text = fields.String()
    login_id = fields.String(allow_none=True)
    display_name = fields.String(allow_none=True)


class QuestionResult(StrictSchema):
    id = fields.Integer()
    kind = fields.String()
    text = fields.String()
    answered = fields.Integer()
    options = fields.List(fields.Nested(OptionCount))
    texts = fields.List(fields.Nested(TextAnswer))
    withheld = fields.Boolean(metadata={"description": "counts and texts held back: too few respondents"})


class UnitRate(StrictSchema):
    unit_id = fields.Integer(allow_none=True)
    unit = fields.String()
    members = fields.Integer()
    answered = fields.Integer(allow_none=True)
    rate = fields.Float(allow_none=True)
    withheld = fields.Boolean(metadata={"description": "answered and rate held back: too few respondents"})


class ResultsOut(StrictSchema):
    survey_id = fields.Integer()
    anonymous = fields.Boolean()
    members = fields.Integer()
    answered = fields.Integer()
    rate = fields.Float()
    min_respondents = fields.Integer(allow_none=True, metadata={
        "description": "anonymous surveys: fewer respondents than this, in a unit or overall, and the figures are "
                       "withheld"})
    withheld = fields.Boolean()
    units = fields.List(fields.Nested(UnitRate))
    questions = fields.List(fields.Nested(QuestionResult))


class ReminderOut(StrictSchema):
    survey_id = fields.Integer()
    members = fields.Integer(metadata={"description": "members who have not answered, as counted now"})
