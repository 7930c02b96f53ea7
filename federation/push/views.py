"""GET /push/vapid-public-key; POST and DELETE /me/push-subscriptions."""
from __future__ import annotations

import base64
import binascii

from flask import current_app, g, request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields, validate

from federation.auth.service import require_caller
from federation.errors import APIError, invalid
from federation.push import devices, vapid
from federation.push.sender import endpoint_problem
from federation.schemas import StrictSchema

blp = Blueprint("push", __name__, url_prefix="/api/v1", description="Web Push")


class KeysIn(StrictSchema):
    p256dh = fields.String(required=True, validate=validate.Length(min=80, max=120))
    auth = fields.String(required=True, validate=validate.Length(min=16, max=40))


class SubscriptionIn(StrictSchema):
    """A browser PushSubscription as `JSON.stringify(subscription)` gives it."""

    endpoint = fields.String(required=True, validate=validate.Length(min=10, max=1000))
    expirationTime = fields.Integer(allow_none=True, load_default=None)  # noqa: N815 - the browser's name
    keys = fields.Nested(KeysIn, required=True)


class SubscriptionDeleteIn(StrictSchema):
    endpoint = fields.String(required=True, validate=validate.Length(min=10, max=1000))
    expirationTime = fields.Integer(allow_none=True, load_default=None)  # noqa: N815
    keys = fields.Nested(KeysIn, load_default=None)


class SubscriptionOut(StrictSchema):
    id = fields.Integer()
    endpoint = fields.String()
    created_at = fields.DateTime()


class VapidOut(StrictSchema):
    public_key = fields.String()


def _b64url_len(value: str, field: str, size: int, *, exact: bool = True) -> None:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raise invalid(field, "not base64url") from None
    if (len(raw) != size) if exact else (len(raw) < size):
        raise invalid(field, f"must decode to {size} bytes")
    if field == "keys.p256dh" and raw[0] != 4:
        raise invalid(field, "must be an uncompressed P-256 point")


@blp.route("/push/vapid-public-key")
class VapidPublicKey(MethodView):
    @blp.response(200, VapidOut)
    def get(self):
        """The VAPID public key browsers subscribe with (applicationServerKey)"""
        key = vapid.public_key(current_app.config["MUSUBI"].vapid_file)
        if key is None:
            raise APIError(404, "push is not set up on this server", code="push_not_configured")
        return {"public_key": key}


@blp.route("/me/push-subscriptions")
class Subscriptions(MethodView):
    @blp.response(200, SubscriptionOut(many=True))
    def get(self):
        """The signed-in user's devices"""
        return devices.devices_of(require_caller().user_id)

    @blp.arguments(SubscriptionIn)
    @blp.response(201, SubscriptionOut)
    def post(self, body):
        """Register this browser for push (a user may have several devices)"""
        subject = require_caller()
        problem = endpoint_problem(body["endpoint"])
        if problem:
            raise invalid("endpoint", problem)
        _b64url_len(body["keys"]["p256dh"], "keys.p256dh", 65)
        _b64url_len(body["keys"]["auth"], "keys.auth", 16)
        return devices.subscribe(subject.user_id, g.user.tenant_id, g.auth_session.id, body["endpoint"],
                                 body["keys"], user_agent=request.headers.get("User-Agent"))

    @blp.arguments(SubscriptionDeleteIn)
    @blp.response(204)
    def delete(self, body):
        """Stop pushing to this browser"""
        devices.unsubscribe(require_caller().user_id, body["endpoint"])
