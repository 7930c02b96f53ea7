"""Logs an operator can follow across processes: every record carries the request id (taken from X-Request-ID when
a proxy set a sane one, else made here, and echoed in the response), and MUSUBI_LOG_FORMAT=json writes one JSON
object a line for log shippers."""
from __future__ import annotations

import json
import logging
import re
import uuid

from flask import Flask, Response, g, has_request_context, request

_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = g.get("request_id", "-") if has_request_context() else "-"
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"), "level": record.levelname,
               "logger": record.name, "message": record.getMessage(),
               "request_id": getattr(record, "request_id", "-")}
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def init_app(app: Flask, fmt: str) -> None:
    root = logging.getLogger("musubi")
    if not any(getattr(h, "musubi", False) for h in root.handlers):  # one handler per process, however many apps
        handler = logging.StreamHandler()
        handler.musubi = True  # type: ignore[attr-defined]
        handler.addFilter(RequestIdFilter())
        handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
        root.addHandler(handler)
    root.setLevel(logging.INFO)

    @app.before_request
    def _request_id() -> None:
        given = request.headers.get("X-Request-ID", "")
        g.request_id = given if _ID.match(given) else uuid.uuid4().hex

    @app.after_request
    def _echo(resp: Response) -> Response:
        resp.headers.setdefault("X-Request-ID", g.get("request_id", ""))
        return resp
