"""The development commands of `python cli.py`: the benchmark suites and the fault drills. They run from a checkout
(this folder is not installed with the service)."""
from __future__ import annotations

import os
import sys

import click

from federation.cli import CLIError
from federation.config import ConfigError


def _suites_help() -> str:
    from devtools.bench import SUITE_HELP

    lines = "\n".join(f"  {name:<8} {text}" for name, text in SUITE_HELP.items())
    return ("Run the benchmark suites: all of them, or the one named.\n\n\b\nSuites:\n" + lines +
            "\n\nEach figure is reported with its floor measured in the same run; see docs/benchmarks.md.")


@click.command("bench", help=_suites_help(), short_help="Run the benchmark suites (all, or one by name).")
@click.argument("suite", required=False)
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="write the results as JSON here")
@click.option("--scale", type=click.FloatRange(0.001, 1.0), default=1.0, show_default=True,
              help="fraction of the SPEC's sizes, for a quick look")
def bench(suite: str | None, out: str | None, scale: float) -> None:
    from devtools.bench import run_bench

    try:
        run_bench(suite, out=out, scale=scale)
    except (ValueError, ConfigError) as exc:
        raise CLIError(str(exc)) from None


@click.command("faults")
@click.argument("scenarios", nargs=-1)
@click.option("--yes-restart-servers", "confirmed", is_flag=True,
              help="confirm that the drills may restart the PostgreSQL and Redis they are pointed at")
def faults(scenarios: tuple[str, ...], confirmed: bool) -> None:
    """Run the fault drills (all, or those named: worker-kill, redis-restart, pg-restart, scheduler, web-kill)
    against the PostgreSQL and Redis named by MUSUBI_FAULT_DATABASE_URL and MUSUBI_FAULT_REDIS_URL. They restart
    those servers."""
    from devtools.faults import run_faults

    # Restarting a database is never something a typo should do: the servers are named and the restart confirmed.
    needed = ("MUSUBI_FAULT_DATABASE_URL", "MUSUBI_FAULT_REDIS_URL", "MUSUBI_FAULT_PG_RESTART",
              "MUSUBI_FAULT_REDIS_RESTART")
    missing = [name for name in needed if not os.environ.get(name)]
    if missing:
        raise CLIError(f"name the servers to break and how to restart them: set {', '.join(missing)}")
    if not confirmed:
        raise CLIError("the drills restart those servers: add --yes-restart-servers")
    try:
        code = run_faults(scenarios)
    except (ValueError, ConfigError) as exc:
        raise CLIError(str(exc)) from None
    if code:
        sys.exit(code)


COMMANDS = (bench, faults)
