"""The worker's stop: SIGTERM ends it, its RQ scheduler child included (what `docker compose stop` relies on)."""
from __future__ import annotations

import os
import signal
import time

import pytest


def _deaf_to_sigterm() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(120)


def test_a_worker_stops_its_scheduler_child_even_when_the_child_missed_sigterm():
    # The child RQ forks for delayed jobs can take a SIGTERM before it installs its own handlers and then
    # never stops; without the stop step the worker would hang at exit until the orchestrator kills it.
    import multiprocessing
    from types import SimpleNamespace

    from federation.workers import stop_scheduler_child

    child = multiprocessing.get_context("fork").Process(target=_deaf_to_sigterm)
    child.start()
    time.sleep(0.3)
    os.kill(child.pid, signal.SIGTERM)
    time.sleep(0.2)
    assert child.is_alive(), "the child must have ignored SIGTERM for this case to mean anything"
    started = time.monotonic()
    stop_scheduler_child(SimpleNamespace(scheduler=SimpleNamespace(_process=child)))
    assert not child.is_alive()
    assert time.monotonic() - started < 15
    stop_scheduler_child(SimpleNamespace(scheduler=None))  # a worker whose scheduler never started


REDIS_URL = os.environ.get("MUSUBI_TEST_REDIS_URL")


@pytest.mark.skipif(not REDIS_URL, reason="needs a real Redis: set MUSUBI_TEST_REDIS_URL")
def test_a_worker_unsubscribes_in_bounded_time_while_its_pubsub_thread_is_between_messages():
    # The race that kept a stopped worker alive for a minute: the pub/sub thread has read the unsubscribe reply
    # and gone back to wait (60 s) before its running flag is cleared; redis-py >= 8 then waits for that read.
    from redis import Redis
    from rq import Queue

    from federation.workers import MusubiSimpleWorker

    conn = Redis.from_url(REDIS_URL)
    w = MusubiSimpleWorker([Queue("musubi-stop-test", connection=conn)], connection=conn)
    w.subscribe()
    deadline = time.monotonic() + 5
    while not w.pubsub.subscribed and time.monotonic() < deadline:
        time.sleep(0.05)
    assert w.pubsub.subscribed
    w.pubsub.unsubscribe()  # the thread reads the reply and waits again, still running
    deadline = time.monotonic() + 5
    while w.pubsub.subscribed and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not w.pubsub.subscribed and w.pubsub_thread.is_alive()
    started = time.monotonic()
    w.unsubscribe()
    assert time.monotonic() - started < 5
