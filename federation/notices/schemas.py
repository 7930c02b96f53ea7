from __future__ import annotations

import json

from marshmallow import ValidationError, fields, validate

from federation.notices.models import CATEGORIES, STAMPS
from federation.schemas import PageQuery, StrictSchema, row_id, text


class EventIn(StrictSchema):
    starts_at = fields.AwareDateTime(required=True)
    ends_at = fields.AwareDateTime(allow_none=True, load_default=None)
    place = text(1, 200, allow_none=True, load_default=None)
    online_url = fields.Url(allow_none=True, load_default=None, schemes={"http", "https"},
                            validate=validate.Length(max=500))


class EventOut(StrictSchema):
    starts_at = fields.DateTime()
    ends_at = fields.DateTime(allow_none=True)
    place = fields.String(allow_none=True)
    online_url = fields.String(allow_none=True)


class AudienceField(fields.Field):
    """Checked in depth by the audience module (which knows the tenant); here only that it is an object."""

    def _deserialize(self, value, attr, data, **kwargs):  # type: ignore[no-untyped-def]
        if not isinstance(value, dict):
            raise ValidationError('an object: {"all": true} or {"units": [...]} (and for a federation, "unions")')
        return value

    def _serialize(self, value, attr, obj, **kwargs):  # type: ignore[no-untyped-def]
        return json.loads(value) if isinstance(value, str) else value


class NoticeIn(StrictSchema):
    title = text(1, 200, required=True)
    body = text(1, 20_000, required=True)
    category = fields.String(required=True, validate=validate.OneOf(CATEGORIES))
    audience = AudienceField(required=True)
    event = fields.Nested(EventIn, allow_none=True, load_default=None)
    publish_at = fields.AwareDateTime(allow_none=True, load_default=None)
    reminder_lead_minutes = fields.Integer(allow_none=True, load_default=None,
                                           validate=validate.Range(min=0, max=60 * 24 * 14))
    comments = fields.Boolean(load_default=False, metadata={
        "description": "a union notice: its recipients may comment (every recipient in the union sees them)"})


class NoticePatch(StrictSchema):
    title = text(1, 200)
    body = text(1, 20_000)
    category = fields.String(validate=validate.OneOf(CATEGORIES))
    audience = AudienceField()
    event = fields.Nested(EventIn, allow_none=True)
    publish_at = fields.AwareDateTime(allow_none=True)
    reminder_lead_minutes = fields.Integer(allow_none=True, validate=validate.Range(min=0, max=60 * 24 * 14))
    comments = fields.Boolean()


def _event(notice) -> dict | None:  # type: ignore[no-untyped-def]
    if notice.event_starts_at is None:
        return None
    return {"starts_at": notice.event_starts_at, "ends_at": notice.event_ends_at, "place": notice.event_place,
            "online_url": notice.event_online_url}


class AuthorOut(StrictSchema):
    login_id = fields.String()
    display_name = fields.String()


class NoticeOut(StrictSchema):
    id = fields.Integer()
    tenant = fields.Function(lambda n: n.tenant.slug)
    tenant_name = fields.Function(lambda n: n.tenant.name)
    title = fields.String()
    body = fields.String()
    body_html = fields.String()
    category = fields.String()
    event = fields.Function(lambda n: EventOut().dump(_event(n)) if n.event_starts_at else None)
    audience = AudienceField()
    status = fields.String()
    publish_at = fields.DateTime(allow_none=True)
    published_at = fields.DateTime(allow_none=True)
    retracted_at = fields.DateTime(allow_none=True)
    reminder_at = fields.DateTime(allow_none=True)
    comments = fields.Boolean()
    officers_only = fields.Boolean()
    author = fields.Nested(AuthorOut)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class NoticeBrief(StrictSchema):
    """What a recipient sees of a notice (no audience, no author account)."""

    id = fields.Integer()
    tenant = fields.Function(lambda n: n.tenant.slug)
    tenant_name = fields.Function(lambda n: n.tenant.name)
    title = fields.String()
    category = fields.String()
    body_html = fields.String()
    event = fields.Function(lambda n: EventOut().dump(_event(n)) if n.event_starts_at else None)
    published_at = fields.DateTime(allow_none=True)


class NoticeList(StrictSchema):
    items = fields.List(fields.Nested(NoticeOut))
    next_cursor = fields.String(allow_none=True)


class NoticeListQuery(PageQuery):
    status = fields.String(load_default=None, validate=validate.OneOf(["draft", "scheduled", "published",
                                                                       "retracted"]))
    received = fields.Boolean(load_default=False, metadata={
        "description": "union officers: federation notices delivered to this union instead of its own"})


class InboxNotice(StrictSchema):
    id = fields.Integer()
    tenant = fields.String()
    tenant_name = fields.String()
    title = fields.String()
    category = fields.String()
    body_html = fields.String()
    event = fields.Nested(EventOut, allow_none=True)
    published_at = fields.DateTime(allow_none=True)


class InboxItem(StrictSchema):
    notice = fields.Nested(InboxNotice)
    delivered_at = fields.DateTime()
    read_at = fields.DateTime(allow_none=True)
    reaction = fields.String(allow_none=True)
    for_relay = fields.Boolean()
    officers = fields.Boolean(metadata={"description": "the officers' channel: for union officers, never relayed"})


class InboxPage(StrictSchema):
    items = fields.List(fields.Nested(InboxItem))
    next_cursor = fields.String(allow_none=True)
    unread = fields.Integer()


class ReactionIn(StrictSchema):
    stamp = fields.String(required=True, allow_none=True, validate=validate.OneOf(STAMPS))


class ReceiptState(StrictSchema):
    notice_id = fields.Integer()
    read_at = fields.DateTime(allow_none=True)
    reaction = fields.String(allow_none=True)
    shared_with_organizer = fields.Boolean()


class Reactions(StrictSchema):
    attend = fields.Integer()
    absent = fields.Integer()
    read = fields.Integer()


class UnionStats(StrictSchema):
    union = fields.String()
    mode = fields.String(metadata={"description": "members (opted in) or relay (officers only)"})
    recipients = fields.Integer()
    delivered = fields.Integer(allow_none=True,
                               metadata={"description": "recipients with the push on at least one device"})
    read = fields.Integer(allow_none=True)
    reactions = fields.Nested(Reactions, allow_none=True)
    withheld = fields.Boolean(metadata={"description": "fewer than 5 people reached: read, push and stamp figures "
                                                      "are not shown (the small-group rule)"})


class Progress(StrictSchema):
    status = fields.String()
    unions_targeted = fields.Integer(allow_none=True)
    unions_reached = fields.Integer()
    jobs = fields.Integer(allow_none=True)
    jobs_done = fields.Integer()
    done = fields.Boolean()
    done_at = fields.DateTime(allow_none=True)


class StatsOut(StrictSchema):
    recipients = fields.Integer()
    delivered = fields.Integer()
    read = fields.Integer()
    reactions = fields.Nested(Reactions)
    progress = fields.Nested(Progress)
    withheld_recipients = fields.Integer(metadata={"description": "recipients in unions whose figures are "
                                                                  "withheld and left out of the totals"})
    unions = fields.List(fields.Nested(UnionStats))


class ReceiptOut(StrictSchema):
    login_id = fields.String(allow_none=True)
    display_name = fields.String()
    name_kana = fields.String()
    union = fields.String()
    read_at = fields.DateTime(allow_none=True)
    reaction = fields.String(allow_none=True)


class ReceiptsOut(StrictSchema):
    items = fields.List(fields.Nested(ReceiptOut))


class ReceiptsQuery(StrictSchema):
    reaction = fields.String(load_default=None, validate=validate.OneOf(STAMPS))


class PreviewIn(StrictSchema):
    audience = AudienceField(required=True)


class PreviewOut(StrictSchema):
    members = fields.Integer(metadata={"description": "members reached directly"})
    unions = fields.Integer(metadata={"description": "unions whose members are reached directly"})
    relay_unions = fields.Integer(metadata={"description": "opted-out unions: officers only, for relay"})
    officers = fields.Integer(metadata={"description": "officers reached for relay"})


class RelayIn(StrictSchema):
    notice_id = row_id(required=True)
    audience = AudienceField(required=True)


class RelayOut(StrictSchema):
    notice_id = fields.Integer()
    deliveries = fields.Integer()
    recipients = fields.Integer()
