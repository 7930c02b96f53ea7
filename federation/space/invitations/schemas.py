"""Request and response bodies for invitations and registration."""
from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from federation.schemas import StrictSchema, row_id, text


class InvitationIn(StrictSchema):
    unit_id = row_id(load_default=None, allow_none=True)
    label = text(min_len=0, max_len=100, load_default="")
    expires_at = fields.AwareDateTime(load_default=None)
    valid_days = fields.Integer(strict=True, load_default=None, validate=validate.Range(min=1, max=366))
    max_uses = fields.Integer(strict=True, load_default=None, allow_none=True,
                              validate=validate.Range(min=1, max=100_000))
    needs_approval = fields.Boolean(load_default=False)

    @validates_schema
    def _one_expiry(self, data: dict[str, Any], **kwargs: Any) -> None:
        # Both given, one would be silently ignored: the officer could print a flyer that expires another day.
        if data.get("expires_at") is not None and data.get("valid_days") is not None:
            raise ValidationError("give expires_at or valid_days, not both", field_name="valid_days")


class InvitationOut(StrictSchema):
    id = fields.Integer()
    unit_id = fields.Integer(allow_none=True)
    unit_name = fields.String(allow_none=True)
    label = fields.String()
    expires_at = fields.DateTime()
    max_uses = fields.Integer(allow_none=True)
    uses = fields.Integer()
    needs_approval = fields.Boolean()
    revoked_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()
    state = fields.String()
    token = fields.String()
    register_path = fields.String()


class InvitationList(StrictSchema):
    items = fields.List(fields.Nested(InvitationOut))


class UnitCount(StrictSchema):
    unit_id = fields.Integer(allow_none=True)
    unit_name = fields.String(allow_none=True)
    registered = fields.Integer()
    active = fields.Integer()
    pending = fields.Integer()


class RegistrationReport(StrictSchema):
    units = fields.List(fields.Nested(UnitCount))
    total = fields.Integer()


class PendingRegistration(StrictSchema):
    registration_id = fields.Integer()
    login_id = fields.String()
    display_name = fields.String()
    name_kana = fields.String()
    unit_id = fields.Integer(allow_none=True)
    registered_at = fields.DateTime()


class PendingList(StrictSchema):
    items = fields.List(fields.Nested(PendingRegistration))


class RegisterIn(StrictSchema):
    login_id = text(max_len=254, required=True)
    display_name = text(max_len=100, required=True)
    name_kana = text(max_len=100, required=True)
    password = text(max_len=200, required=True)


class InvitationInfo(StrictSchema):
    union = fields.String()
    union_name = fields.String()
    unit_name = fields.String(allow_none=True)
    needs_approval = fields.Boolean()
    expires_at = fields.DateTime()


class Registered(StrictSchema):
    login_id = fields.String()
    display_name = fields.String()
    union = fields.String()
    unit_id = fields.Integer(allow_none=True)
    status = fields.String()
