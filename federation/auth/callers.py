"""Who is calling, remembered per web process, and forgotten everywhere before a change returns.

Every signed-in request must see a revocation made by any process on its very next request (F7). Without this
module that costs one PostgreSQL round trip per request (the sign-in query). With `MUSUBI_CALLER_CACHE=1` (and
REDIS_URL) each web process keeps the sign-in query's answers in memory, and every transaction that changes what
such an answer holds announces it on a Redis channel and waits, before its commit returns, until every web process
that could be holding the old answer has dropped it.

The guarantee rests on three rules:

1. A process serves from its cache only while it holds a *lease*: its own deadline on its own monotonic clock.
   The lease is renewed by publishing a ping on the channel and receiving it back on the same subscription, which
   proves that every announcement published before the ping has been applied (Redis delivers one channel's
   messages in order). Before each ping the process registers in a sorted set with an expiry, by Redis' clock,
   later than the deadline it will take from that ping. A lost subscription, a failed acknowledgement or any
   error ends the lease at once and empties the cache; a new subscription starts empty.
2. The writer commits, publishes the announcement, then reads the registry. A process absent from it, or expired,
   holds no lease at that moment, and can only get one from a ping published later, by which time it has applied
   the announcement. For each live process the writer waits for its acknowledgement, or until its registered
   expiry has passed by Redis' clock (a stalled process: at most one lease, `LEASE` seconds).
3. A lookup that raced an announcement is not cached: each process counts the announcements it applied, and an
   answer read from the database is stored only if the count did not move while it was read.

If Redis cannot be reached when announcing, the writer waits one lease: no process can renew without Redis.

What is announced, and how widely: a changed user (their sessions, status, unit) drops that user's entries; their
own read marks and stamps drop them too, without waiting (`read_state_key`); a changed tenant (its inbox version on
every delivery) drops its members'; anything else among the watched tables (policy version, units, a bulk statement
the code did not describe) drops everything. The hooks below see every ORM flush and every ORM-executed UPDATE or
DELETE on those tables, so a new write path is covered without anyone remembering to announce it; a hot path may
describe its change precisely with `precise()`.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from flask import Flask, current_app
from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session

log = logging.getLogger(__name__)

CHANNEL = "musubi:callers:"  # + the Redis database number: channels are shared by every database of a server
REGISTRY = "musubi:callers:live"
ACKS = "musubi:callers:ack:"
LEASE = 3.0  # seconds a process may serve from its cache after proving it hears the channel
RENEW = 1.0  # how often it proves it again
MARGIN = 0.5  # clock-rate and scheduling slack between the registered expiry and the process' own deadline
MAX_ENTRIES = 50_000  # about 1 KB each with the indexes: some 50 MB a process at most
EVERYTHING = "*"

# The tables whose rows the sign-in query reads. A change to any of them may change a remembered answer.
WATCHED = frozenset({"auth_sessions", "users", "tenants", "org_units", "policy_state"})
OPTION = "musubi_callers"  # execution option: the precise keys a bulk statement changes


def user_key(user_id: int) -> str:
    return f"u{user_id}"


def read_state_key(user_id: int) -> str:
    """The user's own read marks and stamps moved (their inbox version): dropped like `user_key`, but the writer
    does not wait for the other processes. Nothing is revoked by it, and the member who read sees it at once on
    the process that took the read, which is the one their keep-alive connection goes on asking."""
    return f"r{user_id}"


def tenant_key(tenant_id: int) -> str:
    return f"t{tenant_id}"


def precise(keys: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """Execution options for a bulk statement whose effect on remembered callers is exactly these keys."""
    return {OPTION: tuple(keys)}


class CallerCache:
    """token hash -> what the sign-in query found (any value; auth.service keeps the Caller and the session's
    expiry), with indexes by user and tenant for dropping."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._rows: OrderedDict[str, tuple[Any, int, int]] = OrderedDict()  # hash -> (row, user id, tenant id)
        self._by_user: dict[int, set[str]] = {}
        self._by_tenant: dict[int, set[str]] = {}
        self._lock = threading.Lock()
        self.generation = 0  # announcements applied; a lookup that saw it move is not stored

    def get(self, key: str) -> Any:
        with self._lock:
            found = self._rows.get(key)
            if found is None:
                return None
            self._rows.move_to_end(key)
            return found[0]

    def put(self, key: str, row: Any, user_id: int, tenant_id: int, generation: int) -> None:
        with self._lock:
            if generation != self.generation:
                return
            self._forget(key)
            self._rows[key] = (row, user_id, tenant_id)
            self._by_user.setdefault(user_id, set()).add(key)
            self._by_tenant.setdefault(tenant_id, set()).add(key)
            while len(self._rows) > self.max_entries:
                self._forget(next(iter(self._rows)))

    def _forget(self, key: str) -> None:
        found = self._rows.pop(key, None)
        if found is None:
            return
        for index, owner in ((self._by_user, found[1]), (self._by_tenant, found[2])):
            keys = index.get(owner)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del index[owner]

    def drop(self, keys: Iterable[str]) -> None:
        with self._lock:
            self.generation += 1
            for key in keys:
                if key == EVERYTHING:
                    self._rows.clear()
                    self._by_user.clear()
                    self._by_tenant.clear()
                    return
                index, owner = (self._by_tenant, key[1:]) if key[0] == "t" else (self._by_user, key[1:])
                for token in list(index.get(int(owner), ())):
                    self._forget(token)

    def __len__(self) -> int:
        return len(self._rows)


def _redis(url: str, timeout: float):  # type: ignore[no-untyped-def]
    from redis import Redis

    return Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout, health_check_interval=0)


class CallerBus:
    """One per process: the cache, its lease, the listener thread, and the announcing side."""

    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url
        self.cache = CallerCache()
        self.channel = CHANNEL + str(_redis(redis_url, 1).connection_pool.connection_kwargs.get("db", 0))
        self.process_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._deadline = 0.0
        self._pid = os.getpid()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._start_lock = threading.Lock()
        self._writer: tuple[int, Any] | None = None

    # The reading side, in request threads.

    def usable(self) -> bool:
        """True while this process holds a lease; starts the listener on first use in a process (after a fork)."""
        if self._thread is None or self._pid != os.getpid():
            self.start()
        return time.monotonic() < self._deadline

    def start(self) -> None:
        with self._start_lock:
            if self._thread is not None and self._pid == os.getpid():
                return
            # A forked child inherits the parent's memory, not its thread or its subscription.
            self._pid = os.getpid()
            self.process_id = f"{socket.gethostname()}:{self._pid}:{uuid.uuid4().hex[:8]}"
            self._lapse()
            self._writer = None
            self._stop.clear()
            self._thread = threading.Thread(target=self._listen, name="musubi-callers", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._deadline = 0.0
        if self._thread is not None:
            self._thread.join(timeout=RENEW * 3)

    def _lapse(self) -> None:
        self._deadline = 0.0
        self.cache.drop([EVERYTHING])

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                self._serve()
            except Exception as exc:  # noqa: BLE001 - any failure ends the lease; the loop reconnects
                self._lapse()
                log.warning("caller cache: channel lost (%s); serving from the database until it is back", exc)
                self._stop.wait(0.5)
        self._lapse()

    def _serve(self) -> None:
        control = _redis(self.redis_url, timeout=RENEW)
        listener = _redis(self.redis_url, timeout=RENEW * 2)
        pubsub = listener.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(self.channel)
            self._lapse()  # whatever was announced while not subscribed is unknown: start empty
            pending: tuple[str, float] | None = None
            next_ping = 0.0
            while not self._stop.is_set():
                now = time.monotonic()
                if now >= next_ping:
                    if pending is not None and now - pending[1] > LEASE - MARGIN:
                        raise ConnectionError("no echo of the last ping")
                    registered_at = time.monotonic()
                    seconds, micros = control.time()
                    token = uuid.uuid4().hex
                    renew = control.pipeline(transaction=False)  # in this order on the server: register, then ping
                    renew.zadd(REGISTRY, {self.process_id: seconds + micros / 1e6 + LEASE})
                    renew.zremrangebyscore(REGISTRY, "-inf", seconds - 60)  # processes that died long ago
                    renew.publish(self.channel, f"ping {self.process_id} {token}")
                    renew.execute()
                    pending = (token, registered_at)
                    next_ping = now + RENEW
                message = pubsub.get_message(timeout=0.2)
                if message is None or message.get("type") != "message":
                    continue
                parts = message["data"].decode("utf-8").split(" ")
                if parts[0] == "ping":
                    if pending is not None and parts[1] == self.process_id and parts[2] == pending[0]:
                        # Every announcement published before this ping has been applied.
                        self._deadline = pending[1] + LEASE - MARGIN
                        pending = None
                elif parts[0] in ("drop", "note"):
                    self.cache.drop(parts[3:])
                    if parts[0] == "drop" and parts[2] != self.process_id:
                        ack = control.pipeline(transaction=False)
                        ack.rpush(ACKS + parts[1], self.process_id)
                        ack.expire(ACKS + parts[1], 30)
                        ack.execute()
        finally:
            self._lapse()
            try:
                control.zrem(REGISTRY, self.process_id)
            except Exception:  # noqa: BLE001 - leaving; the entry expires anyway
                pass
            pubsub.close()
            listener.close()
            control.close()

    # The announcing side, in whichever process commits.

    def announce(self, keys: Iterable[str]) -> None:
        keys = sorted(set(keys))
        if not keys:
            return
        if EVERYTHING in keys:
            keys = [EVERYTHING]
        self.cache.drop(keys)  # this process at once; its listener skips its own announcement
        message_id = uuid.uuid4().hex
        if all(key[0] == "r" for key in keys):
            self._note(message_id, keys)
            return
        try:
            writer = self._writer_connection()
            # One round trip, in this order on the server: the announcement, then the clock and the registry.
            step = writer.pipeline(transaction=False)
            step.publish(self.channel, f"drop {message_id} {self.process_id} {' '.join(keys)}")
            step.time()
            step.zrangebyscore(REGISTRY, "-inf", "+inf", withscores=True)
            _, (seconds, micros), registered = step.execute()
            read_at = time.monotonic()
            now = seconds + micros / 1e6
            # Each live process' registered expiry, on this process' clock.
            waiting = {member.decode("utf-8"): read_at + (expiry - now)
                       for member, expiry in registered if expiry > now}
            waiting.pop(self.process_id, None)
            self._await(writer, ACKS + message_id, waiting)
        except Exception as exc:  # noqa: BLE001 - the change is committed; make sure no lease outlives it
            self._writer = None
            log.error("caller cache: could not announce a change (%s); waiting one lease", exc)
            time.sleep(LEASE)

    def _note(self, message_id: str, keys: list[str]) -> None:
        """Published without waiting for anyone: a lost note costs a stale read mark until the next change, never
        a revocation."""
        try:
            self._writer_connection().publish(self.channel, f"note {message_id} {self.process_id} {' '.join(keys)}")
        except Exception as exc:  # noqa: BLE001 - the read is saved; other processes show it after their lease
            self._writer = None
            log.warning("caller cache: could not announce a read mark (%s)", exc)

    def _writer_connection(self):  # type: ignore[no-untyped-def]
        if self._writer is None or self._writer[0] != os.getpid():
            # A forked job inherits the parent's socket; it must not share it.
            self._writer = (os.getpid(), _redis(self.redis_url, timeout=LEASE + 2))  # outlives BLPOP's wait
        return self._writer[1]

    @staticmethod
    def _await(writer, acks: str, waiting: dict[str, float]) -> None:  # type: ignore[no-untyped-def]
        try:
            while waiting:
                remaining = max(waiting.values()) - time.monotonic()
                if remaining <= 0:
                    return  # every process that did not answer has lost its lease by now
                answer = writer.blpop([acks], timeout=min(remaining, LEASE))
                if answer is not None:
                    waiting.pop(answer[1].decode("utf-8"), None)
                now = time.monotonic()
                waiting = {member: until for member, until in waiting.items() if until > now}
        finally:
            writer.delete(acks)


def bus() -> CallerBus | None:
    """This app's bus, or None when the cache is off."""
    return current_app.extensions.get("musubi_callers")


# Which keys a transaction changed, collected by the hooks and announced after its commit.

def _pending(session: Session) -> set[str]:
    return session.info.setdefault("musubi_callers", set())


def _flushed(session: Session, _context: Any) -> None:
    from federation.auth.models import AuthSession
    from tenants.models import Tenant, User

    keys = _pending(session)
    for obj in (*session.dirty, *session.deleted):
        table = getattr(getattr(obj, "__table__", None), "name", None)
        if table not in WATCHED:
            continue
        if isinstance(obj, User):
            keys.add(user_key(obj.id))
        elif isinstance(obj, AuthSession):
            keys.add(user_key(obj.user_id))
        elif isinstance(obj, Tenant) and obj in session.dirty:
            keys.add(tenant_key(obj.id))
        else:
            keys.add(EVERYTHING)
    for obj in session.new:
        if getattr(getattr(obj, "__table__", None), "name", None) == "policy_state":
            keys.add(EVERYTHING)


def _executed(state: ORMExecuteState) -> None:
    if not (state.is_update or state.is_delete):
        return
    table = getattr(getattr(state.statement, "table", None), "name", None)
    if table not in WATCHED:
        return
    described = state.execution_options.get(OPTION)
    _pending(state.session).update(described if described is not None else (EVERYTHING,))


def _committed(session: Session) -> None:
    keys = session.info.pop("musubi_callers", None)
    if not keys:
        return
    try:
        found = bus()
    except RuntimeError:  # committed outside an app context: nobody here could have cached anything
        found = None
    if found is not None:
        found.announce(keys)


def _rolled_back(session: Session) -> None:
    session.info.pop("musubi_callers", None)


def init_app(app: Flask) -> None:
    settings = app.config["MUSUBI"]
    if settings.caller_cache:
        if not settings.redis_url:
            raise RuntimeError("MUSUBI_CALLER_CACHE=1 needs REDIS_URL: the cache is kept current through Redis")
        app.extensions["musubi_callers"] = CallerBus(settings.redis_url)
    if not getattr(init_app, "_hooked", False):
        event.listen(Session, "after_flush", _flushed)
        event.listen(Session, "do_orm_execute", _executed)
        event.listen(Session, "after_commit", _committed)
        event.listen(Session, "after_rollback", _rolled_back)
        init_app._hooked = True  # type: ignore[attr-defined]
