"""`python cli.py bench`: every suite listed and runnable by name; `bench push` end to end at a tiny scale: the
local push service in its own process, real RQ workers on Redis (one, then two), a notice published through the
real path, and every subscription accounted for."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(not os.environ.get("MUSUBI_TEST_REDIS_URL"), reason="needs a Redis: set MUSUBI_TEST_REDIS_URL")
def test_bench_push_runs_end_to_end_and_loses_nothing(tmp_path):
    out = tmp_path / "push.json"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "MUSUBI_INSTANCE",
                                                          "MUSUBI_BENCH_DATABASE_URL", "MUSUBI_BENCH_PUSH_PROFILE")}
    env["MUSUBI_BENCH_REDIS_URL"] = os.environ["MUSUBI_TEST_REDIS_URL"]  # a database of the tests' own (flushed)
    r = subprocess.run([sys.executable, "cli.py", "bench", "push", "--scale", "0.001", "--out", str(out)],
                       cwd=PROJECT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    suite = json.loads(out.read_text())["suites"][0]
    assert suite["suite"] == "push"
    figures = {f["name"]: f for f in suite["figures"]}
    for workers in ("1 worker", "2 workers"):
        rate = figures[f"{workers}: pushes/s publish → last accepted"]
        assert rate["value"] > 0
        per_cpu = figures[f"{workers}: per worker CPU-second"]
        assert per_cpu["floor"] > 0 and per_cpu["ratio"] > 0  # the encryption floor of the same run
    assert figures["pushes lost (subscriptions − accepted, both runs)"]["value"] == 0
    assert figures["2 workers against 1 (pushes/s)"]["value"] > 0
    notes = " ".join(suite["notes"])
    # Every subscription accepted once and recorded once, by both runs; no job failed.
    assert notes.count("200 of 200 subscriptions accepted") == 2 and notes.count("200 sends recorded") == 2
    assert "none twice: True" in notes and "failed jobs 0" in notes


def test_bench_help_lists_every_suite_with_a_line_and_each_runs_by_name():
    from importlib import import_module

    from click.testing import CliRunner

    from devtools.bench import SUITE_HELP
    from federation.cli import cli

    r = CliRunner().invoke(cli, ["bench", "--help"])
    assert r.exit_code == 0, r.output
    listed = [line.split()[0] for line in r.output.splitlines() if line.startswith("    ") and line.split()]
    assert [name for name in listed if name in SUITE_HELP] == list(SUITE_HELP)
    for name, text in SUITE_HELP.items():
        assert text and "\n" not in text
        assert callable(import_module(f"devtools.benchmarks.{name}").run)  # what `bench NAME` calls
    r = CliRunner().invoke(cli, ["bench", "nosuch"])
    assert r.exit_code != 0 and "unknown suite" in r.output
