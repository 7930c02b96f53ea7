"""gunicorn settings for the web processes: `gunicorn -c python:federation.gunicorn_conf 'federation:create_app()'`.

Read from the environment so one file serves every host (docs/operations.md lists the variables). Why these:
- gthread workers: a request spends most of its time waiting on PostgreSQL, so a few threads per process keep the
  cores busy, and idle keep-alive connections (a phone between taps) wait in the poller instead of holding a thread.
- graceful_timeout: on SIGTERM (a deploy, systemd stop, `docker stop`) a worker stops accepting, finishes the
  requests in flight, then exits; only a request still running after that many seconds is cut.
- max_requests with jitter: workers are replaced one at a time now and then, so a slow leak never takes a host down,
  and never all at the same moment.
- the access log names the request id the app put on the response, so a line leads to the app's own log records.
"""
from __future__ import annotations

import os


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    if raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a whole number, got {raw!r}") from None


_cores = os.cpu_count() or 1

bind = os.environ.get("MUSUBI_WEB_BIND", "127.0.0.1:8000").split(",")
worker_class = "gthread"
workers = _env_int("MUSUBI_WEB_WORKERS", _cores)
threads = _env_int("MUSUBI_WEB_THREADS", 4)
# Open connections one worker holds, busy or idle (keep-alive). workers x this is what one host accepts at once.
worker_connections = _env_int("MUSUBI_WEB_CONNECTIONS", 1000)
keepalive = _env_int("MUSUBI_WEB_KEEPALIVE", 5)
backlog = _env_int("MUSUBI_WEB_BACKLOG", 2048)
timeout = _env_int("MUSUBI_WEB_TIMEOUT", 30)
graceful_timeout = _env_int("MUSUBI_WEB_GRACEFUL_TIMEOUT", 30)
max_requests = _env_int("MUSUBI_WEB_MAX_REQUESTS", 20000)
max_requests_jitter = max_requests // 10
# The worker heartbeat file: on tmpfs where there is one, as a container's overlay disk can stall it.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# Proxy headers are handled by the app itself (MUSUBI_PROXY_HOPS), in one place for every server it runs under.
forwarded_allow_ips = "127.0.0.1"
proc_name = "musubi-web"

accesslog = os.environ.get("MUSUBI_WEB_ACCESS_LOG", "-") or None
errorlog = "-"
loglevel = os.environ.get("MUSUBI_WEB_LOG_LEVEL", "info")
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms rid=%({x-request-id}o)s'
