"""The registration page a QR code opens: server-rendered, no sign-in, on the same service as the API.

There is no session yet, so the form is protected by a double-submit token (a random value in a SameSite=Strict
cookie scoped to /register, echoed in a hidden field), the idea the sign-in page uses.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, g, render_template, request
from flask_babel import gettext as _

from federation.errors import APIError
from federation.firewall import Denied
from federation.space.invitations import service
from federation.web.csrf import CSRFError, protect_form

pages = Blueprint("register_page", __name__)

FIELDS = ("login_id", "display_name", "name_kana", "password")
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


def _field_messages() -> dict[str, str]:
    return {
        "login_id": _("Enter your employee number without spaces."),
        "display_name": _("Enter your name."),
        "name_kana": _("Enter the reading of your name in hiragana or katakana."),
        "password": _("Choose a longer password: at least 8 characters."),
    }


def _refusal(exc: APIError) -> str:
    return {
        "expired": _("This invitation has expired. Ask your union for a new one."),
        "used_up": _("This invitation has been used up. Ask your union for a new one."),
        "revoked": _("This invitation has been withdrawn. Ask your union for a new one."),
        "conflict": _("This employee number is already registered. Sign in instead."),
        "rate_limited": _("Too many registrations from this network. Wait a while and try again."),
    }.get(exc.code, _("The registration could not be completed."))


@pages.context_processor
def _page_context() -> dict[str, Any]:
    from federation.web import i18n
    from federation.web.nav import navigation

    return {"nav": navigation(), "me": g.get("user"), "locale": i18n.select_locale()}


@pages.after_request
def _headers(resp: Response) -> Response:
    resp.headers.setdefault("Content-Security-Policy", CSP)
    resp.headers.setdefault("Cache-Control", "no-store")
    # The token is the permission: keep it out of the Referer sent to any link on the page.
    resp.headers.setdefault("Referrer-Policy", "no-referrer")
    return resp


@pages.route("/register/<token>", methods=["GET", "POST"])
def register(token: str):  # type: ignore[no-untyped-def]
    try:
        inv = service.usable(service.from_token(token))
    except Denied as exc:
        return render_template("web/error.html", status=exc.status), exc.status
    except APIError as exc:
        return _page("web/register_closed.html", exc.status, message=_refusal(exc))
    form = {k: request.form.get(k, "") for k in FIELDS if k != "password"}
    errors: dict[str, str] = {}
    problem = None
    status = 200
    if request.method == "POST":
        try:
            protect_form()
        except CSRFError:
            return render_template("web/error.html", status=403, csrf=True), 403
        body = {k: request.form.get(k, "") for k in FIELDS}
        missing = {k: _field_messages()[k] for k, v in body.items() if not v.strip()}
        if missing:
            errors, status = missing, 422
        else:
            try:
                user = service.register(token, body, address=request.remote_addr or "unknown")
            except APIError as exc:
                status = exc.status
                errors = {k: _field_messages()[k] for k in exc.fields if k in FIELDS}
                if not errors:
                    problem = _refusal(exc)
            else:
                return _page("web/register_done.html", 201, inv=inv, user=user)
    return _page("web/register.html", status, inv=inv, form=form, errors=errors, problem=problem)


def _page(template: str, status: int, **context: Any) -> Response:
    return current_app.make_response((render_template(template, **context), status))
