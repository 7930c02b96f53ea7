from __future__ import annotations

from marshmallow import ValidationError, fields, validate, validates_schema

from federation.ballots.models import KINDS
from federation.schemas import StrictSchema, row_id
from federation.schemas import text as text_field


class OptionIn(StrictSchema):
    label = text_field(1, 200, required=True)


class ChooseIn(StrictSchema):
    min = fields.Integer(required=True, strict=True, validate=validate.Range(0, 50))
    max = fields.Integer(required=True, strict=True, validate=validate.Range(1, 50))


class ElectorateIn(StrictSchema):
    all = fields.Boolean(validate=validate.Equal(True))
    units = fields.List(row_id(), validate=validate.Length(min=1, max=500))

    @validates_schema
    def _one_form(self, data, **_kw):  # type: ignore[no-untyped-def]
        if ("all" in data) == ("units" in data):
            raise ValidationError('either {"all": true} or {"units": [ids]}', "electorate")


class BallotIn(StrictSchema):
    title = text_field(1, 200, required=True)
    description = text_field(0, 5000, load_default="")
    kind = fields.String(required=True, validate=validate.OneOf(KINDS))
    options = fields.List(fields.Nested(OptionIn), validate=validate.Length(max=50))
    choose = fields.Nested(ChooseIn)
    electorate = fields.Nested(ElectorateIn, load_default=lambda: {"all": True})
    opens_at = fields.AwareDateTime(required=True)
    closes_at = fields.AwareDateTime(required=True)
    quorum = fields.Integer(strict=True, allow_none=True, validate=validate.Range(1, 100),
                            metadata={"description": "per cent of the eligible who must vote"})

    @validates_schema
    def _closes_after_opening(self, data, **_kw):  # type: ignore[no-untyped-def]
        if data.get("opens_at") and data.get("closes_at") and data["closes_at"] <= data["opens_at"]:
            raise ValidationError("must be after opens_at", "closes_at")


class OptionOut(StrictSchema):
    id = fields.Integer()
    label = fields.String(allow_none=True)


class BallotOut(StrictSchema):
    id = fields.Integer()
    title = fields.String()
    description = fields.String()
    kind = fields.String()
    options = fields.List(fields.Nested(OptionOut))
    choose = fields.Dict()
    electorate = fields.Dict()
    opens_at = fields.DateTime()
    closes_at = fields.DateTime()
    quorum = fields.Integer(allow_none=True)
    status = fields.String()
    fingerprint = fields.String(allow_none=True)
    public_key = fields.String(allow_none=True)
    trustees = fields.List(fields.String())
    eligible = fields.Boolean(metadata={"description": "you are on the roll"})
    voted = fields.Boolean(metadata={"description": "you have cast a ballot (never how)"})
    is_open = fields.Boolean()


class BallotList(StrictSchema):
    items = fields.List(fields.Nested(BallotOut))


class TrusteeIn(StrictSchema):
    name = text_field(1, 100, required=True)
    public_key = fields.String(required=True, validate=validate.Length(equal=64))
    key_proof = fields.Dict(required=True)


class TrusteeOut(StrictSchema):
    name = fields.String()
    public_key = fields.String()


class DecryptionIn(StrictSchema):
    trustee = text_field(1, 100, required=True)
    factors = fields.List(fields.Dict(), required=True, validate=validate.Length(max=50))


class VoteIn(StrictSchema):
    choices = fields.List(fields.Integer(strict=True), validate=validate.Length(max=50),
                          metadata={"description": "option ids; the server encrypts them in this request"})
    ballot = fields.Dict(metadata={"description": "an already encrypted ballot with its proofs (checked here)"})

    @validates_schema
    def _one_form(self, data, **_kw):  # type: ignore[no-untyped-def]
        if ("choices" in data) == ("ballot" in data):
            raise ValidationError("send either choices or an encrypted ballot", "choices")


class Receipt(StrictSchema):
    receipt = fields.String()
    fingerprint = fields.String()


class RollEntry(StrictSchema):
    login_id = fields.String()
    display_name = fields.String()
    name_kana = fields.String()
    voted = fields.Boolean()


class RollOut(StrictSchema):
    eligible = fields.Integer()
    voted = fields.Integer()
    items = fields.List(fields.Nested(RollEntry))


class OptionVotes(StrictSchema):
    id = fields.Integer()
    label = fields.String()
    votes = fields.Integer()


class UnitTurnout(StrictSchema):
    unit_id = fields.Integer()
    unit = fields.String()
    eligible = fields.Integer()
    voted = fields.Integer()


class ResultOut(StrictSchema):
    eligible = fields.Integer()
    voted = fields.Integer()
    quorum = fields.Integer(allow_none=True)
    quorum_met = fields.Boolean()
    options = fields.List(fields.Nested(OptionVotes))
    units = fields.List(fields.Nested(UnitTurnout), metadata={"description": "units of 10 or more voters only"})
    fingerprint = fields.String()
    rule = fields.String(metadata={"description": "referendum and strike: majority_of_eligible"})
    passed = fields.Boolean()


class BoardOut(StrictSchema):
    status = fields.String()
    fingerprint = fields.String(allow_none=True)
    definition = fields.Dict()
    trustee_proofs = fields.List(fields.Dict())
    items = fields.List(fields.Dict(), metadata={"description": "{receipt, ballot}, in receipt order"})
    encrypted_tally = fields.List(fields.Dict(), allow_none=True)
    counts = fields.List(fields.Integer(), allow_none=True)
    eligible = fields.Integer()
    voted = fields.Integer()
