from __future__ import annotations

from marshmallow import fields, validate

from federation.schemas import PageQuery, StrictSchema, row_id, text


class UserOut(StrictSchema):
    id = fields.Integer()
    tenant = fields.Function(lambda u: u.tenant.slug)
    login_id = fields.String()
    display_name = fields.String()
    name_kana = fields.String()
    status = fields.String()
    unit_id = fields.Integer(allow_none=True)


class TenantIn(StrictSchema):
    slug = text(3, 40, required=True, validate_also=validate.Regexp(r"^[a-z0-9-]+\Z", error="only a-z, 0-9 and -"))
    name = text(1, 200, required=True)
    name_kana = text(1, 200, load_default=None, metadata={
        "description": "the name's reading in hiragana or katakana; unions are listed in 50-on order of it"})
    kind = fields.String(required=True, validate=validate.OneOf(["federation", "union"]))


class TenantOut(StrictSchema):
    id = fields.Integer()
    slug = fields.String()
    name = fields.String()
    name_kana = fields.String(allow_none=True)
    kind = fields.String()
    created_at = fields.DateTime()


class UnitIn(StrictSchema):
    name = text(1, 200, required=True)
    kind = fields.String(required=True, validate=validate.OneOf(["block", "council", "branch", "workplace"]))
    parent_id = row_id(allow_none=True, load_default=None)
    prefecture = fields.String(allow_none=True, load_default=None, validate=validate.Length(equal=2))
    position = fields.Integer(strict=True, allow_none=True, load_default=None, validate=validate.Range(min=0, max=9999),
                              metadata={"description": "order among its siblings; by default a council's prefecture "
                                                       "code, a block's region from north to south"})


class UnitOut(StrictSchema):
    id = fields.Integer()
    name = fields.String()
    kind = fields.String()
    parent_id = fields.Integer(allow_none=True)
    prefecture = fields.String(allow_none=True)
    position = fields.Integer(allow_none=True)
    path = fields.String()


class MemberIn(StrictSchema):
    login_id = text(1, 254, required=True)
    display_name = text(1, 100, required=True)
    name_kana = text(1, 100, required=True)
    password = text(8, 200, required=True, load_only=True)
    unit_id = row_id(allow_none=True, load_default=None)


class MemberPatch(StrictSchema):
    status = fields.String(validate=validate.OneOf(["active", "suspended"]))
    unit_id = row_id(allow_none=True)
    display_name = text(1, 100)
    name_kana = text(1, 100)


class MembersQuery(PageQuery):
    q = fields.String(load_default=None, validate=validate.Length(min=1, max=100))


class MembersPage(StrictSchema):
    items = fields.List(fields.Nested(UserOut))
    next_cursor = fields.String(allow_none=True)


class RoleIn(StrictSchema):
    login_id = text(1, 254, required=True)
    role = text(1, 40, required=True)
    unit_id = row_id(allow_none=True, load_default=None)


class RoleGrantOut(StrictSchema):
    id = fields.Integer()
    login_id = fields.String()
    display_name = fields.String()
    name_kana = fields.String()
    role = fields.String()
    unit_id = fields.Integer(allow_none=True)
    granted_by = fields.String()
    granted_at = fields.DateTime()


class RoleList(StrictSchema):
    items = fields.List(fields.Nested(RoleGrantOut))


class InviteIn(StrictSchema):
    union = text(3, 40, required=True)
    council_id = row_id(required=True)


class CascadeIn(StrictSchema):
    cascade = fields.String(required=True, validate=validate.OneOf(["opted_in", "opted_out"]))


class AffiliationOut(StrictSchema):
    id = fields.Integer()
    federation = fields.String()
    union = fields.String()
    council_id = fields.Integer()
    status = fields.String()
    cascade = fields.String()
    invited_at = fields.DateTime()
    accepted_at = fields.DateTime(allow_none=True)
    ended_at = fields.DateTime(allow_none=True)
    cascade_changed_at = fields.DateTime(allow_none=True)


class AffiliationList(StrictSchema):
    items = fields.List(fields.Nested(AffiliationOut))
