"""Request and response bodies for application types and applications."""
from __future__ import annotations

from marshmallow import fields, validate

from federation.dbutil import MAX_ROW_ID
from federation.schemas import StrictSchema, row_id, text
from federation.space.applications.models import FIELD_KINDS, STATUSES

# Query strings carry text: the id is parsed, not strictly typed, but still kept to the database's 32 bits.
ID_RANGE = validate.Range(min=1, max=MAX_ROW_ID)
FIELD_KEY = validate.Regexp(r"^[a-z][a-z0-9_]{0,39}\Z", error="a-z, 0-9 and _, starting with a letter, up to 40")


class FieldSpec(StrictSchema):
    key = fields.String(required=True, validate=FIELD_KEY)
    label = text(max_len=100, required=True)
    kind = fields.String(required=True, validate=validate.OneOf(FIELD_KINDS))
    required = fields.Boolean(load_default=False)
    choices = fields.List(text(max_len=100), validate=validate.Length(min=1, max=50), load_default=None)


class ApplicationTypeIn(StrictSchema):
    name = text(max_len=100, required=True)
    description = text(min_len=0, max_len=2000, load_default="")
    # Not called `fields`: that name belongs to marshmallow on every schema.
    form_fields = fields.List(fields.Nested(FieldSpec), required=True, data_key="fields",
                              validate=validate.Length(min=1, max=30))
    approver_role = text(max_len=40, load_default="union_admin")
    second_approver_role = text(max_len=40, load_default=None, allow_none=True)


class ApplicationTypeOut(StrictSchema):
    id = fields.Integer()
    name = fields.String()
    description = fields.String()
    form_fields = fields.List(fields.Dict(), data_key="fields")
    approver_role = fields.String()
    second_approver_role = fields.String(allow_none=True)
    active = fields.Boolean()
    created_at = fields.DateTime()


class ApplicationTypeList(StrictSchema):
    items = fields.List(fields.Nested(ApplicationTypeOut))


class ApplicationIn(StrictSchema):
    type_id = row_id(required=True)
    values = fields.Dict(keys=fields.String(), required=True)


class DecisionIn(StrictSchema):
    comment = text(min_len=0, max_len=2000, load_default="")


class RejectIn(StrictSchema):
    # A rejection without a reason leaves the member guessing; the comment is what they read.
    comment = text(max_len=2000, required=True)


class ApplicantOut(StrictSchema):
    login_id = fields.String()
    display_name = fields.String()
    name_kana = fields.String()


class StepOut(StrictSchema):
    actor = fields.Nested(ApplicantOut)
    at = fields.DateTime()
    from_status = fields.String(allow_none=True, data_key="from")
    to_status = fields.String(data_key="to")
    comment = fields.String()


class AttachmentOut(StrictSchema):
    id = fields.Integer()
    filename = fields.String()
    content_type = fields.String()
    size = fields.Integer()


class ApplicationOut(StrictSchema):
    id = fields.Integer()
    type_id = fields.Integer()
    type_name = fields.String()
    applicant = fields.Nested(ApplicantOut)
    values = fields.Dict()
    status = fields.String()
    submitted_at = fields.DateTime()
    updated_at = fields.DateTime()
    next_approver_role = fields.String(allow_none=True)
    history = fields.List(fields.Nested(StepOut))
    attachments = fields.List(fields.Nested(AttachmentOut))


class ApplicationList(StrictSchema):
    items = fields.List(fields.Nested(ApplicationOut))


class ApplicationQuery(StrictSchema):
    view = fields.String(load_default="mine", validate=validate.OneOf(("mine", "to_approve", "approvable")))
    status = fields.String(load_default=None, validate=validate.OneOf(STATUSES))
    type_id = fields.Integer(load_default=None, validate=ID_RANGE)


class ExportQuery(StrictSchema):
    type_id = fields.Integer(load_default=None, validate=ID_RANGE)
    status = fields.String(load_default=None, validate=validate.OneOf(STATUSES))
