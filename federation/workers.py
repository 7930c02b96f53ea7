"""The RQ worker process: RQ's classes with a stop that always ends (what `docker compose stop` relies on).

Two waits in RQ's shutdown can outlast any orchestrator's grace period:

- the worker's pub/sub thread (commands such as "stop this job") reads with a 60 s timeout. Since redis-py 8
  `PubSubWorkerThread.stop()` waits for that read to end, so a SIGTERM that lands while the thread is between
  messages keeps the worker alive for up to a minute. The thread is a daemon and holds nothing: give it a second.
- the scheduler child RQ forks for delayed jobs and retries can take a SIGTERM before it has installed its own
  handlers; it then never stops and Python waits for it at exit. Ask it once more, then kill it: it holds no job,
  only a lock with a TTL.
"""
from __future__ import annotations

import inspect

from rq import SimpleWorker, Worker

PUBSUB_GRACE = 1.0  # seconds the pub/sub thread gets to notice it was stopped
SCHEDULER_GRACE = 5.0  # seconds the scheduler child gets after a second SIGTERM


class _BoundedStop:
    def unsubscribe(self) -> None:  # replaces RQ's, whose wait is unbounded with redis-py >= 8
        thread = self.pubsub_thread
        if not thread:
            return
        self.log.info("Worker %s: unsubscribing from channel %s", self.name, self.pubsub_channel_name)
        self.pubsub.unsubscribe()
        if "timeout" in inspect.signature(thread.stop).parameters:
            thread.stop(timeout=PUBSUB_GRACE)
        else:  # redis-py < 8: stop() only clears the flag
            thread.stop()
        thread.join(timeout=PUBSUB_GRACE)
        if not thread.is_alive():
            self.pubsub.close()
        # else: the daemon thread is still inside its read; the socket closes with the process.


def stop_scheduler_child(w) -> None:  # type: ignore[no-untyped-def]
    proc = getattr(getattr(w, "scheduler", None), "_process", None)
    if proc is None or not proc.is_alive():
        return
    proc.terminate()
    proc.join(SCHEDULER_GRACE)
    if proc.is_alive():
        proc.kill()
        proc.join(SCHEDULER_GRACE)


class MusubiWorker(_BoundedStop, Worker):
    """Each job in a forked child (`worker --fork`)."""


class MusubiSimpleWorker(_BoundedStop, SimpleWorker):
    """Jobs in the worker process itself (the default: the app and its connections are loaded once)."""
