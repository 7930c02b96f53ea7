"""One error shape for the whole API: {"error": {"code", "message", "fields"}} (SPEC "HTTP API").

Bad input is a 4xx naming the field at fault; a denial never says more than its status (F8); an unexpected error is
a 500 with a request id and nothing from the traceback.
"""
from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from federation.firewall import Denied

log = logging.getLogger("musubi.errors")

CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
         409: "conflict", 413: "too_large", 415: "unsupported_media_type", 422: "invalid", 429: "rate_limited",
         500: "internal_error"}
MESSAGES = {401: "sign in first", 403: "you may not do this", 404: "not found", 405: "method not allowed",
            413: "the request is too large", 429: "too many attempts; try again later",
            500: "something went wrong on our side"}


class APIError(Exception):
    """Raise from a service or view for a client error; `fields` maps the field at fault to its message(s)."""

    def __init__(self, status: int, message: str, *, fields: dict[str, Any] | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message = status, message
        self.fields = fields or {}
        self.code = code or CODES.get(status, "error")
        self.headers = headers or {}


def invalid(field: str, message: str) -> APIError:
    return APIError(422, f"{field}: {message}", fields={field: [message]})


def conflict(field: str, message: str) -> APIError:
    return APIError(409, message, fields={field: [message]})


def error_response(status: int, message: str | None = None, fields: dict[str, Any] | None = None,
                   code: str | None = None, headers: dict[str, str] | None = None) -> Response:
    body = {"error": {"code": code or CODES.get(status, "error"), "message": message or MESSAGES.get(status, ""),
                      "fields": fields or {}}}
    resp = jsonify(body)
    resp.status_code = status
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def _flatten_webargs(messages: Any) -> dict[str, Any]:
    """webargs nests messages by location ({"json": {...}, "query": {...}}); the client wants field names."""
    fields: dict[str, Any] = {}
    if isinstance(messages, dict):
        for location, errs in messages.items():
            if isinstance(errs, dict):
                fields.update(errs)
            else:
                fields[location] = errs
    return fields


def register(app: Flask) -> None:
    @app.errorhandler(APIError)
    def _api_error(exc: APIError) -> Response:
        return error_response(exc.status, exc.message, exc.fields, exc.code, exc.headers)

    @app.errorhandler(Denied)
    def _denied(exc: Denied) -> Response:
        # Deliberately the same body for every denial: nothing about the object, its tenant or its contents (F8).
        return error_response(exc.status)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        status = exc.code or 500
        data = getattr(exc, "data", None) or {}
        fields = _flatten_webargs(data.get("messages")) if isinstance(data, dict) else {}
        if status == 422 and fields:
            message = "; ".join(f"{k}: {_first(v)}" for k, v in fields.items())
            if "_schema" in fields:
                status = 400  # the body is not an object at all
            return error_response(status, message, fields)
        if status == 400 and fields:
            return error_response(400, "the request body is not valid JSON", fields)
        message = MESSAGES.get(status) or (exc.description if status < 500 else None)
        # Only Allow is carried over from werkzeug's HTML answer: its Content-Length and Content-Type describe a body
        # that is no longer sent, and a wrong length desynchronises a keep-alive connection.
        allow = exc.get_response().headers.get("Allow") if status == 405 else None
        return error_response(status, message, headers={"Allow": allow} if allow else None)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        # The request id lets the operator find the traceback in the logs; the client gets nothing else.
        return error_response(500, fields={"request_id": [g.get("request_id", "")]})


def _first(value: Any) -> str:
    while isinstance(value, list | tuple) and value:
        value = value[0]
    if isinstance(value, dict):
        key = next(iter(value))
        return f"{key}: {_first(value[key])}"
    return str(value)
