"""Periodic jobs, declared as data with stable ids, run by APScheduler: inside `serve` when embedded, or by the one
`python cli.py scheduler` process in production. Each run gets its own app context (a fresh policy snapshot and
session), and a failing run is logged, never fatal."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from flask import Flask

log = logging.getLogger("musubi.scheduler")


@dataclass(frozen=True)
class Periodic:
    id: str
    func: Callable[[], object]
    seconds: float


def periodic_jobs(tick_seconds: float) -> list[Periodic]:
    from federation.scheduler.notices import tick

    return [Periodic("notices.tick", tick, tick_seconds), Periodic("scheduler.heartbeat", heartbeat, 15)]


_last_beat = 0.0


def heartbeat() -> None:
    """Readiness checks read this: a scheduler that stopped ticking is reported, not silently missed."""
    global _last_beat
    _last_beat = time.time()
    from federation.jobs import backend

    b = backend()
    redis = getattr(b, "redis", None)
    if redis is not None:
        redis.set("musubi:scheduler:heartbeat", str(_last_beat), ex=120)


def _runner(app: Flask, func: Callable[[], object]) -> Callable[[], None]:
    def run() -> None:
        with app.app_context():
            try:
                func()
            except Exception:  # noqa: BLE001 - one bad tick must not stop the next
                log.exception("periodic job %s failed", getattr(func, "__name__", func))
                from federation.extensions import db

                db.session.rollback()

    return run


def _configure(scheduler: BackgroundScheduler | BlockingScheduler, app: Flask) -> None:
    tick = app.config["MUSUBI"].scheduler_tick_seconds
    for p in periodic_jobs(tick):
        # coalesce + max_instances=1: a slow tick is never run twice side by side, missed runs collapse into one.
        scheduler.add_job(_runner(app, p.func), "interval", seconds=p.seconds, id=p.id, replace_existing=True,
                          coalesce=True, max_instances=1, misfire_grace_time=None, next_run_time=None)
        scheduler.get_job(p.id).modify(next_run_time=_now())  # run the first tick at once, then on the interval


def _now():  # type: ignore[no-untyped-def]
    from datetime import datetime

    return datetime.now(UTC)


_embedded: BackgroundScheduler | None = None
_lock = threading.Lock()


def start_embedded(app: Flask) -> BackgroundScheduler:
    global _embedded
    with _lock:
        if _embedded is None:
            _embedded = BackgroundScheduler(timezone="UTC")
            _configure(_embedded, app)
            _embedded.start()
        return _embedded


def run_forever(app: Flask) -> None:
    """Run until SIGTERM or SIGINT, then stop cleanly: the tick in progress finishes (its claims are committed or
    rolled back as a whole, so nothing is half-published) and the process exits 0, which is what a supervisor
    (systemd, `docker compose stop`) expects of a deliberate stop."""
    import signal

    scheduler = BlockingScheduler(timezone="UTC")
    _configure(scheduler, app)

    def stop(signum: int, frame: object) -> None:
        # Not waiting here (the handler runs on the main loop's own thread): this wakes the loop so start() returns;
        # the executor's threads are joined when the interpreter exits, so a tick already running still finishes.
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    scheduler.start()
