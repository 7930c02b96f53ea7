"""Pages for invitations: the union admin issues QR codes (for the union or one unit), prints them as a flyer,
revokes them, lets in registrations that wait for approval, and follows registrations per unit.

Every page asks the firewall for `invitations manage` in the union, as each API view in
`federation.space.invitations.views` does, and loads an invitation only through `get_owned`.
"""
from __future__ import annotations

import io
from datetime import date, datetime, time, timedelta
from typing import Any

from flask import Response, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from markupsafe import Markup
from marshmallow import ValidationError

from federation.access import access_tenant, get_owned
from federation.dbutil import MAX_ROW_ID
from federation.errors import APIError
from federation.extensions import db
from federation.space.invitations import service
from federation.space.invitations.models import Invitation
from federation.space.invitations.schemas import InvitationIn
from federation.web import bp
from federation.web.formatting import JST
from tenants import service as tenant_service
from tenants.models import Tenant
from tenants.reads import units_by_id

DEFAULT_DAYS = 30

INVITATION_STATE_LABELS = {
    "active": _l("Active"),
    "expired": _l("Expired"),
    "used_up": _l("Used up"),
    "revoked": _l("Revoked"),
}


def _manage(slug: str) -> Tenant:
    # Issuing, reading and revoking invitations and approving registrations are all the union admin's
    # `invitations manage` in the API: the pages ask for exactly that.
    tenant, _subject = access_tenant(slug, "invitations", "manage", kind="union")
    return tenant


def _field_messages() -> dict[str, str]:
    return {
        "unit_id": _("Choose a unit of this union, or the whole union."),
        "expires_at": _("Choose an expiry date after today and at most a year ahead."),
        "max_uses": _("Enter a use limit between 1 and 100000, or leave it empty."),
        "label": _("The label can be at most 100 characters."),
        "needs_approval": _("Check this entry."),
    }


def _invitation_body() -> tuple[dict[str, Any], dict[str, str]]:
    """The form as the API's JSON body; entries that are not even of the right type are reported here."""
    form = request.form
    messages = _field_messages()
    errors: dict[str, str] = {}
    body: dict[str, Any] = {"label": form.get("label", ""), "needs_approval": form.get("needs_approval") == "on"}
    unit = form.get("unit_id", "")
    if unit:
        try:
            body["unit_id"] = int(unit)
        except ValueError:
            errors["unit_id"] = messages["unit_id"]
    uses = form.get("max_uses", "").strip()
    if uses:
        try:
            body["max_uses"] = int(uses)
        except ValueError:
            errors["max_uses"] = messages["max_uses"]
    expires = form.get("expires_on", "").strip()
    if expires:
        try:
            # The whole of the chosen day in Japan: a flyer that says "until 4月30日" works all of that day.
            day = date.fromisoformat(expires)
            body["expires_at"] = datetime.combine(day, time(23, 59), tzinfo=JST).isoformat()
        except ValueError:
            errors["expires_at"] = messages["expires_at"]
    return body, errors


def _list_page(tenant: Tenant, *, errors: dict[str, str] | None = None, status: int = 200):  # type: ignore[no-untyped-def]
    default_expiry = (datetime.now(JST) + timedelta(days=DEFAULT_DAYS)).date().isoformat()
    return render_template("web/invitations.html", tenant=tenant, invitations=service.listing(tenant),
                           state=service.state, units=tenant_service.units_of(tenant), errors=errors or {},
                           form=request.form if request.method == "POST" else {}, default_expiry=default_expiry,
                           state_labels=INVITATION_STATE_LABELS, done=request.args.get("done"),
                           pending_count=len(service.pending(tenant)), **_public_url_warning()), status


@bp.route("/t/<slug>/invitations", methods=["GET", "POST"])
def invitations(slug: str):  # type: ignore[no-untyped-def]
    tenant = _manage(slug)
    if request.method == "GET":
        return _list_page(tenant)
    body, errors = _invitation_body()
    messages = _field_messages()
    if not errors:
        try:
            inv = service.create(tenant, g.user, InvitationIn().load(body))
        except ValidationError as exc:
            errors = {str(k): messages.get(str(k), _("Check this entry.")) for k in exc.messages}
        except APIError as exc:
            db.session.rollback()
            errors = {k: messages.get(k, _("Check this entry.")) for k in exc.fields}
        else:
            return redirect(url_for("web.invitation", slug=slug, inv_id=inv.id, done="created"))
    return _list_page(tenant, errors=errors, status=422)


@bp.route("/t/<slug>/invitations/<int:inv_id>")
def invitation(slug: str, inv_id: int):  # type: ignore[no-untyped-def]
    tenant = _manage(slug)
    inv = get_owned(Invitation, inv_id, tenant)
    return render_template("web/invitations_flyer.html", tenant=tenant, inv=inv, state=service.state(inv),
                           url=service.registration_url(inv), state_labels=INVITATION_STATE_LABELS,
                           done=request.args.get("done"), **_public_url_warning())


def _public_url_warning() -> dict[str, Any]:
    """What the warning on the invitation pages needs when codes fall back to the request's address."""
    base = service.public_url_missing()
    if base is None:
        return {"fallback_base": None}
    code = Markup("<code>%s</code>")
    return {"fallback_base": code % base.rstrip("/"), "public_url_setting": code % "MUSUBI_PUBLIC_URL"}


@bp.route("/t/<slug>/invitations/<int:inv_id>/revoke", methods=["POST"])
def invitation_revoke(slug: str, inv_id: int):  # type: ignore[no-untyped-def]
    tenant = _manage(slug)
    service.revoke(get_owned(Invitation, inv_id, tenant), g.user)
    return redirect(url_for("web.invitations", slug=slug, done="revoked"))


def _qr_bytes(slug: str, inv_id: int, kind: str) -> bytes:
    tenant = _manage(slug)
    out = io.BytesIO()
    extra = {"xmldecl": False} if kind == "svg" else {}
    service.qr(get_owned(Invitation, inv_id, tenant)).save(out, kind=kind, scale=8, border=4, **extra)
    return out.getvalue()


@bp.route("/t/<slug>/invitations/<int:inv_id>/qr.png")
def invitation_qr_png(slug: str, inv_id: int) -> Response:
    return Response(_qr_bytes(slug, inv_id, "png"), mimetype="image/png",
                    headers={"Cache-Control": "private, no-store"})


@bp.route("/t/<slug>/invitations/<int:inv_id>/qr.svg")
def invitation_qr_svg(slug: str, inv_id: int) -> Response:
    # A download, never shown inline from our origin: an SVG is a document that could carry script.
    return Response(_qr_bytes(slug, inv_id, "svg"), mimetype="image/svg+xml", headers={
        "Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff",
        "Content-Disposition": f'attachment; filename="invitation-{inv_id}.svg"'})


@bp.route("/t/<slug>/invitations/pending", methods=["GET", "POST"])
def invitations_pending(slug: str):  # type: ignore[no-untyped-def]
    tenant = _manage(slug)
    errors: dict[str, str] = {}
    status = 200
    if request.method == "POST":
        try:
            registration_id = int(request.form.get("registration_id", ""))
        except ValueError:
            registration_id = 0
        if not 1 <= registration_id <= MAX_ROW_ID:
            errors["registration_id"] = _("Choose a registration from the list.")
            status = 422
        else:
            try:
                service.approve(tenant, registration_id, g.user)
            except APIError as exc:
                if exc.status != 409:
                    raise
                db.session.rollback()
                errors["registration_id"] = _("This registration is no longer waiting for approval.")
                status = 409
            else:
                return redirect(url_for("web.invitations_pending", slug=slug, done="approved"))
    return render_template("web/invitations_pending.html", tenant=tenant, rows=service.pending(tenant),
                           units=units_by_id(tenant), errors=errors, done=request.args.get("done")), status


@bp.route("/t/<slug>/invitations/report")
def invitations_report(slug: str):  # type: ignore[no-untyped-def]
    tenant = _manage(slug)
    units = service.report(tenant)
    return render_template("web/invitations_report.html", tenant=tenant, units=units,
                           total=sum(u["registered"] for u in units))
