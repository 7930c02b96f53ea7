"""Per-request plumbing: who is calling, CSRF for cookie writes, security headers."""
from __future__ import annotations

import hmac

from flask import Flask, Response, g, request
from sqlalchemy import event

from federation.auth.service import load_caller
from federation.errors import APIError
from federation.extensions import db
from federation.jsonbody import JSON_BODY_LIMIT, too_large

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def init_app(app: Flask) -> None:
    with app.app_context():
        engine = db.engine
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)

    @app.before_request
    def _identify() -> None:
        if "\x00" in request.path:
            # A path segment becomes a query parameter (a slug, a login id); PostgreSQL text cannot hold NUL, and a
            # malformed request must be a 400, not a database error.
            raise APIError(400, "the path contains a NUL character", fields={"path": ["must not contain NUL"]})
        if (request.path.startswith("/api/") and request.mimetype == "application/json"
                and (request.content_length or 0) > JSON_BODY_LIMIT):
            raise too_large()  # before anything reads it; uploads (multipart) keep MAX_CONTENT_LENGTH
        load_caller()
        if g.get("via_cookie") and request.method not in SAFE_METHODS and request.path.startswith("/api/"):
            # A browser sends the cookie on cross-site requests too; only our own pages know the CSRF token.
            sent = request.headers.get("X-CSRF-Token", "")
            if not hmac.compare_digest(sent, g.caller.csrf_token):
                raise APIError(403, "missing or wrong X-CSRF-Token for a cookie-authenticated write",
                               code="csrf_failed")

    hsts = app.config["MUSUBI"].hsts_seconds

    @app.after_request
    def _headers(resp: Response) -> Response:
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "same-origin")
        resp.headers.setdefault("X-Frame-Options", "DENY")
        if hsts and request.is_secure:
            # Served over https (directly, or through MUSUBI_PROXY_HOPS trusted proxies): browsers keep to https.
            resp.headers.setdefault("Strict-Transport-Security", f"max-age={hsts}")
        if request.path.startswith("/api/"):
            resp.headers.setdefault("Cache-Control", "no-store")
        return resp


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


