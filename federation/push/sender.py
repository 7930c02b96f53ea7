"""Sending Web Push from background jobs, in batches.

push_deliveries  the devices of the recipients of freshly written deliveries, split into batches
send_batch       one batch: pywebpush encrypts (aes128gcm, a fresh ephemeral key per message), a VAPID header signed
                 once per push-service origin is reused, one asyncio loop per process posts
                 (push/http.py) over keep-alive connections pooled per push-service origin and reused
                 across batches
push_reminder    event reminders to recipients who have not reacted
push_retraction  a retracted notice replaces its pending push (same Topic)

Exactly once per device: a PushSend row is written for every push the service accepted, and a batch skips devices
that already have one. 404/410 delete the subscription. 429 waits for Retry-After, 5xx and timeouts back off; only
the devices left over are re-queued. An origin that keeps failing is paused for a while (circuit breaker).
"""
from __future__ import annotations

import asyncio
import atexit
import email.utils
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit

from flask import current_app
from pywebpush import WebPusher
from sqlalchemy import delete, select

from federation.dbutil import insert_ignore
from federation.extensions import db, utcnow
from federation.jobs import enqueue_now, job
from federation.notices.models import Notice, Receipt
from federation.push import addresses, vapid
from federation.push.http import Origin, ProtocolError, PushHTTP, request_head, request_path
from federation.push.records import PushSend, PushSubscription
from tenants.models import User

log = logging.getLogger("musubi.push")

MAX_PLAINTEXT = 3993  # 4096-byte body limit minus aes128gcm's 103 bytes of overhead
BATCH = 2000  # per job: the firewall query, the sends' insert and RQ's own work are paid once per batch
MAX_ATTEMPTS = 6
BACKOFF = (2, 5, 15, 45, 120, 300)
TTL = {"urgent": 6 * 3600, "reminder": 6 * 3600}
DEFAULT_TTL = 3 * 86400
BREAKER_THRESHOLD = 20  # consecutive failures of one origin...
BREAKER_PAUSE = 60.0  # ...pause it this many seconds


# --- payload ------------------------------------------------------------------------------------------------------

def payload(notice: Notice, kind: str) -> bytes:
    """The push carries the title, a short excerpt and a link; the notice itself is fetched when opened."""
    excerpt = " ".join(notice.body.split())[:140]
    data: dict[str, Any] = {"v": 1, "kind": kind, "notice_id": notice.id, "tenant": notice.tenant.name,
                            "category": notice.category, "title": notice.title, "excerpt": excerpt,
                            "url": f"/notices/{notice.id}"}
    if kind == "retract":
        data.update(title="", excerpt="")
    raw = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    while len(raw) > MAX_PLAINTEXT and data["excerpt"]:
        data["excerpt"] = data["excerpt"][: len(data["excerpt"]) // 2]
        raw = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return raw


def urgency(notice: Notice, kind: str) -> str:
    return "high" if notice.category == "urgent" and kind == "notice" else "normal"


def topic(notice: Notice, kind: str) -> str:
    # One topic per notice, so a retraction or correction replaces a push the device has not fetched yet.
    return f"n{notice.id}" if kind in ("notice", "retract") else f"r{notice.id}"


def parse_retry_after(value: str | None) -> float:
    """Retry-After in seconds, given either as seconds or as an HTTP date (RFC 9110 allows both)."""
    if not value:
        return 0.0
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 0.0
    if when.tzinfo is None:
        return 0.0
    return max(0.0, (when - utcnow()).total_seconds())


# --- endpoints ----------------------------------------------------------------------------------------------------

def endpoint_problem(endpoint: str) -> str | None:
    """What is wrong with a subscription's endpoint under this server's settings (https, public address), or None."""
    return addresses.endpoint_problem(endpoint, current_app.config["MUSUBI"].push_allow_private)


# --- sending ------------------------------------------------------------------------------------------------------

@dataclass
class Outcome:
    subscription_id: int
    status: int  # HTTP status, 0 for a network error / timeout, REFUSED for an address push may not reach
    retry_after: float = 0.0
    reason: str = ""


REFUSED = -1  # never connected: the endpoint is, or resolves to, a private address (push/addresses.py)


class Breaker:
    """Per-origin circuit breaker, per process: after BREAKER_THRESHOLD failures in a row, pause the origin."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fails: dict[str, int] = {}
        self._open_until: dict[str, float] = {}

    def open_for(self, origin: str) -> float:
        return max(0.0, self._open_until.get(origin, 0.0) - time.monotonic())

    def record(self, origin: str, ok: bool) -> None:
        with self._lock:
            if ok:
                self._fails.pop(origin, None)
                return
            n = self._fails.get(origin, 0) + 1
            self._fails[origin] = n
            if n >= BREAKER_THRESHOLD:
                self._open_until[origin] = time.monotonic() + BREAKER_PAUSE
                self._fails[origin] = 0
                log.warning("push service %s keeps failing: paused for %.0f s", origin, BREAKER_PAUSE)


class Sender:
    """One per process. Batches are sent on one asyncio loop with pywebpush's encryption: up to `concurrency`
    requests in flight over keep-alive connections, all on one thread. Measured on our machines this gives more
    pushes per CPU-second than a thread pool (whose threads mostly fight over the GIL), and still keeps many
    requests waiting on slow push services at once.

    The loop runs on a thread of its own for the life of the process, with one client (push/http.py) that pools
    keep-alive connections per push-service origin: the batches a worker runs one after another reuse the
    connections of the ones before instead of a new TCP (and TLS) handshake per batch and origin. A rule change for
    private addresses gets a client of its own, so a connection opened under the old rule is never reused under
    the new one. A forked child starts its own loop; `close()` (worker stop, exit) closes the connections cleanly."""

    def __init__(self, concurrency: int, timeout: float) -> None:
        self.concurrency = max(1, concurrency)
        self.timeout = timeout
        self.breaker = Breaker()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = 0
        # Touched only on the loop's thread.
        self._clients: dict[tuple[addresses.Network, ...], PushHTTP] = {}
        self._gate: asyncio.Semaphore | None = None

    # --- the process's loop and clients ---

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid():
                # None yet, or a forked child: the parent's loop thread does not exist here and its sockets are the
                # parent's, so start afresh rather than touch them.
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=self._run, args=(loop,), name="musubi-push", daemon=True)
                thread.start()
                self._loop, self._thread, self._pid = loop, thread, os.getpid()
                self._clients, self._gate = {}, None
            return self._loop

    @staticmethod
    def _run(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        loop.run_forever()

    def _client(self, allowed: tuple[addresses.Network, ...]) -> PushHTTP:
        client = self._clients.get(allowed)
        if client is None:
            client = self._clients[allowed] = PushHTTP(self.timeout, allowed)
        return client

    def close(self) -> None:
        """Close the pooled connections and end the loop's thread (a worker stopping, the process exiting). The
        next send starts a new loop."""
        with self._lock:
            loop, thread, pid, clients = self._loop, self._thread, self._pid, self._clients
            self._loop, self._thread, self._clients, self._gate = None, None, {}, None
        if loop is None or pid != os.getpid() or thread is None or not thread.is_alive():
            return

        async def close_clients() -> None:
            for client in list(clients.values()):
                await client.close()

        try:
            asyncio.run_coroutine_threadsafe(close_clients(), loop).result(timeout=10)
        except Exception:  # noqa: BLE001 - closing must not fail a shutdown
            log.warning("push connections not closed cleanly", exc_info=True)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        if not thread.is_alive():
            loop.close()

    # --- sending ---

    @staticmethod
    def _prepare(origin: str, parts: SplitResult, endpoint: str, allowed: tuple[addresses.Network, ...],
                 keys: vapid.VapidKeys, headers: dict[str, str], ttl: int) -> _Route:
        """Once per origin and batch: the URL's check (scheme, host, port and user info are all in the origin), and
        the header block every message to that origin carries (VAPID signed for its audience)."""
        problem = addresses.endpoint_problem(endpoint, allowed)
        if problem:
            return _Route(problem)
        where = Origin.of(parts)
        try:
            head = request_head(where, {**headers, "TTL": str(ttl), "Authorization": keys.authorization_for(origin),
                                        "Content-Encoding": "aes128gcm", "Content-Type": "application/octet-stream"})
        except ValueError as exc:
            return _Route(str(exc))
        return _Route(None, where, head)

    async def _send_one(self, client: PushHTTP, gate: asyncio.Semaphore, sub: dict[str, Any], origin: str,
                        route: _Route, target: bytes, body: bytes) -> Outcome:
        if route.problem:
            return Outcome(sub["id"], REFUSED, reason=route.problem)
        paused = self.breaker.open_for(origin)
        if paused > 0:
            return Outcome(sub["id"], 0, paused)
        async with gate:
            try:
                # pywebpush encrypts (aes128gcm, a fresh ephemeral key per message); the request is posted with the
                # headers pywebpush would send, rendered once per batch and origin.
                encrypted = WebPusher(sub).encode(body, "aes128gcm")["body"]
                resp = await client.post(route.where, target, route.head, encrypted)  # type: ignore[arg-type]
            except addresses.RefusedAddress as exc:
                return Outcome(sub["id"], REFUSED, reason=str(exc))
            except (TimeoutError, OSError, ProtocolError) as exc:
                log.info("push to %s failed: %s", origin, exc or type(exc).__name__)
                self.breaker.record(origin, False)
                return Outcome(sub["id"], 0)
        status = resp.status
        self.breaker.record(origin, status < 500 and status != 429)
        retry_after = parse_retry_after(resp.retry_after) if status == 429 else 0.0
        return Outcome(sub["id"], status, retry_after)

    async def _send_all(self, keys: vapid.VapidKeys, subs: list[dict[str, Any]], body: bytes,
                        headers: dict[str, str], ttl: int, allowed: tuple[addresses.Network, ...]) -> list[Outcome]:
        if self._gate is None:
            # One gate for the process: batches sent at once by several threads share the concurrency.
            self._gate = asyncio.Semaphore(self.concurrency)
        gate, client = self._gate, self._client(allowed)
        # The URL as written is checked again (the row may predate the rule), once per origin and batch; a host
        # name is checked on its resolved addresses by the client, when connecting.
        routes: dict[str, _Route] = {}
        work: list[tuple[dict[str, Any], str, _Route, bytes]] = []
        for sub in subs:
            try:
                parts = urlsplit(sub["endpoint"])
                origin = f"{parts.scheme}://{parts.netloc}"
                target = request_path(parts.path, parts.query)
            except ValueError:
                work.append((sub, "", _Route("not a URL"), b""))
                continue
            route = routes.get(origin)
            if route is None:
                route = routes[origin] = self._prepare(origin, parts, sub["endpoint"], allowed, keys, headers, ttl)
            work.append((sub, origin, route, target))
        outcomes: list[Outcome | None] = [None] * len(work)
        pending = iter(range(len(work)))

        async def lane() -> None:
            # A fixed number of lanes take the next message as they finish one: no task per message.
            for i in pending:
                sub, origin, route, target = work[i]
                outcomes[i] = await self._send_one(client, gate, sub, origin, route, target, body)

        await asyncio.gather(*(lane() for _ in range(min(self.concurrency, len(work)))))
        return outcomes  # type: ignore[return-value]

    def send_all(self, keys: vapid.VapidKeys, subs: list[dict[str, Any]], body: bytes, headers: dict[str, str],
                 allowed: tuple[addresses.Network, ...] | None = None) -> list[Outcome]:
        """Send to every subscription; an endpoint that is, or resolves to, an address push may not reach is never
        connected to: its outcome is REFUSED, logged here, and the callers neither retry nor delete it."""
        if not subs:
            return []
        ttl = int(headers.get("TTL", DEFAULT_TTL))
        rest = {k: v for k, v in headers.items() if k != "TTL"}
        if allowed is None:
            allowed = current_app.config["MUSUBI"].push_allow_private
        allowed = tuple(allowed)
        loop = self._running_loop()
        outcomes = asyncio.run_coroutine_threadsafe(self._send_all(keys, subs, body, rest, ttl, allowed),
                                                    loop).result()
        for o in outcomes:
            if o.status == REFUSED:
                log.warning("push to subscription %s refused, not sent: %s", o.subscription_id, o.reason)
        return outcomes


@dataclass(frozen=True)
class _Route:
    """How a batch's messages to one origin go: a problem that stops them, or where they go and their headers."""
    problem: str | None
    where: Origin | None = None
    head: bytes = b""


_sender: Sender | None = None
_sender_lock = threading.Lock()


def sender() -> Sender:
    global _sender
    with _sender_lock:
        if _sender is None:
            settings = current_app.config["MUSUBI"]
            _sender = Sender(settings.push_concurrency, settings.push_timeout_seconds)
            atexit.register(_sender.close)
        return _sender


def close_sender() -> None:
    """Close this process's push connections (a worker stopping; also run at exit)."""
    global _sender
    with _sender_lock:
        current, _sender = _sender, None
    if current is not None:
        current.close()


# --- jobs ---------------------------------------------------------------------------------------------------------

def _queue_batches(notice_id: int, kind: str, sub_ids: list[int]) -> int:
    for i in range(0, len(sub_ids), BATCH):
        batch = sub_ids[i:i + BATCH]
        enqueue_now(send_batch, notice_id, kind, batch, 0, job_id=f"push-{notice_id}-{kind}-{batch[0]}-0")
    return len(sub_ids)


def _pending_subscriptions(notice_id: int, kind: str, users) -> list[int]:  # type: ignore[no-untyped-def]
    already = select(PushSend.subscription_id).where(PushSend.notice_id == notice_id, PushSend.kind == kind)
    readers = select(Receipt.user_id).where(Receipt.notice_id == notice_id, Receipt.read_at.is_not(None))
    stmt = (select(PushSubscription.id).where(PushSubscription.user_id.in_(users),
                                              PushSubscription.id.not_in(already))
            .order_by(PushSubscription.id))
    if kind == "notice":
        # Whoever has opened it needs no push about it; a reminder is about reacting, and a retraction must follow.
        stmt = stmt.where(PushSubscription.user_id.not_in(readers))
    if kind == "reminder":
        reacted = select(Receipt.user_id).where(Receipt.notice_id == notice_id, Receipt.reaction.is_not(None))
        stmt = stmt.where(PushSubscription.user_id.not_in(reacted))
    return list(db.session.execute(stmt).scalars())


def _retraction_devices(notice_id: int) -> list[int]:
    """Devices that were sent the notice and still belong to the (active) user they were sent to."""
    # Per device, not per user: a device subscribed after the push went out has nothing to replace, and a push it
    # must show would be a notification about nothing. A device that has since moved to someone else (the same
    # browser, signed in as another person) is not theirs to be told about.
    stmt = (select(PushSubscription.id).join(PushSend, (PushSend.subscription_id == PushSubscription.id)
                                             & (PushSend.user_id == PushSubscription.user_id))
            .join(User, User.id == PushSubscription.user_id)
            .where(PushSend.notice_id == notice_id, PushSend.kind == "notice", User.status == "active"))
    already = select(PushSend.subscription_id).where(PushSend.notice_id == notice_id, PushSend.kind == "retract")
    return list(db.session.execute(stmt.where(PushSubscription.id.not_in(already))
                                   .order_by(PushSubscription.id)).scalars())


def _allowed_now(notice: Notice, kind: str, delivery_ids: list[int] | None = None,
                 among: list[int] | None = None) -> list[int]:
    """The subscriptions (all, or those `among` the given ids) a push of `kind` about the notice may go to at this
    moment and have not had it yet. Notices and reminders ask the firewall through cascade.recipients_now, the
    cascade's own delivery rule."""
    if kind == "retract":
        devices = _retraction_devices(notice.id)
        return devices if among is None else sorted(set(devices) & set(among))
    from federation.notices.cascade import recipients_now

    unions = None
    if among is not None:
        # Only the deliveries to the unions these devices' owners belong to can reach them.
        unions = list(db.session.execute(select(PushSubscription.tenant_id).distinct()
                                         .where(PushSubscription.id.in_(among))).scalars())
    users = recipients_now(notice, delivery_ids, unions=unions)
    if users is None:
        return []
    found = _pending_subscriptions(notice.id, kind, users)
    return found if among is None else sorted(set(found) & set(among))


@job
def push_deliveries(notice_id: int, delivery_ids: list[int]) -> None:
    notice = db.session.get(Notice, notice_id)
    if notice is None or notice.status != "published":
        return
    _queue_batches(notice_id, "notice", _allowed_now(notice, "notice", delivery_ids))


@job
def push_reminder(notice_id: int) -> None:
    """Recipients of an event notice who have not reacted yet get one reminder, if the firewall still lets the
    notice reach them now (F2, F7)."""
    notice = db.session.get(Notice, notice_id)
    if notice is None or notice.status != "published":
        return
    _queue_batches(notice_id, "reminder", _allowed_now(notice, "reminder"))


@job
def push_retraction(notice_id: int) -> None:
    """Devices that were sent the notice get a retraction under the same Topic, replacing it if still pending."""
    notice = db.session.get(Notice, notice_id)
    if notice is None:
        return
    _queue_batches(notice_id, "retract", _allowed_now(notice, "retract"))


@job
def send_batch(notice_id: int, kind: str, sub_ids: list[int], attempt: int = 0) -> None:
    notice = db.session.get(Notice, notice_id)
    if notice is None or (notice.status != "published" and kind != "retract"):
        return  # retracted while queued: skipped at send time
    settings = current_app.config["MUSUBI"]
    try:
        keys = vapid.keys(settings.vapid_file, settings.vapid_subject)
    except vapid.VapidMissing as exc:
        log.warning("push not sent: %s", exc)
        return
    # Asked again right before sending: between queueing and now a union may have opted out or left, the author
    # or a recipient been suspended, a device changed hands (F2, F7).
    todo = _allowed_now(notice, kind, among=sub_ids)
    # Plain columns: building 2,000 ORM objects a batch cost more than the query.
    rows = db.session.execute(select(PushSubscription.id, PushSubscription.endpoint, PushSubscription.p256dh,
                                     PushSubscription.auth, PushSubscription.user_id, PushSubscription.tenant_id)
                              .where(PushSubscription.id.in_(todo))).all()
    subs = [{"id": r[0], "endpoint": r[1], "keys": {"p256dh": r[2], "auth": r[3]}} for r in rows]
    owners = {r[0]: (r[4], r[5]) for r in rows}
    db.session.rollback()  # hold no transaction open while the network is busy
    if not subs:
        return
    headers = {"TTL": str(TTL.get(kind, TTL.get(notice.category, DEFAULT_TTL))),
               "Urgency": urgency(notice, kind), "Topic": topic(notice, kind)}
    outcomes = sender().send_all(keys, subs, payload(notice, kind), headers)
    sent = [o.subscription_id for o in outcomes if 200 <= o.status < 300]
    gone = [o.subscription_id for o in outcomes if o.status in (404, 410)]
    retry = [o for o in outcomes if o.status == 0 or o.status == 429 or o.status >= 500]
    # Anything else (400, 401, 403, 413, a redirect, which is never followed) will not get better by retrying.
    dropped = [o for o in outcomes if o.status >= 300 and o.status not in (404, 410, 429) and o.status < 500]
    now = utcnow()
    if sent:
        db.session.execute(insert_ignore(PushSend), [
            {"notice_id": notice_id, "subscription_id": s, "kind": kind, "user_id": owners[s][0],
             "tenant_id": owners[s][1], "sent_at": now} for s in sent])
        db.session.execute(PushSubscription.__table__.update().where(PushSubscription.id.in_(sent))
                           .values(last_success_at=now))
    if gone:
        # The browser unsubscribed or the service forgot it: the subscription is dead for good.
        db.session.execute(delete(PushSubscription).where(PushSubscription.id.in_(gone)))
    for o in dropped:
        log.warning("push %s to subscription %s refused with %s; not retried", kind, o.subscription_id, o.status)
    db.session.commit()
    if retry and attempt + 1 < MAX_ATTEMPTS:
        wait = max([BACKOFF[min(attempt, len(BACKOFF) - 1)]] + [o.retry_after for o in retry])
        left = sorted(o.subscription_id for o in retry)
        enqueue_now(send_batch, notice_id, kind, left, attempt + 1, delay=wait,
                    job_id=f"push-{notice_id}-{kind}-{left[0]}-{attempt + 1}")
    elif retry:
        log.warning("push %s of notice %s gave up on %d devices after %d attempts", kind, notice_id, len(retry),
                    MAX_ATTEMPTS)
