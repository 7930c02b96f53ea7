"""The shipped gunicorn settings (federation/gunicorn_conf.py), run for real: they start the app, log every request
with its request id, and on SIGTERM let a request in flight finish before the process exits."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from conftest import PW

from devtools.benchmarks.pg import free_port, wait_http

ROOT = Path(__file__).resolve().parent.parent


def _start(tmp_path: Path, **env: str) -> tuple[subprocess.Popen, int, Path]:
    port = free_port()
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "python:federation.gunicorn_conf", "federation:create_app()"],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "MUSUBI_WEB_BIND": f"127.0.0.1:{port}", "MUSUBI_WEB_WORKERS": "1", **env})
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", timeout=30)
    except RuntimeError:
        proc.kill()
        raise AssertionError(log.read_text()) from None
    return proc, port, log


def test_sigterm_lets_the_request_in_flight_finish_then_the_server_exits(world, tmp_path):
    proc, port, log = _start(tmp_path, MUSUBI_WEB_GRACEFUL_TIMEOUT="20")
    try:
        body = json.dumps({"tenant": "union-a", "login_id": "a1", "password": PW}).encode()
        conn = socket.create_connection(("127.0.0.1", port), timeout=20)
        conn.sendall(b"POST /api/v1/auth/login HTTP/1.1\r\nHost: musubi.test\r\nContent-Type: application/json\r\n"
                     b"X-Request-ID: drill-graceful-0001\r\nConnection: close\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:10])
        time.sleep(0.5)  # the worker has the request and waits for the rest of its body
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert proc.poll() is None, "the server left before the request in flight was answered"
        conn.sendall(body[10:])
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
        conn.close()
        status_line = answer.split(b"\r\n", 1)[0]
        assert status_line == b"HTTP/1.1 200 OK", answer[:500]
        assert b"x-request-id: drill-graceful-0001" in answer.lower()
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    # One access line for the request, with the id the app put on the response.
    assert '"POST /api/v1/auth/login HTTP/1.1" 200' in text and "rid=drill-graceful-0001" in text, text
    # After the signal the port takes nobody new.
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_a_bad_setting_stops_the_server_with_its_name(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "python:federation.gunicorn_conf", "--check-config",
         "federation:create_app()"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, "MUSUBI_WEB_THREADS": "four"})
    assert out.returncode != 0
    assert "MUSUBI_WEB_THREADS must be a whole number" in out.stdout + out.stderr
