"""Invitations for officers (create, list, QR codes, revoke, report, approve) and the public registration."""
from __future__ import annotations

import io

from flask import Response, g, request
from flask.views import MethodView
from flask_smorest import Blueprint

from federation.access import access_tenant, get_owned
from federation.space.invitations import service
from federation.space.invitations.models import Invitation
from federation.space.invitations.pages import pages
from federation.space.invitations.schemas import (
    InvitationIn,
    InvitationInfo,
    InvitationList,
    InvitationOut,
    PendingList,
    Registered,
    RegisterIn,
    RegistrationReport,
)

blp = Blueprint("invitations", __name__, url_prefix="/api/v1", description="QR invitations and self-registration")


@blp.record_once
def _with_the_page(state) -> None:  # type: ignore[no-untyped-def]
    # The QR code opens /register/<token>, outside the API prefix: its page travels with the API it calls.
    state.app.register_blueprint(pages)


@blp.route("/tenants/<slug>/invitations")
class Invitations(MethodView):
    @blp.response(200, InvitationList)
    def get(self, slug):
        """The union's invitations, newest first"""
        tenant, _ = access_tenant(slug, "invitations", "manage", kind="union")
        return {"items": [service.inv_dict(i) for i in service.listing(tenant)]}

    @blp.arguments(InvitationIn)
    @blp.response(201, InvitationOut)
    def post(self, body, slug):
        """Issue an invitation for the union or one of its units"""
        tenant, _ = access_tenant(slug, "invitations", "manage", kind="union")
        return service.inv_dict(service.create(tenant, g.user, body))


@blp.route("/tenants/<slug>/invitations/report")
class Report(MethodView):
    @blp.response(200, RegistrationReport)
    def get(self, slug):
        """Registrations through invitations per unit (counts)"""
        tenant, _ = access_tenant(slug, "invitations", "manage", kind="union")
        units = service.report(tenant)
        return {"units": units, "total": sum(u["registered"] for u in units)}


@blp.route("/tenants/<slug>/invitations/<int:inv_id>")
class OneInvitation(MethodView):
    @blp.response(200, InvitationOut)
    def get(self, slug, inv_id):
        """One invitation and its state"""
        tenant, _ = access_tenant(slug, "invitations", "manage", kind="union")
        return service.inv_dict(get_owned(Invitation, inv_id, tenant))

    @blp.response(200, InvitationOut)
    def delete(self, slug, inv_id):
        """Revoke: the token stops working at once"""
        tenant, _ = access_tenant(slug, "invitations", "manage", kind="union")
        return service.inv_dict(service.revoke(get_owned(Invitation, inv_id, tenant), g.user))


@blp.route("/tenants/<slug>/invitations/<int:inv_id>/qr.png")
class QrPng(MethodView):
    @blp.response(200, content_type="image/png")
    def get(self, slug, inv_id):
        """The registration URL as a PNG QR code for a flyer"""
        tenant, _ = access_tenant(slug, "invitations", "manage", kind="union")
        out = io.BytesIO()
        service.qr(get_owned(Invitation, inv_id, tenant)).save(out, kind="png", scale=8,
                                                                                border=4)
        return Response(out.getvalue(), mimetype="image/png", headers={"Cache-Control": "no-store"})


@blp.route("/tenants/<slug>/invitations/<int:inv_id>/qr.svg")
class QrSvg(MethodView):
    @blp.response(200, content_type="image/svg+xml")
    def get(self, slug, inv_id):
        """The registration URL as an SVG QR code, sharp at any print size"""
        tenant, _ = access_tenant(slug, "invitations", "manage", kind="union")
        out = io.BytesIO()
        service.qr(get_owned(Invitation, inv_id, tenant)).save(
            out, kind="svg", scale=8, border=4, xmldecl=False)
        return Response(out.getvalue(), mimetype="image/svg+xml", headers={"Cache-Control": "no-store"})


@blp.route("/tenants/<slug>/registrations/pending")
class Pending(MethodView):
    @blp.response(200, PendingList)
    def get(self, slug):
        """Registrations waiting for the union's approval, in 50-on order"""
        tenant, _ = access_tenant(slug, "invitations", "manage", kind="union")
        return {"items": service.pending(tenant)}


@blp.route("/tenants/<slug>/registrations/<int:registration_id>/approve")
class ApproveRegistration(MethodView):
    @blp.response(200, Registered)
    def post(self, slug, registration_id):
        """Let a pending registration in: the member becomes active"""
        tenant, _ = access_tenant(slug, "invitations", "manage", kind="union")
        user = service.approve(tenant, registration_id, g.user)
        return _registered(user)


@blp.route("/register/<token>")
class Register(MethodView):
    @blp.response(200, InvitationInfo)
    def get(self, token):
        """What an invitation is for (public: the token is the permission)"""
        inv = service.usable(service.from_token(token))
        return {"union": inv.tenant.slug, "union_name": inv.tenant.name,
                "unit_name": inv.unit.name if inv.unit else None, "needs_approval": inv.needs_approval,
                "expires_at": inv.expires_at}

    @blp.arguments(RegisterIn)
    @blp.response(201, Registered)
    def post(self, body, token):
        """Register as a member with an invitation"""
        user = service.register(token, body, address=request.remote_addr or "unknown")
        return _registered(user)


def _registered(user) -> dict:  # type: ignore[no-untyped-def]
    return {"login_id": user.login_id, "display_name": user.display_name, "union": user.tenant.slug,
            "unit_id": user.unit_id, "status": user.status}
