"""The auditor's API: check, who-can, exposure, the log and its verification."""
from __future__ import annotations

import json
from collections.abc import Iterator

from flask import Response, current_app
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields, validate

from federation.access import access_tenant
from federation.audit import chain, entries, queries
from federation.auth.service import require_caller
from federation.errors import invalid
from federation.pagination import decode_cursor, encode_cursor
from federation.schemas import StrictSchema

blp = Blueprint("audit", __name__, url_prefix="/api/v1/audit", description="For auditors: who can do what, and why")


@blp.before_request
def _signed_in() -> None:
    # Who is calling comes before what they asked: an anonymous caller gets 401, not a 422 about the query.
    require_caller()


def _auditor() -> None:
    # The audit API reads policy and the log, both kept in the platform domain.
    access_tenant("platform", "audit", "read")


class CheckQuery(StrictSchema):
    subject = fields.String(required=True, validate=validate.Length(min=3, max=300))
    tenant = fields.String(required=True, validate=validate.Length(min=1, max=40))
    object = fields.String(required=True, validate=validate.Length(min=1, max=40))
    action = fields.String(required=True, validate=validate.Length(min=1, max=40))


class WhoCanQuery(StrictSchema):
    tenant = fields.String(required=True, validate=validate.Length(min=1, max=40))
    object = fields.String(required=True, validate=validate.Length(min=1, max=40))
    action = fields.String(required=True, validate=validate.Length(min=1, max=40))


class LogQuery(StrictSchema):
    tenant = fields.String(load_default=None, validate=validate.Length(min=1, max=40))
    actor = fields.String(load_default=None, validate=validate.Length(min=1, max=300))
    kind = fields.String(load_default=None, validate=validate.Length(min=1, max=60))
    since = fields.AwareDateTime(load_default=None, default_timezone=None)
    cursor = fields.String(load_default=None, validate=validate.Length(max=200))
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))


@blp.route("/check")
class Check(MethodView):
    @blp.response(200, description="OK")
    @blp.arguments(CheckQuery, location="query")
    def get(self, q):
        """May a subject do an action on an object in a tenant, and why"""
        _auditor()
        return queries.check(q["subject"], q["tenant"], q["object"], q["action"])


@blp.route("/who-can")
class WhoCan(MethodView):
    @blp.response(200, description="OK")
    @blp.arguments(WhoCanQuery, location="query")
    def get(self, q):
        """Every role and user that may do an action on an object in a tenant"""
        _auditor()
        return queries.who_can(q["tenant"], q["object"], q["action"])


class ExposureQuery(StrictSchema):
    at = fields.AwareDateTime(load_default=None, metadata={"description": "as it was then (replayed from the log)"})


class DiffQuery(StrictSchema):
    from_ = fields.AwareDateTime(required=True, data_key="from")
    to = fields.AwareDateTime(required=True)


class WhatCanQuery(StrictSchema):
    subject = fields.String(required=True, validate=validate.Length(min=3, max=300))


@blp.route("/exposure")
class Exposure(MethodView):
    @blp.response(200, description="OK")
    @blp.arguments(ExposureQuery, location="query")
    def get(self, q):
        """Every permission that crosses a tenant boundary, and every union's cascade state (now, or at a time)"""
        _auditor()
        return queries.exposure(q["at"])


@blp.route("/exposure/diff")
class ExposureDiff(MethodView):
    @blp.response(200, description="OK")
    @blp.arguments(DiffQuery, location="query")
    def get(self, q):
        """What crossed a tenant boundary at one time and not at the other"""
        _auditor()
        if q["to"] < q["from_"]:
            raise invalid("to", "must not be before from")
        return queries.exposure_diff(q["from_"], q["to"])


@blp.route("/what-can")
class WhatCan(MethodView):
    @blp.response(200, description="OK")
    @blp.arguments(WhatCanQuery, location="query")
    def get(self, q):
        """Every tenant, object and action a subject may use"""
        _auditor()
        from federation.audit.reach import what_can

        return what_can(q["subject"])


@blp.route("/log")
class Log(MethodView):
    @blp.response(200, description="OK")
    @blp.arguments(LogQuery, location="query")
    def get(self, q):
        """Audit entries, oldest first, with cursor pagination"""
        _auditor()
        after = decode_cursor(q["cursor"], (int,))
        rows = entries.page(tenant=q["tenant"], actor=q["actor"], kind=q["kind"], since=q["since"],
                            after=after[0] if after else None, limit=q["limit"] + 1)
        more = len(rows) > q["limit"]
        rows = rows[: q["limit"]]
        return {"items": [r.as_dict() for r in rows],
                "next_cursor": encode_cursor(rows[-1].seq) if more else None}


@blp.route("/log/export")
class Export(MethodView):
    def get(self):
        """The whole chain as JSON lines, verifiable with the documented hashing rule alone"""
        _auditor()
        app = current_app._get_current_object()  # type: ignore[attr-defined]

        def lines() -> Iterator[str]:
            # Streamed in batches from a context of its own: a long chain never sits in memory at once.
            with app.app_context():
                for entry in chain.iter_entries():
                    yield json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n"

        return Response(lines(), mimetype="application/x-ndjson",
                        headers={"Content-Disposition": "attachment; filename=musubi-audit.jsonl"})


class VerifyQuery(StrictSchema):
    expect_head = fields.String(load_default=None, validate=validate.Length(min=3, max=80), metadata={
        "description": "SEQ:HASH of an entry the chain must reach and match (a head from an anchor shipped "
                       "elsewhere)"})


@blp.route("/log/verify")
class Verify(MethodView):
    @blp.response(200, description="OK")
    @blp.arguments(VerifyQuery, location="query")
    def get(self, q):
        """Check the hash chain end to end: hashes, MACs, and optionally an expected head"""
        _auditor()
        anchors = []
        if q["expect_head"]:
            try:
                anchors.append(chain.parse_expected_head(q["expect_head"]))
            except chain.AnchorError as exc:
                raise invalid("expect_head", str(exc)) from None
        return chain.verify(anchors).as_dict()
