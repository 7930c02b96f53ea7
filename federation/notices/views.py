"""Notices (compose, target, publish, retract, stats, receipts), relays, and the member's inbox."""
from __future__ import annotations

import json
from datetime import datetime

from flask import current_app, g, jsonify
from flask.views import MethodView
from flask_smorest import Blueprint

from federation.access import access_tenant
from federation.auth.service import require_caller
from federation.firewall import Denied, firewall
from federation.notices import audience as aud
from federation.notices import inbox, inbox_cache, reads, service
from federation.notices.schemas import (
    InboxPage,
    NoticeIn,
    NoticeList,
    NoticeListQuery,
    NoticeOut,
    NoticePatch,
    PreviewIn,
    PreviewOut,
    ReactionIn,
    ReceiptsOut,
    ReceiptsQuery,
    ReceiptState,
    RelayIn,
    RelayOut,
    StatsOut,
)
from federation.pagination import decode_cursor, encode_cursor
from federation.schemas import PageQuery

blp = Blueprint("notices", __name__, url_prefix="/api/v1", description="Notices, the cascade and the inbox")

RECIPIENT_VIEW = NoticeOut(exclude=("audience", "author", "body", "reminder_at"))


@blp.route("/tenants/<slug>/notices")
class Notices(MethodView):
    @blp.arguments(NoticeListQuery, location="query")
    @blp.response(200, NoticeList)
    def get(self, q, slug):
        """The tenant's notices, newest first (editors: every status of theirs; others: what reached them)"""
        tenant, subject = access_tenant(slug, "notices", "read")
        after = decode_cursor(q["cursor"], (int,))
        before_id = after[0] if after else None
        limit = q["limit"] + 1
        full = False
        if q["received"]:
            firewall.require(subject, slug, "notices", "relay")
            rows = reads.received_notices_page(tenant, before_id=before_id, limit=limit)
        elif firewall.allowed(subject, slug, "notices", "write"):
            rows, full = reads.officer_notices(tenant, subject, status=q["status"], before_id=before_id,
                                               limit=limit), True
        else:
            rows = reads.recipient_notices_page(tenant, g.caller, subject, before_id=before_id, limit=limit)
        more = len(rows) > q["limit"]
        rows = rows[: q["limit"]]
        # Officers see their own notices in full; what reached someone is shown as delivered: no audience, no
        # author account (a federation's audience names other unions).
        view = NoticeOut() if full else RECIPIENT_VIEW
        return jsonify({"items": [view.dump(n) for n in rows],
                        "next_cursor": encode_cursor(rows[-1].id) if more else None})

    @blp.arguments(NoticeIn)
    @blp.response(201, NoticeOut)
    def post(self, body, slug):
        """Write a notice: a draft, or scheduled when publish_at is given"""
        tenant, subject = access_tenant(slug, "notices", "write")
        return service.create_notice(tenant, g.user, subject, body)


@blp.route("/tenants/<slug>/notices/preview")
class Preview(MethodView):
    @blp.arguments(PreviewIn)
    @blp.response(200, PreviewOut)
    def post(self, body, slug):
        """How many members in how many unions an audience reaches if published now (counts only)"""
        tenant, subject = access_tenant(slug, "notices", "write")
        return aud.preview(aud.validate(body["audience"], tenant, subject), tenant)


@blp.route("/tenants/<slug>/notices/<int:notice_id>")
class OneNotice(MethodView):
    @blp.response(200, NoticeOut)
    def get(self, slug, notice_id):
        """One notice: in full for its editors, as delivered for its recipients"""
        tenant, subject = access_tenant(slug, "notices", "read")
        if firewall.allowed(subject, slug, "notices", "write"):
            try:
                return reads.officer_notice(tenant, subject, notice_id)
            except Denied:
                pass  # not theirs to edit: maybe it reached them as a recipient
        return jsonify(RECIPIENT_VIEW.dump(reads.recipient_notice(tenant, g.caller, subject, notice_id)))

    @blp.arguments(NoticePatch)
    @blp.response(200, NoticeOut)
    def patch(self, body, slug, notice_id):
        """Change a draft or scheduled notice (a published one: its text and event)"""
        _, notice = service.access_notice(slug, notice_id)
        return service.update_notice(notice, g.subject, body)

    @blp.response(200, NoticeOut)
    def delete(self, slug, notice_id):
        """Retract: the notice leaves every inbox at once"""
        _, notice = service.access_notice(slug, notice_id)
        return service.retract(notice, g.subject)


@blp.route("/tenants/<slug>/notices/<int:notice_id>/publish")
class Publish(MethodView):
    @blp.response(202, NoticeOut)
    def post(self, slug, notice_id):
        """Publish now; the cascade runs in the background (watch it in stats.progress)"""
        _, notice = service.access_notice(slug, notice_id, "publish")
        return service.publish_now(notice, g.subject)


@blp.route("/tenants/<slug>/notices/<int:notice_id>/stats")
class Stats(MethodView):
    @blp.response(200, StatsOut)
    def get(self, slug, notice_id):
        """Recipients, deliveries, reads and reactions: counts only, per union for federation notices (F4)"""
        tenant, subject = access_tenant(slug, "stats", "read")
        return reads.stats(tenant, subject, notice_id)


@blp.route("/tenants/<slug>/notices/<int:notice_id>/receipts")
class Receipts(MethodView):
    @blp.arguments(ReceiptsQuery, location="query")
    @blp.response(200, ReceiptsOut)
    def get(self, q, slug, notice_id):
        """Union officers: who in their own union read or reacted, in 50-on order. Federation organizers: the
        members who shared their attendance"""
        tenant, subject = access_tenant(slug, "receipts", "read")
        found = reads.receipts(tenant, subject, notice_id, reaction=q["reaction"])
        if found.organizer:
            return {"items": found.items}
        return {"items": [{**i, "union": tenant.slug} for i in found.items]}


@blp.route("/unions/<union>/relays")
class Relays(MethodView):
    @blp.arguments(RelayIn)
    @blp.response(201, RelayOut)
    def post(self, body, union):
        """Relay a federation notice that reached the officers to the union's own members"""
        tenant, subject = access_tenant(union, "notices", "relay", kind="union")
        rows = service.relay(tenant, subject, body["notice_id"], body["audience"])
        members = [d for d in rows if not d.for_relay]
        return {"notice_id": body["notice_id"], "deliveries": len(members),
                "recipients": sum(d.recipients for d in members)}


# --- the member's side ---------------------------------------------------------------------------------------------

@blp.route("/me/inbox")
class Inbox(MethodView):
    @blp.arguments(PageQuery, location="query")
    @blp.response(200, InboxPage)
    def get(self, q):
        """Your inbox, newest first, with the unread count"""
        subject = require_caller()
        parsed = decode_cursor(q["cursor"], (datetime, int))
        # The first page is what members open over and over: served from the per-process cache while the union's,
        # the user's and the policy's versions (all read by this request's sign-in query) are unchanged.
        caller = g.caller
        stamp = (caller.tenant_inbox_version, caller.inbox_version, caller.policy_version)
        key = (subject.user_id, q["limit"])
        if parsed is None:
            body = inbox_cache.cache().get(key, stamp)
            if body is not None:
                return current_app.response_class(body, mimetype="application/json",
                                                  headers={"X-Inbox-Cache": "hit"})
        page = inbox.inbox_page(g.caller, subject, limit=q["limit"], after=parsed)
        cursor = page.pop("cursor")
        page["next_cursor"] = encode_cursor(cursor[0].isoformat(), cursor[1]) if cursor else None
        body = json.dumps(InboxPage().dump(page), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        if parsed is None:
            inbox_cache.cache().put(key, stamp, body)
        return current_app.response_class(body, mimetype="application/json", headers={"X-Inbox-Cache": "miss"})


def _in_my_inbox(notice_id: int) -> inbox.Target:
    return reads.in_inbox(g.caller, require_caller(), notice_id)


@blp.route("/me/inbox/<int:notice_id>/read")
class MarkRead(MethodView):
    @blp.response(200, ReceiptState)
    def post(self, notice_id):
        """Mark read (idempotent)"""
        return inbox.mark_read(g.caller, _in_my_inbox(notice_id))


@blp.route("/me/inbox/<int:notice_id>/reaction")
class Reaction(MethodView):
    @blp.arguments(ReactionIn)
    @blp.response(200, ReceiptState)
    def put(self, body, notice_id):
        """React with a stamp: attend, absent or read (null clears). Attending a federation seminar shares your
        name, reading and union with its organizer"""
        return inbox.react(g.caller, _in_my_inbox(notice_id), body["stamp"])


