"""CSRF tokens for the pages' forms.

A signed-in form carries the session's own csrf_token (the same one the page script sends as X-CSRF-Token to the
API): a cross-site page can make the browser send the cookie, but cannot read the token. The sign-in form has no
session yet, so it uses a double-submit token: a random value set as a SameSite=Strict cookie and echoed in a hidden
field, which a cross-site form cannot know or set.
"""
from __future__ import annotations

import hmac
import secrets

from flask import Response, current_app, g, request

FIELD = "csrf_token"
SIGNIN_COOKIE = "musubi_signin_csrf"


class CSRFError(Exception):
    """A form arrived without the token its page was given."""


def form_token() -> str:
    session = g.get("auth_session")
    if session is not None:
        return session.csrf_token
    token = g.get("signin_csrf")
    if token is None:
        token = request.cookies.get(SIGNIN_COOKIE) or secrets.token_urlsafe(24)
        g.signin_csrf = token
    return token


def check_form_token() -> None:
    session = g.get("auth_session")
    sent = request.form.get(FIELD, "")
    if session is None or not sent or not hmac.compare_digest(sent, session.csrf_token):
        raise CSRFError()


def check_signin_token() -> None:
    cookie = request.cookies.get(SIGNIN_COOKIE, "")
    sent = request.form.get(FIELD, "")
    if not cookie or not sent or not hmac.compare_digest(sent, cookie):
        raise CSRFError()


def keep_signin_token(resp: Response) -> Response:
    """Set the double-submit cookie for the token the sign-in page was rendered with."""
    token = g.get("signin_csrf")
    if token and token != request.cookies.get(SIGNIN_COOKIE):
        resp.set_cookie(SIGNIN_COOKIE, token, httponly=True, samesite="Strict", path="/signin",
                        secure=current_app.config["MUSUBI"].secure_cookies, max_age=3600 * 12)
    return resp
