"""`python cli.py bench [SUITE]`: the SPEC's performance suites, each reported as a ratio to its floor measured in
the same run (the machines are shared and noisy: ratios hold, absolute figures drift).

Suites: authz (in process, SQLite scratch database), cascade and inbox (PostgreSQL via MUSUBI_BENCH_DATABASE_URL,
Redis via MUSUBI_BENCH_REDIS_URL), push (the local push service and RQ workers on Redis; SQLite, or PostgreSQL when
MUSUBI_BENCH_DATABASE_URL is set), revoke (two processes). Each writes a scratch
database of its own; nothing touches the configured DATABASE_URL.
"""
from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click

# Every suite, with the line `python cli.py bench --help` shows for it.
SUITE_HELP = {
    "authz": "permission checks with 200,000 users in 500 tenants, cold and warm, against a dict lookup",
    "cascade": "one federation notice to 200,000 members in 500 unions on PostgreSQL, against COPY",
    "inbox": "GET /api/v1/me/inbox through gunicorn on PostgreSQL, against a trivial endpoint",
    "push": "one notice to 200,000 subscriptions at the local push service through 1 and 2 RQ workers, against "
            "encryption alone",
    "revoke": "a role revoked or a user suspended, then the very next request in another process",
    "ballot": "10,000 voters cast on a 5-option secret ballot, then tally and verify, against the curve arithmetic",
    "load": "members reading and stamping, editors publishing, 2,000 connections through gunicorn",
}
SUITES = tuple(SUITE_HELP)


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    target: str = ""
    floor: float | None = None
    ok: bool | None = None

    @property
    def ratio(self) -> float | None:
        return self.value / self.floor if self.floor else None


@dataclass
class SuiteResult:
    suite: str
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *args: Any, **kwargs: Any) -> Figure:
        fig = Figure(*args, **kwargs)
        self.figures.append(fig)
        return fig


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1)))))
    return ordered[k]


def timed_ns(fn: Callable[[], object], n: int) -> list[float]:
    out = []
    clock = time.perf_counter_ns
    for _ in range(n):
        t0 = clock()
        fn()
        out.append((clock() - t0) / 1000.0)
    return out


def scratch_env(tmp: Path, database_url: str | None = None, redis_url: str | None = None,
                caller_cache: bool = False) -> None:
    os.environ["MUSUBI_INSTANCE"] = str(tmp)
    # Set or cleared for every suite, so one suite's choice never leaks into the next one of the same run.
    if caller_cache:
        os.environ["MUSUBI_CALLER_CACHE"] = "1"
    else:
        os.environ.pop("MUSUBI_CALLER_CACHE", None)
    os.environ["DATABASE_URL"] = database_url or f"sqlite:///{tmp / 'bench.db'}"
    if redis_url:
        os.environ["REDIS_URL"] = redis_url
    else:
        os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("SECRET_KEY", "bench-secret-key-0123456789abcdef")
    # The benchmarks and fault drills push to the local push service on 127.0.0.1, refused unless allowed.
    os.environ.setdefault("MUSUBI_PUSH_ALLOW_PRIVATE", "127.0.0.1")


def run_bench(suite: str | None, *, out: str | None, scale: float) -> list[SuiteResult]:
    names = SUITES if suite in (None, "all") else (suite,)
    for name in names:
        if name not in SUITES:
            raise ValueError(f"unknown suite {name!r}; one of {', '.join(SUITES)}")
    results: list[SuiteResult] = []
    for name in names:
        from importlib import import_module

        module = import_module(f"devtools.benchmarks.{name}")
        click.echo(f"== {name}", err=True)
        results.append(module.run(scale=scale))
    _print(results)
    payload = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "node": platform.node()},
               "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "scale": scale,
               "suites": [{"suite": r.suite, "notes": r.notes,
                           "figures": [{**asdict(f), "ratio": f.ratio} for f in r.figures]} for r in results]}
    path = Path(out or "bench-results.json")
    path.write_text(json.dumps(payload, ensure_ascii=False, indent=2))
    click.echo(f"results written to {path}", err=True)
    return results


def _print(results: list[SuiteResult]) -> None:
    click.echo(f"{'suite':<8} {'figure':<44} {'value':>12} {'floor':>12} {'ratio':>8}  target")
    for r in results:
        for f in r.figures:
            ratio = f"{f.ratio:.2f}" if f.ratio is not None else ""
            floor = f"{f.floor:.2f}" if f.floor is not None else ""
            mark = "" if f.ok is None else ("  ok" if f.ok else "  MISSED")
            click.echo(f"{r.suite:<8} {f.name:<44} {f.value:>10.2f} {f.unit:<2}{floor:>11} {ratio:>8}  "
                       f"{f.target}{mark}")
        for note in r.notes:
            click.echo(f"{'':<8} note: {note}")

