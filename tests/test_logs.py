"""Request ids: every response carries one (a sane one from the proxy is kept), every log record of the request
names it, and the JSON format is one object a line."""
from __future__ import annotations

import json
import logging

from federation.logs import JsonFormatter, RequestIdFilter


def test_every_response_carries_a_request_id_and_a_sane_one_from_the_proxy_is_kept(client):
    r = client.get("/healthz")
    assert len(r.headers["X-Request-ID"]) == 32
    assert client.get("/healthz", headers={"X-Request-ID": "edge-1234abcd"}).headers["X-Request-ID"] == \
        "edge-1234abcd"
    odd = "<script>alert(1)</script> spaces"
    replaced = client.get("/healthz", headers={"X-Request-ID": odd}).headers["X-Request-ID"]
    assert replaced != odd and len(replaced) == 32


def test_log_records_name_the_request_and_json_lines_parse(app):
    record = logging.LogRecord("musubi.test", logging.INFO, __file__, 1, "delivered %s", ("42",), None)
    with app.test_request_context("/"):
        from flask import g

        g.request_id = "req-abcdef12"
        assert RequestIdFilter().filter(record)
    line = JsonFormatter().format(record)
    parsed = json.loads(line)
    assert parsed["request_id"] == "req-abcdef12" and parsed["message"] == "delivered 42"
    assert parsed["level"] == "INFO" and parsed["logger"] == "musubi.test"
