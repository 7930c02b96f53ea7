"""docs/operations.md, followed literally: the rehearsal block (marked `<!-- rehearsal -->`) is run as written,
with only its database name, port and Redis database changed so it cannot collide with anything else on the machine,
and this project's environment standing in for the `.venv` it creates. Then the service it started must be ready,
take a sign-in from the user it created, and stop cleanly with the doc's own stop line."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "operations.md").read_text()
PG_URL = os.environ.get("MUSUBI_TEST_DATABASE_URL")
REDIS_URL = os.environ.get("MUSUBI_TEST_REDIS_URL")


def rehearsal_block() -> str:
    found = re.search(r"<!-- rehearsal -->\n```sh\n(.*?)\n```", DOC, re.S)
    assert found, "docs/operations.md has no rehearsal block"
    return found.group(1)


def stop_line() -> str:
    found = re.search(r"Stop everything with\s+`(kill -TERM [^`]+)`", DOC)
    assert found, "docs/operations.md gives no stop line for the rehearsal"
    return found.group(1)


def test_the_rehearsal_block_uses_only_commands_that_exist():
    block = rehearsal_block()
    commands = re.findall(r"\.venv/bin/python cli\.py ([a-z-]+(?: [a-z-]+)?)", block)
    assert {"init-db", "push init-vapid", "worker", "scheduler", "tenant create", "user create"} <= set(commands)
    for cmd in set(commands):
        out = subprocess.run([sys.executable, "cli.py", *cmd.split(), "--help"], cwd=ROOT, capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0, (cmd, out.stderr)
    for flag in re.findall(r"init-vapid (--[a-z-]+)", block):
        assert flag in subprocess.run([sys.executable, "cli.py", "push", "init-vapid", "--help"], cwd=ROOT,
                                      capture_output=True, text=True, timeout=60).stdout


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.skipif(not (PG_URL and REDIS_URL), reason="needs MUSUBI_TEST_DATABASE_URL and MUSUBI_TEST_REDIS_URL")
def test_following_the_rehearsal_literally_gives_a_ready_deployment(tmp_path):
    from devtools.benchmarks.pg import free_port

    db_name = f"musubi_stage_{uuid.uuid4().hex[:8]}"
    port = free_port()
    parts = urlsplit(REDIS_URL or "")
    redis_db = parts.path.strip("/") or "14"
    pg = urlsplit(PG_URL or "")
    block = rehearsal_block()
    # The only changes: names that must not collide, and this environment instead of a fresh .venv.
    assert block.startswith("python3 -m venv .venv")
    block = block.split("\n", 1)[1]
    block = block.replace("musubi_stage", db_name).replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    block = block.replace("127.0.0.1:6379/0", f"{parts.hostname}:{parts.port or 6379}/{redis_db}")
    block = block.replace("127.0.0.1:5432", f"{pg.hostname}:{pg.port or 5432}")
    block = block.replace(".venv/bin/", f"{Path(sys.executable).parent}/")
    shutil.copy(ROOT / "cli.py", tmp_path / "cli.py")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MUSUBI_") and k not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY")}
    from redis import Redis

    Redis.from_url(f"redis://{parts.hostname}:{parts.port or 6379}/{redis_db}").flushdb()
    try:
        run = subprocess.run(["bash", "-e", "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=300)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        ready = json.loads(run.stdout.strip().splitlines()[-1])
        assert ready["ok"] is True and ready["checks"]["database"] == "ok" and ready["checks"]["redis"] == "ok"
        login = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/auth/login", method="POST", headers={"Content-Type": "application/json"},
            data=json.dumps({"tenant": "telecom-fed", "login_id": "staff", "password": "change-me-now-1"}).encode())
        with urllib.request.urlopen(login, timeout=10) as resp:
            assert resp.status == 200 and json.loads(resp.read())["user"]["login_id"] == "staff"
        pids = [int((tmp_path / "stage" / f"{n}.pid").read_text()) for n in ("web", "worker", "scheduler")]
        stop = subprocess.run(["bash", "-c", stop_line()], cwd=tmp_path, capture_output=True, text=True, timeout=30)
        assert stop.returncode == 0, stop.stderr
        end = time.monotonic() + 40
        while time.monotonic() < end and any(_alive(p) for p in pids):
            time.sleep(0.2)
        assert not any(_alive(p) for p in pids), "a process outlived SIGTERM by 40 s"
    finally:
        for name in ("web", "worker", "scheduler"):
            pid_file = tmp_path / "stage" / f"{name}.pid"
            if pid_file.exists() and _alive(pid := int(pid_file.read_text())):
                os.kill(pid, signal.SIGKILL)
        import psycopg

        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        Redis.from_url(f"redis://{parts.hostname}:{parts.port or 6379}/{redis_db}").flushdb()


def _alive(pid: int) -> bool:
    # The rehearsal's processes are children of the bash that started them, re-parented when it exited: a stopped
    # one is gone from the process table (no zombie left for us to reap).
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat")
    return not (status.exists() and status.read_text().split()[2] == "Z")
