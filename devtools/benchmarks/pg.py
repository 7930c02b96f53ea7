"""Scratch PostgreSQL databases and helper processes for the benchmarks that need the production stack."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

ADMIN_URL = os.environ.get("MUSUBI_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("MUSUBI_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
# Put before every scratch database's name, for a server whose databases are shared by several checkouts.
NAME_PREFIX = os.environ.get("MUSUBI_BENCH_DATABASE_PREFIX", "")


def fresh_database(name: str) -> str:
    """Drop and create `name` next to the admin database; return its URL."""
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


def drop_database(name: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def flush_redis() -> None:
    from redis import Redis

    Redis.from_url(REDIS_URL).flushdb()


def caller_cache_state() -> str:
    """Whether this suite's processes run with the caller cache, as scratch_app set it up: "on" or "off"."""
    return "on" if os.environ.get("MUSUBI_CALLER_CACHE") == "1" else "off"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    out = open(log, "w")  # noqa: SIM115 - lives as long as the process
    return subprocess.Popen([sys.executable, *args], stdout=out, stderr=subprocess.STDOUT,
                            env={**os.environ, **(env or {})},
                            cwd=Path(__file__).resolve().parents[2])


def wait_http(url: str, timeout: float = 60) -> None:
    import urllib.request

    end = time.time() + timeout
    while time.time() < end:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} never answered")


def web_command(port: int, workers: int, **settings: int | str | None) -> tuple[list[str], dict[str, str]]:
    """Web processes started the way production starts them: the python arguments and environment for gunicorn
    with the shipped settings, sized through the same variables an operator sets (MUSUBI_WEB_*). A setting given
    as None keeps the shipped default."""
    env = {"MUSUBI_WEB_BIND": f"127.0.0.1:{port}", "MUSUBI_WEB_WORKERS": str(workers),
           "MUSUBI_WEB_LOG_LEVEL": "warning",
           **{f"MUSUBI_WEB_{k.upper()}": str(v) for k, v in settings.items() if v is not None}}
    return ["-m", "gunicorn", "-c", "python:federation.gunicorn_conf", "federation:create_app()"], env


def stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()


@dataclass
class Scratch:
    tmp: Path
    procs: list[subprocess.Popen] = field(default_factory=list)

    def spawn(self, args: list[str], name: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        proc = spawn(args, self.tmp / f"{name}.log", env)
        self.procs.append(proc)
        return proc

    def gunicorn(self, workers: int = 2, threads: int = 4, access_log: str = "", **settings: int | str) -> int:
        port = free_port()
        args, env = web_command(port, workers, threads=threads, access_log=access_log, **settings)
        self.spawn(args, "gunicorn", env=env)
        wait_http(f"http://127.0.0.1:{port}/healthz")
        return port


@contextmanager
def scratch_app(db_name: str, *, redis: bool = False, caller_cache: bool = False) -> Iterator[Scratch]:
    """A fresh PostgreSQL database (and Redis db) with the schema migrated, the app context pushed, and every
    process started through the Scratch stopped and the database dropped afterwards. `caller_cache` runs this
    process and every one it starts with MUSUBI_CALLER_CACHE=1, as the shipped deployment does."""
    from devtools.bench import scratch_env

    db_name = NAME_PREFIX + db_name
    # MUSUBI_BENCH_CALLER_CACHE=0 runs a suite the old way, to compare the two on the same day.
    caller_cache = caller_cache and os.environ.get("MUSUBI_BENCH_CALLER_CACHE", "1") != "0"
    url = fresh_database(db_name)
    scratch: Scratch | None = None
    try:
        with tempfile.TemporaryDirectory(prefix="musubi-bench-") as tmp:
            scratch_env(Path(tmp), url, REDIS_URL if redis or caller_cache else None, caller_cache=caller_cache)
            if redis or caller_cache:
                flush_redis()
            from federation import create_app
            from federation.database import upgrade

            app = create_app()
            scratch = Scratch(Path(tmp))
            with app.app_context():
                upgrade()
                yield scratch
    finally:
        if scratch is not None:
            stop(scratch.procs)
        drop_database(db_name)
