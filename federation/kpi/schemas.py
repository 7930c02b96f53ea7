from __future__ import annotations

from marshmallow import ValidationError, validate
from marshmallow import fields as mf

from federation.kpi.service import MAX_ROSTER
from federation.schemas import StrictSchema


class RosterSize(mf.Integer):
    """A whole number of people (true and false are not numbers here), or null to clear it."""

    def _deserialize(self, value, attr, data, **kwargs):  # type: ignore[no-untyped-def]
        if isinstance(value, bool):
            raise ValidationError(f"a whole number from 0 to {MAX_ROSTER}, or null")
        return super()._deserialize(value, attr, data, **kwargs)


class KpiRosterIn(StrictSchema):
    roster_size = RosterSize(required=True, allow_none=True, strict=True,
                             validate=validate.Range(min=0, max=MAX_ROSTER),
                             error_messages={"invalid": f"a whole number from 0 to {MAX_ROSTER}, or null"})


class KpiRosterOut(StrictSchema):
    union = mf.String()
    roster_size = mf.Integer(allow_none=True)


class KpiReadRate(StrictSchema):
    people = mf.Integer()
    expected = mf.Integer()
    read = mf.Integer()
    rate = mf.Float(allow_none=True)


class KpiUnitOut(KpiReadRate):
    unit_id = mf.Integer(allow_none=True)
    name = mf.String(allow_none=True)
    kind = mf.String(allow_none=True)
    depth = mf.Integer()
    members = mf.Integer()


class KpiFormTurnaround(StrictSchema):
    type_id = mf.Integer()
    name = mf.String()
    decided = mf.Integer()
    median_hours = mf.Float(allow_none=True)
    p90_hours = mf.Float(allow_none=True)


class KpiTurnaround(StrictSchema):
    decided = mf.Integer()
    median_hours = mf.Float(allow_none=True)
    p90_hours = mf.Float(allow_none=True)
    forms = mf.List(mf.Nested(KpiFormTurnaround))


class _KpiAbout(StrictSchema):
    computed_at = mf.DateTime()
    month_start = mf.DateTime()
    read_window_days = mf.Integer()
    turnaround_days = mf.Integer()


class KpiUnionOut(_KpiAbout):
    union = mf.String()
    name = mf.String()
    registered = mf.Integer()
    roster = mf.Integer(allow_none=True)
    coverage = mf.Float(allow_none=True)
    new_this_month = mf.Integer()
    active_readers = mf.Integer()
    read_rate = mf.Nested(KpiReadRate)
    units = mf.List(mf.Nested(KpiUnitOut))
    turnaround = mf.Nested(KpiTurnaround)


class KpiFederationRow(StrictSchema):
    union = mf.String()
    name = mf.String()
    council = mf.String()
    block = mf.String()
    registered = mf.Integer(allow_none=True)
    roster = mf.Integer(allow_none=True)
    coverage = mf.Float(allow_none=True)
    new_this_month = mf.Integer(allow_none=True)
    active_readers = mf.Integer(allow_none=True)
    read_rate = mf.Float(allow_none=True)
    turnaround_decided = mf.Integer(allow_none=True)
    turnaround_median_hours = mf.Float(allow_none=True)
    turnaround_p90_hours = mf.Float(allow_none=True)
    withheld = mf.List(mf.String())


class KpiFederationOut(_KpiAbout):
    federation = mf.String()
    small_group = mf.Integer()
    unions = mf.List(mf.Nested(KpiFederationRow))
