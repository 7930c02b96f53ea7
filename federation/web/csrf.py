"""CSRF for the pages' forms: Flask-WTF's CSRFProtect, one mechanism for every form (signed in or not: the
sign-in and the QR registration forms too). Its token lives in Flask's signed session cookie (`musubi_form`); a
cross-site page can make the browser send the cookie but cannot read the token.

The pages check it themselves (`protect_form`), before anything else runs; the JSON API is not checked here: a
cookie-authenticated API write must carry the sign-in session's own token in `X-CSRF-Token` (auth.service), which
the page script reads from the `csrf-token` meta tag (`api_csrf_token`).
"""
from __future__ import annotations

from flask import Flask, Request, g
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_wtf.csrf import CSRFError, CSRFProtect

csrf = CSRFProtect()

# Paths that never show a form: the form session is neither read nor written there.
NO_FORMS = ("/api/", "/healthz", "/readyz", "/static/")


class FormSessions(SecureCookieSessionInterface):
    """Flask's session is the form session and holds nothing but the pages' CSRF token. The JSON API and the health
    checks get Flask's null session instead (readable, empty, never saved): opening the cookie built a signing
    serializer on every request for nothing."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if request.path.startswith(NO_FORMS):
            return None  # Flask substitutes its null session, which save_session is not called for
        return super().open_session(app, request)

__all__ = ["CSRFError", "api_csrf_token", "init_app", "protect_form"]


def init_app(app: Flask) -> None:
    settings = app.config["MUSUBI"]
    # Only the pages are checked (protect_form); the API has its own session-bound header.
    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)
    # A form left open on a phone through a long meeting still goes through; the cookie itself ends with the browser.
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", 12 * 3600)
    app.config.setdefault("WTF_CSRF_SSL_STRICT", True)
    app.config.setdefault("SESSION_COOKIE_NAME", "musubi_form")
    app.config.setdefault("SESSION_COOKIE_SAMESITE", "Lax")
    app.config.setdefault("SESSION_COOKIE_SECURE", settings.secure_cookies)
    app.config.setdefault("SESSION_COOKIE_HTTPONLY", True)
    app.session_interface = FormSessions()
    csrf.init_app(app)


def protect_form() -> None:
    """Refuse a form without the token its page was given (raises CSRFError)."""
    csrf.protect()


def api_csrf_token() -> str:
    """The signed-in session's token for the API's X-CSRF-Token header (the page script's writes)."""
    session = g.get("auth_session")
    return session.csrf_token if session is not None else ""
