"""Background jobs: the same job functions run on RQ workers (REDIS_URL set) or on an in-process runner (embedded).

Jobs take ids, reload what they need through the same access helpers and firewall, and are enqueued only after the
transaction that wrote what they read has committed (`enqueue_after_commit`). Every job must be safe to run twice:
RQ is at-least-once, and the in-process runner retries too.
"""
from __future__ import annotations

import functools
import importlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, current_app, has_app_context
from sqlalchemy import event
from sqlalchemy.orm import Session

from federation.extensions import db

log = logging.getLogger("musubi.jobs")

QUEUE_NAME = "musubi"
RETRY_INTERVALS = (2, 10, 60)  # seconds between attempts after a failure


@dataclass
class JobSpec:
    func: str  # "module:function", resolvable in any process
    args: tuple[Any, ...]
    job_id: str | None = None  # letters, digits, "-" and "_" only (RQ's rule), e.g. "deliver-42-0"
    retries: int = len(RETRY_INTERVALS)
    delay: float = 0.0
    attempt: int = field(default=0)


def _resolve(path: str) -> Callable[..., Any]:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def job(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a job function: it runs inside an app context wherever it is executed (RQ worker or in process)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if has_app_context():
            return fn(*args, **kwargs)
        with worker_app().app_context():
            return fn(*args, **kwargs)

    wrapper.job_path = f"{fn.__module__}:{fn.__name__}"  # type: ignore[attr-defined]
    return wrapper


_worker_app: Flask | None = None


def worker_app() -> Flask:
    """The app a worker process runs jobs in, made once per process."""
    global _worker_app
    if _worker_app is None:
        from federation import create_app

        _worker_app = create_app()
    return _worker_app


def set_worker_app(app: Flask) -> None:
    global _worker_app
    _worker_app = app


# --- enqueueing ---------------------------------------------------------------------------------------------------

def enqueue_after_commit(fn: Callable[..., Any], *args: Any, job_id: str | None = None, delay: float = 0.0) -> None:
    """Queue `fn(*args)` to run once the current transaction commits; dropped if it rolls back."""
    spec = JobSpec(func=fn.job_path, args=args, job_id=job_id, delay=delay)  # type: ignore[attr-defined]
    session = db.session()
    pending: list[JobSpec] = session.info.setdefault("musubi_jobs", [])
    pending.append(spec)


def enqueue_now(fn: Callable[..., Any], *args: Any, job_id: str | None = None, delay: float = 0.0) -> None:
    """Queue a job with nothing to wait for (a job scheduling its follow-ups, the scheduler)."""
    backend().submit(JobSpec(func=fn.job_path, args=args, job_id=job_id, delay=delay))  # type: ignore[attr-defined]


@event.listens_for(Session, "after_commit")
def _flush_jobs(session: Session) -> None:
    pending = session.info.pop("musubi_jobs", None)
    if pending:
        b = backend()
        for spec in pending:
            b.submit(spec)


@event.listens_for(Session, "after_rollback")
def _drop_jobs(session: Session) -> None:
    session.info.pop("musubi_jobs", None)


# --- backends -----------------------------------------------------------------------------------------------------

class InlineRunner:
    """The embedded runner: one daemon thread per process executes jobs in order, with the same retry schedule as
    RQ. `drain()` waits until it is idle (tests, the demo)."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.q: queue.Queue[JobSpec | None] = queue.Queue()
        self._idle = threading.Condition()
        self._busy = 0
        self._seen_ids: set[str] = set()
        self._timers: set[threading.Timer] = set()
        self.failures: list[tuple[JobSpec, str]] = []
        self.thread = threading.Thread(target=self._loop, name="musubi-jobs", daemon=True)
        self.thread.start()

    def submit(self, spec: JobSpec) -> None:
        if spec.job_id and spec.attempt == 0:
            # Like RQ's unique job ids: a second enqueue of the same id is refused.
            if spec.job_id in self._seen_ids:
                return
            self._seen_ids.add(spec.job_id)
        with self._idle:
            self._busy += 1
        if spec.delay > 0:
            timer = threading.Timer(spec.delay, self._put_later, args=(spec,))
            timer.daemon = True
            self._timers.add(timer)
            timer.start()
        else:
            self.q.put(spec)

    def _put_later(self, spec: JobSpec) -> None:
        spec.delay = 0
        self.q.put(spec)

    def stop(self, timeout: float = 30.0) -> None:
        """Cancel retries still waiting for their time, let the jobs already queued finish, then end the thread:
        nothing is left holding a database connection (tests, and a clean shutdown of `serve`)."""
        for timer in list(self._timers):
            timer.cancel()
        self._timers.clear()
        self.q.put(None)
        self.thread.join(timeout)

    def _loop(self) -> None:
        while True:
            spec = self.q.get()
            if spec is None:
                return
            try:
                with self.app.app_context():
                    _resolve(spec.func)(*spec.args)
            except Exception as exc:  # noqa: BLE001 - a job's failure must never kill the runner
                log.exception("job %s%s failed (attempt %d)", spec.func, spec.args, spec.attempt + 1)
                if spec.attempt < spec.retries:
                    retry = JobSpec(spec.func, spec.args, spec.job_id, spec.retries,
                                    RETRY_INTERVALS[min(spec.attempt, len(RETRY_INTERVALS) - 1)], spec.attempt + 1)
                    self.submit(retry)
                else:
                    self.failures.append((spec, repr(exc)))
            finally:
                with self._idle:
                    self._busy -= 1
                    self._idle.notify_all()

    def drain(self, timeout: float = 30.0) -> None:
        end = time.monotonic() + timeout
        with self._idle:
            while self._busy > 0:
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{self._busy} jobs still pending")
                self._idle.wait(left)


class RQBackend:
    def __init__(self, redis_url: str) -> None:
        from redis import Redis
        from rq import Queue

        self.redis = Redis.from_url(redis_url)
        self.queue = Queue(QUEUE_NAME, connection=self.redis)

    def submit(self, spec: JobSpec) -> None:
        from rq import Retry
        from rq.exceptions import DuplicateJobError

        kwargs: dict[str, Any] = {"retry": Retry(max=spec.retries, interval=list(RETRY_INTERVALS)),
                                  "job_timeout": 600, "result_ttl": 3600, "failure_ttl": 7 * 86400}
        if spec.job_id:
            kwargs.update(job_id=spec.job_id, unique=True)
        func = _resolve(spec.func)
        try:
            if spec.delay > 0:
                from datetime import timedelta

                self.queue.enqueue_in(timedelta(seconds=spec.delay), func, *spec.args, **kwargs)
            else:
                self.queue.enqueue(func, *spec.args, **kwargs)
        except DuplicateJobError:
            log.info("job %s already queued; not queued twice", spec.job_id)


_backend: InlineRunner | RQBackend | None = None
_backend_lock = threading.Lock()


def backend() -> InlineRunner | RQBackend:
    global _backend
    with _backend_lock:
        if _backend is None:
            app = current_app._get_current_object() if has_app_context() else worker_app()  # type: ignore[attr-defined]
            url = app.config.get("REDIS_URL")
            _backend = RQBackend(url) if url else InlineRunner(app)
        return _backend


def start(app: Flask) -> None:
    with app.app_context():
        backend()


def drain(timeout: float = 30.0) -> None:
    b = _backend
    if isinstance(b, InlineRunner):
        b.drain(timeout)


def reset() -> None:
    """Forget the backend (tests make a fresh app per test)."""
    global _backend
    with _backend_lock:
        if isinstance(_backend, InlineRunner):
            _backend.stop()
        _backend = None
