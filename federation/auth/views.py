"""POST /auth/login, POST /auth/logout, GET /me."""
from __future__ import annotations

from flask import current_app, g, jsonify, request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields

from federation.auth.service import COOKIE, end_session, require_caller, sign_in
from federation.firewall import firewall
from federation.push.records import forget_session
from federation.schemas import StrictSchema, text
from tenants.schemas import UserOut

blp = Blueprint("auth", __name__, url_prefix="/api/v1", description="Sign-in and the signed-in user")


class LoginIn(StrictSchema):
    tenant = text(1, 40, required=True, metadata={"description": "the tenant's slug"})
    login_id = text(1, 254, required=True, metadata={"description": "employee number or e-mail"})
    password = text(1, 200, required=True, load_only=True)


class LoginOut(StrictSchema):
    token = fields.String(metadata={"description": "bearer token for API clients; the same session as the cookie"})
    csrf_token = fields.String(metadata={"description": "send as X-CSRF-Token on writes made with the cookie"})
    user = fields.Nested(UserOut)


class RoleOut(StrictSchema):
    role = fields.String()
    tenant = fields.String()
    unit_id = fields.Integer(allow_none=True)
    derived = fields.Boolean()


class TenantBrief(StrictSchema):
    slug = fields.String()
    name = fields.String()
    kind = fields.String()


class MeOut(StrictSchema):
    user = fields.Nested(UserOut)
    tenant = fields.Nested(TenantBrief)
    roles = fields.List(fields.Nested(RoleOut))
    csrf_token = fields.String()


@blp.route("/auth/login")
class Login(MethodView):
    @blp.arguments(LoginIn)
    @blp.response(200, LoginOut)
    def post(self, body):
        """Sign in with tenant, login id and password"""
        result = sign_in(body["tenant"], body["login_id"], body["password"],
                         client=request.remote_addr or "unknown", user_agent=request.headers.get("User-Agent"))
        settings = current_app.config["MUSUBI"]
        payload = LoginOut().dump({"token": result.token, "csrf_token": result.csrf_token, "user": result.user})
        resp = jsonify(payload)
        resp.set_cookie(COOKIE, result.token, httponly=True, samesite="Lax", secure=settings.secure_cookies,
                        max_age=settings.session_hours * 3600, path="/")
        return resp


@blp.route("/auth/logout")
class Logout(MethodView):
    @blp.response(204)
    def post(self):
        """End this session: the cookie and the bearer token stop working at once"""
        require_caller()
        forget_session(g.auth_session.id)  # this sign-in's push subscriptions go with it
        end_session(g.auth_session)
        resp = current_app.response_class(status=204)
        resp.delete_cookie(COOKIE, path="/")
        return resp


@blp.route("/me")
class Me(MethodView):
    @blp.response(200, MeOut)
    def get(self):
        """The signed-in user, their home tenant and their roles"""
        subject = require_caller()
        user = g.user
        roles = [{"role": gr.role, "tenant": gr.tenant, "unit_id": gr.unit_id, "derived": False}
                 for gr in firewall.grants_of(subject)]
        roles += [{"role": r, "tenant": subject.tenant, "unit_id": None, "derived": True}
                  for r in firewall.roles_of(subject) if r not in {x["role"] for x in roles}]
        return {"user": user, "tenant": user.tenant, "roles": roles, "csrf_token": g.caller.csrf_token}


class PasswordChangeIn(StrictSchema):
    current_password = text(1, 200, required=True, load_only=True)
    new_password = text(1, 200, required=True, load_only=True)


@blp.route("/me/password")
class MyPassword(MethodView):
    @blp.arguments(PasswordChangeIn)
    @blp.response(204)
    def post(self, body):
        """Change your own password; your other sign-ins end, this one stays"""
        from federation.auth import accounts

        require_caller()
        accounts.change_password(g.user, body["current_password"], body["new_password"],
                                 session_id=g.auth_session.id)
        return current_app.response_class(status=204)
