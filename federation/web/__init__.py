"""The web pages: server-rendered, Japanese first, on the same services and firewall as the JSON API.

Every page reaches tenant data through `federation.access` exactly like the API views do, so a page the firewall
denies answers 403 or 404 like the API. Every form carries Flask-WTF's CSRF token (web/csrf.py); every write the
page script makes goes to the API with the X-CSRF-Token header.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, g, redirect, render_template, request, url_for
from flask.blueprints import BlueprintSetupState
from werkzeug.exceptions import HTTPException

from federation.errors import APIError
from federation.firewall import Denied
from federation.web import csrf, formatting, i18n
from federation.web.csrf import CSRFError

bp = Blueprint("web", __name__)

# Forms that work signed out: signing in, and setting a password from an officer's one-time link.
SIGNED_OUT_FORMS = {"web.signin", "web.account_link"}  # /signin/help is a GET: nothing to exempt

# Only our own files: no inline script, no inline style, no framing. The page script and the service worker are
# served from /static and /sw.js; pushes are fetched by the worker, not by pages.
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'; manifest-src 'self'; "
       "worker-src 'self'")


@bp.record_once
def _setup(state: BlueprintSetupState) -> None:
    app: Flask = state.app
    i18n.babel.init_app(app, locale_selector=i18n.select_locale,
                        default_locale=i18n.DEFAULT_LOCALE)
    app.jinja_env.filters.update(
        jdatetime=formatting.format_datetime, jdate=formatting.format_date, jevent=formatting.format_event,
        local_input=formatting.iso_local, kana_row=formatting.kana_row, field_date=formatting.format_field_date,
        csv_column=i18n.csv_column,
    )
    csrf.init_app(app)
    app.jinja_env.globals.update(percent=formatting.percent, pct=formatting.percent_text,
                                 api_csrf_token=csrf.api_csrf_token, label=i18n.label,
                                 L=i18n)
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True


@bp.before_request
def _forms_carry_their_token() -> Any:
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return None
    if request.endpoint not in SIGNED_OUT_FORMS and g.get("subject") is None:
        return redirect(url_for("web.signin", next=request.path))  # nothing is done for nobody: sign in first
    csrf.protect_form()  # every form, the sign-in form included, before the view runs
    return None


@bp.context_processor
def _page_context() -> dict[str, Any]:
    from federation.web.nav import navigation

    return {"nav": navigation(), "me": g.get("user"), "locale": i18n.select_locale()}


@bp.app_context_processor
def _reader_context() -> dict[str, Any]:
    # Every page that extends the base layout (the invitation pages are another blueprint) has the text size.
    return {"text_size": i18n.select_text_size(), "text_sizes": i18n.TEXT_SIZES}


@bp.after_request
def _page_headers(resp: Response) -> Response:
    if resp.mimetype == "text/html":
        resp.headers.setdefault("Content-Security-Policy", CSP)
        # Pages show a member's own inbox and names: never keep them in a shared cache or the back-forward cache of
        # a shared office PC after sign-out.
        resp.headers.setdefault("Cache-Control", "no-store")
    return resp


def _signin_redirect() -> Response:
    return redirect(url_for("web.signin", next=request.full_path.rstrip("?")))


@bp.errorhandler(Denied)
def _denied(exc: Denied) -> Any:
    if exc.status == 401:
        return _signin_redirect()
    # The same page for every denial of a status: nothing about the object, its tenant or its contents (F8).
    return render_template("web/error.html", status=exc.status), exc.status


@bp.errorhandler(CSRFError)
def _csrf(exc: CSRFError) -> Any:
    return render_template("web/error.html", status=403, csrf=True), 403


@bp.errorhandler(APIError)
def _api_error(exc: APIError) -> Any:
    if exc.status == 401:
        return _signin_redirect()
    return render_template("web/error.html", status=exc.status, message=exc.message, fields=exc.fields), exc.status


@bp.errorhandler(HTTPException)
def _http(exc: HTTPException) -> Any:
    status = exc.code or 500
    return render_template("web/error.html", status=status), status


from federation.web import (  # noqa: E402,F401  (routes register on import)
    account,
    applications,
    auditor,
    ballots,
    comments,
    documents,
    editor,
    invitations,
    kpi,
    member,
    reports,
    surveys,
    union,
)
