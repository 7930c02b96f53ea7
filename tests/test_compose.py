"""deploy/compose.yaml, held to the code: every setting it names is one musubi reads, and its services' own commands,
started here as plain processes with its environment (pointed at the test database and Redis instead of the
containers' hostnames), make a working deployment: migrate, then web, two workers and the scheduler deliver a
federation notice to a member, report ready, and stop cleanly on SIGTERM.

Docker itself is not needed: what the file adds over these processes (images, volumes, restart policies) is the
container engine's business, while the commands and settings are ours and are what this test proves."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import yaml
from conftest import PW
from test_worker_crash import poll

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
REDIS_URL = os.environ.get("MUSUBI_TEST_REDIS_URL")
APP_SERVICES = ("migrate", "web", "worker", "scheduler")


def _source_text() -> str:
    parts = [p.read_text() for folder in ("federation", "tenants") for p in (ROOT / folder).rglob("*.py")]
    return "\n".join(parts)


def test_every_app_service_is_built_from_the_musubi_image_with_the_shared_environment():
    services = COMPOSE["services"]
    for name in APP_SERVICES:
        svc = services[name]
        assert svc["build"]["dockerfile"] == "deploy/Dockerfile", name
        assert svc["environment"]["DATABASE_URL"].endswith("@db:5432/musubi"), name
        assert svc["environment"]["REDIS_URL"] == "redis://redis:6379/0", name
        assert svc["command"], name
    # Exactly one scheduler: a second is harmless but wasteful (docs/operations.md).
    assert services["scheduler"].get("deploy", {}).get("replicas", 1) == 1
    assert services["worker"]["deploy"]["replicas"] >= 2
    # Web, workers and scheduler start only after the schema is migrated.
    for name in ("web", "worker", "scheduler"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}


def test_every_setting_the_deployment_names_is_one_musubi_reads():
    source = _source_text()
    env = dict(COMPOSE["services"]["web"]["environment"])
    example = (ROOT / "deploy" / "env.example").read_text()
    names = set(env) | {line.split("=", 1)[0] for line in example.splitlines() if re.match(r"^[A-Z_]+=", line)}
    names -= {"POSTGRES_PASSWORD"}  # the database container's own
    unread = sorted(n for n in names if f'"{n}"' not in source)
    assert unread == [], f"named in deploy/ but read nowhere: {unread}"
    # And every variable compose substitutes is given in the example file.
    wanted = set(re.findall(r"\$\{([A-Z_]+)", (ROOT / "deploy" / "compose.yaml").read_text()))
    assert wanted <= {line.split("=", 1)[0] for line in example.splitlines() if "=" in line}


def _local(env: dict[str, str], *, db_url: str, redis_url: str, tmp: Path, port: int) -> dict[str, str]:
    """The service's environment with the container hostnames and paths replaced by this machine's."""
    out = {k: str(v) for k, v in env.items()}
    out.update(DATABASE_URL=db_url, REDIS_URL=redis_url, SECRET_KEY="compose-secret-key-0123456789abcdef",
               MUSUBI_INSTANCE=str(tmp), MUSUBI_VAPID_FILE=str(tmp / "keys" / "vapid.json"),
               MUSUBI_STORAGE_DIR=str(tmp / "documents"), MUSUBI_VAPID_SUBJECT="mailto:ops@musubi.test",
               MUSUBI_PUBLIC_URL="https://musubi.test", MUSUBI_SECRET_KEY_FALLBACKS="")
    if "MUSUBI_WEB_BIND" in out:
        out["MUSUBI_WEB_BIND"] = f"127.0.0.1:{port}"
        out["MUSUBI_WEB_WORKERS"] = "2"
    return out


def _argv(command: list[str]) -> list[str]:
    # The image's python and gunicorn are this environment's.
    if command[0] == "python":
        return [sys.executable, *command[1:]]
    if command[0] == "gunicorn":
        return [sys.executable, "-m", "gunicorn", *command[1:]]
    if command[:2] == ["sh", "-c"]:
        return ["sh", "-c", command[2].replace("python ", f"{sys.executable} ")]
    raise AssertionError(f"unexpected command {command}")


def _call(port: int, method: str, path: str, token: str | None = None, body: dict | None = None,
          forwarded: bool = True) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if forwarded:  # the TLS proxy compose expects in front (MUSUBI_PROXY_HOPS=1)
        headers.update({"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"})
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, headers=headers,
                                 data=json.dumps(body).encode() if body is not None else None)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else {}
    except urllib.error.HTTPError as err:
        raw = err.read()
        err.close()
        return err.code, json.loads(raw) if raw else {}


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="needs a real Redis: set MUSUBI_TEST_REDIS_URL")
def test_the_compose_services_commands_run_a_deployment_that_delivers(world, tmp_path):
    from redis import Redis

    from devtools.benchmarks.pg import free_port

    parts = urlsplit(REDIS_URL or "")
    redis_url = urlunsplit((parts.scheme, parts.netloc, parts.path or "/14", "", ""))
    Redis.from_url(redis_url).flushdb()
    db_url = os.environ["DATABASE_URL"]
    port = free_port()
    services = COMPOSE["services"]
    procs: dict[str, subprocess.Popen] = {}

    def env_of(name: str) -> dict[str, str]:
        return {**os.environ, **_local(services[name]["environment"], db_url=db_url, redis_url=redis_url,
                                       tmp=tmp_path, port=port)}

    migrate = subprocess.run(_argv(services["migrate"]["command"]), cwd=ROOT, env=env_of("migrate"),
                             capture_output=True, text=True, timeout=120)
    assert migrate.returncode == 0, migrate.stderr
    assert (tmp_path / "keys" / "vapid.json").exists()
    again = subprocess.run(_argv(services["migrate"]["command"]), cwd=ROOT, env=env_of("migrate"),
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, "a second deploy's migrate step must succeed too: " + again.stderr

    logs = tmp_path / "logs"
    logs.mkdir()
    names = ["web", "scheduler"] + [f"worker{i}" for i in range(services["worker"]["deploy"]["replicas"])]
    try:
        for name in names:
            service = name.rstrip("0123456789") if name.startswith("worker") else name
            with (logs / f"{name}.log").open("wb") as out:
                procs[name] = subprocess.Popen(_argv(services[service]["command"]), cwd=ROOT, env=env_of(service),
                                               stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        poll(lambda: _call(port, "GET", "/healthz", forwarded=False)[0] == 200 if _port_open(port) else False,
             60, "the web service", interval=0.2)
        ready = poll(lambda: (r := _call(port, "GET", "/readyz", forwarded=False))[0] == 200 and r[1], 60,
                     "readiness (database, Redis, scheduler heartbeat)", interval=0.2)
        assert ready["checks"]["database"] == "ok" and ready["checks"]["redis"] == "ok", ready

        status, staff = _call(port, "POST", "/api/v1/auth/login", body={"tenant": "fed", "login_id": "staff",
                                                                        "password": PW})
        assert status == 200, staff
        status, notice = _call(port, "POST", "/api/v1/tenants/fed/notices", staff["token"],
                               {"title": "ブロック学習会のご案内", "body": "会場は本部です。", "category": "seminar",
                                "audience": {"all": True}})
        assert status == 201, notice
        status, _ = _call(port, "POST", f"/api/v1/tenants/fed/notices/{notice['id']}/publish", staff["token"])
        assert status == 202
        status, member = _call(port, "POST", "/api/v1/auth/login", body={"tenant": "union-a", "login_id": "a1",
                                                                         "password": PW})
        assert status == 200, member

        def delivered() -> bool:
            code, inbox = _call(port, "GET", "/api/v1/me/inbox", member["token"])
            return code == 200 and any(i["notice"]["id"] == notice["id"] for i in inbox["items"])

        poll(delivered, 60, "the notice in the member's inbox (the cascade ran on a worker)", interval=0.2)
        # union-b did not opt in: the federation notice stops at its officers (F2).
        status, other = _call(port, "POST", "/api/v1/auth/login", body={"tenant": "union-b", "login_id": "b1",
                                                                        "password": PW})
        assert status == 200
        code, inbox = _call(port, "GET", "/api/v1/me/inbox", other["token"])
        assert code == 200 and all(i["notice"]["id"] != notice["id"] for i in inbox["items"])
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        codes = {}
        for name, proc in procs.items():
            try:
                codes[name] = proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                codes[name] = proc.wait()
        Redis.from_url(redis_url).flushdb()
    # SIGTERM is a clean stop for every one of them (what `docker compose stop` sends).
    assert all(code == 0 for code in codes.values()), {n: (c, (logs / f"{n}.log").read_text()[-2000:])
                                                       for n, c in codes.items() if c != 0}


def _port_open(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0
