"""A Web Push service on the loopback interface, standing in for a browser vendor's push service.

It speaks the push protocol of RFC 8030 (one resource: ``POST /push/<id>``), checks VAPID (RFC 8292) the way the
real services do, and, with ``decrypt=True``, opens the aes128gcm payload (RFC 8291) with the subscriber's own private
key. A sender built on pywebpush is therefore exercised end to end, over real HTTP and real cryptography: what a test
reads back from ``messages()`` is exactly what a browser would have handed to its service worker.

Tests and benchmarks start one per test (``with LocalPushService() as push: ...``), hand out subscriptions made by
``new_subscription()`` as if browsers had subscribed, and script the service's bad days with ``fail()`` and ``gone()``.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import json
import re
import secrets
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import http_ece
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

__all__ = ["LocalPushService", "PushMessage", "Rejection"]

MAX_PAYLOAD = 4096  # RFC 8030 section 7.2: a push service has to accept at least this much, and the big ones stop here
MAX_VAPID_LIFETIME = 24 * 60 * 60  # RFC 8292 section 2: exp no further than 24 hours ahead
URGENCIES = frozenset({"very-low", "low", "normal", "high"})

_PUSH_PREFIX = "/push/"
_TOPIC = re.compile(r"[A-Za-z0-9_-]{1,32}")
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_DIGITS = re.compile(r"[0-9]+")
# A body bigger than this is not read at all: answering 413 and closing is cheaper than draining it to keep the
# connection alive, and no legitimate sender comes near it.
_DRAIN_LIMIT = 1 << 20
# Signed VAPID headers are few (one per sender key and signing period); the bound only stops a misbehaving
# client from growing the cache without end.
_VAPID_CACHE_LIMIT = 4096


@dataclass(frozen=True)
class PushMessage:
    """A push message the service accepted (answered 201)."""

    endpoint: str
    payload: bytes  # the decrypted plaintext; b"" when the service runs with decrypt=False
    ttl: int
    urgency: str | None
    topic: str | None
    vapid_sub: str  # the "sub" claim of the VAPID JWT: who to contact about this sender
    received_at: float


@dataclass(frozen=True)
class Rejection:
    """A request the service refused, with the reason it would have logged."""

    status: int
    reason: str
    endpoint: str


@dataclass
class _Subscription:
    sub_id: str
    endpoint: str
    private_key: ec.EllipticCurvePrivateKey
    auth_secret: bytes
    gone: bool = False


@dataclass
class _Failure:
    endpoint: str | None  # None matches every subscription
    status: int
    remaining: int  # -1: never used up
    retry_after: int | None


@dataclass(frozen=True)
class _VerifiedToken:
    exp: float
    sub: str


@dataclass(frozen=True)
class _Response:
    status: int
    headers: dict[str, str]
    body: bytes


class _Refusal(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _b64url_decode(text: str) -> bytes:
    # The strict alphabet check matters: the standard decoder silently skips characters outside the alphabet,
    # which would let a mangled key or token decode to something.
    text = text.rstrip("=")
    if not _B64URL.fullmatch(text):
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as exc:
        raise ValueError(str(exc)) from exc


def _b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _auth_params(text: str) -> dict[str, str]:
    # RFC 8292 writes "t=..., k=..." while py_vapid sends "t=...,k=..."; both are valid auth-param lists.
    params: dict[str, str] = {}
    for item in text.split(","):
        name, sep, value = item.strip().partition("=")
        if sep:
            params[name.strip().lower()] = value.strip().strip('"')
    return params


def _crypto_key_param(header: str, name: str) -> str | None:
    # Older senders append their entries with ';' and others with ',' (webpush-encryption issue 6), so accept both.
    for item in re.split(r"[;,]", header):
        key, sep, value = item.strip().partition("=")
        if sep and key.strip().lower() == name:
            return value.strip().strip('"')
    return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The default backlog of 5 drops connection attempts when a benchmark opens many senders at once.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], service: LocalPushService) -> None:
        self.service = service
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self.connections_accepted = 0
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name with getfqdn, which can stall for seconds on a machine
        # without working reverse DNS; nothing here needs the name.
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])

    def track(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(connection)
            self.connections_accepted += 1

    def untrack(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def counts(self) -> tuple[int, int]:
        with self._connections_lock:
            return self.connections_accepted, len(self._connections)

    def close_connections(self) -> None:
        # Keep-alive handler threads block reading the next request; shutting their sockets down wakes them, so a
        # stopped service really stops answering instead of serving pooled connections until the client hangs up.
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client dropping its connection is ordinary traffic, not something to print a traceback for.
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "LocalPushService"
    disable_nagle_algorithm = True
    # A buffered writer sends status line, headers and body in one segment (handle_one_request flushes after each
    # request); unbuffered, the body would wait on the client's delayed ACK and every push would take ~40 ms.
    wbufsize = 1 << 16
    # An idle keep-alive connection is dropped after this long, so abandoned clients do not pin threads.
    timeout = 60
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # a benchmark would otherwise print a line per push to stderr

    def version_string(self) -> str:
        return self.server_version

    def handle_expect_100(self) -> bool:
        # The interim response would otherwise sit in the write buffer while the client waits for it.
        self.send_response_only(100)
        self.end_headers()
        self.wfile.flush()
        return True

    def do_POST(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_OPTIONS(self) -> None:
        self._serve()

    def _serve(self) -> None:
        service = self.server.service
        if self.headers.get("Transfer-Encoding"):
            # Push senders always know their body length; without Content-Length the request's end cannot be found,
            # so the connection cannot be reused either.
            self.close_connection = True
            self._reply(service._refuse(411, "Transfer-Encoding is not supported; send Content-Length", self.path))
            return
        try:
            length = int(self.headers.get("Content-Length") or "0")
            if length < 0:
                raise ValueError(length)
        except ValueError:
            self.close_connection = True
            self._reply(service._refuse(400, "invalid Content-Length", self.path))
            return
        if length > _DRAIN_LIMIT:
            self.close_connection = True
            self._reply(service._refuse(413, f"body of {length} bytes exceeds {MAX_PAYLOAD}", self.path))
            return
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            self.close_connection = True
            return
        try:
            response = service._handle(self.command, self.path, self.headers, body)
        except Exception as exc:  # a bug here must reach the test as a 500, not hang the sender
            response = service._refuse(500, f"internal error: {exc!r}", self.path)
        self._reply(response)

    def _reply(self, response: _Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if response.body and self.command != "HEAD":
            self.wfile.write(response.body)


class _Headers(dict):  # type: ignore[type-arg]
    """Request headers by lower-cased name, read case-insensitively as http.server's are."""

    def get(self, name: str, default: Any = None) -> Any:
        return super().get(name.lower(), default)


class _AsyncConnection(asyncio.Protocol):
    """One keep-alive connection of the asyncio server: requests parsed from the buffer as they complete."""

    def __init__(self, server: _AsyncServer) -> None:
        self.server = server
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.opened(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.closed(self)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.transport is not None and not self.transport.is_closing():
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > 65536:
                    self._close_with(400, "request head too large")
                return
            lines = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
            parts = lines[0].split(" ")
            headers = _Headers()
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if not sep:
                    self._close_with(400, "malformed header line")
                    return
                headers[name.strip().lower()] = value.strip()
            if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
                self._close_with(400, "malformed request line")
                return
            if headers.get("Transfer-Encoding"):
                self._close_with(411, "Transfer-Encoding is not supported; send Content-Length")
                return
            raw = headers.get("Content-Length") or "0"
            if not raw.isdigit():
                self._close_with(400, "invalid Content-Length")
                return
            length = int(raw)
            if length > _DRAIN_LIMIT:
                self._close_with(413, f"body of {length} bytes exceeds {MAX_PAYLOAD}")
                return
            if len(self.buffer) < end + 4 + length:
                return  # the body is still on its way
            body = bytes(self.buffer[end + 4:end + 4 + length])
            del self.buffer[:end + 4 + length]
            service = self.server.service
            try:
                response = service._handle(parts[0], parts[1], headers, body)
            except Exception as exc:  # a bug here must reach the sender as a 500, not hang it
                response = service._refuse(500, f"internal error: {exc!r}", parts[1])
            self._write(response, close=headers.get("Connection", "").lower() == "close",
                        head_only=parts[0] == "HEAD")

    def _close_with(self, status: int, reason: str) -> None:
        self._write(self.server.service._refuse(status, reason, "/"), close=True)

    def _write(self, response: _Response, *, close: bool, head_only: bool = False) -> None:
        assert self.transport is not None
        head = [f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Status')}"]
        head += [f"{name}: {value}" for name, value in response.headers.items()]
        head.append(f"Content-Length: {len(response.body)}")
        if close:
            head.append("Connection: close")
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        self.transport.write(data if head_only else data + response.body)
        if close:
            self.transport.close()


_REASONS = {201: "Created", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            410: "Gone", 411: "Length Required", 413: "Payload Too Large", 415: "Unsupported Media Type",
            429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


class _AsyncServer:
    """The same service on one asyncio loop instead of a thread per connection: for throughput runs, where the
    service shares the machine with the sender it measures and http.server's parsing would cost it several times
    more CPU per push than a real push service spends of the sender's machine."""

    def __init__(self, address: tuple[str, int], service: LocalPushService) -> None:
        self.service = service
        self._open: set[_AsyncConnection] = set()
        self.connections_accepted = 0
        self.loop = asyncio.new_event_loop()
        self._server = self.loop.run_until_complete(
            self.loop.create_server(lambda: _AsyncConnection(self), address[0], address[1], backlog=1024))
        self.server_address = self._server.sockets[0].getsockname()

    def opened(self, conn: _AsyncConnection) -> None:
        self.connections_accepted += 1
        self._open.add(conn)

    def closed(self, conn: _AsyncConnection) -> None:
        self._open.discard(conn)

    def counts(self) -> tuple[int, int]:
        return self.connections_accepted, len(self._open)

    def serve_forever(self, poll_interval: float = 0.0) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()

    def shutdown(self) -> None:
        def stop() -> None:
            self._server.close()
            for conn in list(self._open):
                if conn.transport is not None:
                    conn.transport.close()
            self.loop.call_later(0.05, self.loop.stop)

        self.loop.call_soon_threadsafe(stop)

    def close_connections(self) -> None:
        pass  # closed by shutdown() on the loop

    def server_close(self) -> None:
        pass  # the loop is closed by its thread's end


class LocalPushService:
    """A real Web Push service on 127.0.0.1 for tests and benchmarks.

    ``decrypt=False`` skips only the payload decryption (the costliest step), for throughput runs; every protocol and
    VAPID check still applies and the recorded payload is b"". ``asyncio_server=True`` serves from one asyncio loop
    instead of a thread per connection (the same checks and answers, a fraction of the CPU), for the same runs.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, decrypt: bool = True,
                 asyncio_server: bool = False) -> None:
        self._host = host
        self._asyncio = asyncio_server
        self._port = port
        self._decrypt = decrypt
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._subscriptions: dict[str, _Subscription] = {}
        self._by_endpoint: dict[str, _Subscription] = {}
        self._messages: list[PushMessage] = []
        self._rejections: list[Rejection] = []
        self._failures: list[_Failure] = []
        self._vapid_cache: dict[tuple[str, str], _VerifiedToken | tuple[int, str]] = {}
        self._server: _Server | _AsyncServer | None = None
        self._thread: threading.Thread | None = None
        self._origin: str | None = None
        self._stopped = False

    # --- lifecycle ---

    def start(self) -> LocalPushService:
        if self._stopped:
            # Subscriptions carry the old origin in their endpoints, so a restart on a new port would orphan them.
            raise RuntimeError("a stopped LocalPushService cannot be started again; create a new one")
        if self._server is not None:
            raise RuntimeError("LocalPushService is already running")
        server = (_AsyncServer if self._asyncio else _Server)((self._host, self._port), self)
        port = int(server.server_address[1])
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._origin = f"http://{host}:{port}"
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},  # bounds how long stop() waits for the accept loop
            name=f"local-push-service:{port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopped = True
        server.shutdown()
        server.close_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> LocalPushService:
        if self._server is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def origin(self) -> str:
        if self._origin is None:
            raise RuntimeError("LocalPushService is not started; call start() first")
        return self._origin

    # --- what a browser would do ---

    def new_subscription(self) -> dict[str, Any]:
        """Subscribe a new simulated browser; returns its PushSubscription JSON (as ``subscription.toJSON()``)."""
        private_key = ec.generate_private_key(ec.SECP256R1())
        auth_secret = secrets.token_bytes(16)
        sub_id = secrets.token_urlsafe(24)
        endpoint = f"{self.origin}{_PUSH_PREFIX}{sub_id}"
        public_key = private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        subscription = _Subscription(sub_id, endpoint, private_key, auth_secret)
        with self._lock:
            self._subscriptions[sub_id] = subscription
            self._by_endpoint[endpoint] = subscription
        return {
            "endpoint": endpoint,
            "expirationTime": None,
            "keys": {"p256dh": _b64url_encode(public_key), "auth": _b64url_encode(auth_secret)},
        }

    # --- inspection and scripting ---

    def messages(self, endpoint: str | None = None) -> list[PushMessage]:
        with self._lock:
            if endpoint is None:
                return list(self._messages)
            return [message for message in self._messages if message.endpoint == endpoint]

    def connections(self) -> tuple[int, int]:
        """(accepted so far, open now): TCP connections from senders, to check that they reuse them."""
        server = self._server
        if server is None:
            return 0, 0
        return server.counts()

    def rejected(self) -> list[Rejection]:
        with self._lock:
            return list(self._rejections)

    def fail(self, endpoint: str | None, status: int, *, times: int = 1, retry_after: int | None = None) -> None:
        """Answer the next ``times`` pushes to ``endpoint`` (None: to any subscription) with ``status``.

        ``times=-1`` keeps failing until ``reset()``. Rules apply in the order they were made.
        """
        if not 400 <= status <= 599:
            raise ValueError(f"fail() takes an error status (400-599), not {status}")
        if times == 0 or times < -1:
            raise ValueError("times must be a positive count or -1 (for ever)")
        if retry_after is not None and retry_after < 0:
            raise ValueError("retry_after is a delay in seconds and cannot be negative")
        with self._lock:
            if endpoint is not None and endpoint not in self._by_endpoint:
                raise ValueError(f"unknown subscription endpoint: {endpoint}")
            self._failures.append(_Failure(endpoint, status, times, retry_after))

    def gone(self, endpoint: str) -> None:
        """The browser unsubscribed: every later push to ``endpoint`` is answered 410 Gone."""
        with self._lock:
            subscription = self._by_endpoint.get(endpoint)
            if subscription is None:
                raise ValueError(f"unknown subscription endpoint: {endpoint}")
            subscription.gone = True

    def reset(self) -> None:
        """Forget messages, rejections and pending failures. Subscriptions, gone ones included, stay as they are."""
        with self._lock:
            self._messages.clear()
            self._rejections.clear()
            self._failures.clear()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[PushMessage]:
        """Block until at least ``count`` messages were accepted; raises TimeoutError when they do not arrive."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self._messages) >= count, timeout=timeout):
                raise TimeoutError(f"{len(self._messages)} of {count} push messages arrived within {timeout} s")
            return list(self._messages)

    # --- the push resource ---

    def _handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> _Response:
        path = target.split("?", 1)[0]
        if method != "POST" or not path.startswith(_PUSH_PREFIX):
            return self._refuse(404, f"no resource {method} {path}", target)
        with self._lock:
            subscription = self._subscriptions.get(path[len(_PUSH_PREFIX) :])
            gone = subscription is not None and subscription.gone
            failure = self._take_failure(subscription.endpoint) if subscription is not None and not gone else None
        if subscription is None:
            return self._refuse(404, "no such subscription", target)
        endpoint = subscription.endpoint
        if gone:
            return self._refuse(410, "subscription is gone (unsubscribed)", endpoint)
        if failure is not None:
            extra = {"Retry-After": str(failure.retry_after)} if failure.retry_after is not None else {}
            return self._refuse(failure.status, "injected failure", endpoint, extra)
        try:
            vapid_sub = self._check_vapid(headers)
            ttl, urgency, topic = self._check_headers(headers)
            if len(body) > MAX_PAYLOAD:
                raise _Refusal(413, f"body of {len(body)} bytes exceeds {MAX_PAYLOAD}")
            payload = self._open(subscription, body) if self._decrypt else b""
        except _Refusal as refusal:
            return self._refuse(refusal.status, refusal.reason, endpoint)
        message = PushMessage(endpoint, payload, ttl, urgency, topic, vapid_sub, time.time())
        with self._arrived:
            self._messages.append(message)
            self._arrived.notify_all()
        location = f"{self.origin}/message/{secrets.token_urlsafe(16)}"
        return _Response(201, {"Location": location, "TTL": str(ttl)}, b"")

    def _take_failure(self, endpoint: str) -> _Failure | None:
        for index, failure in enumerate(self._failures):
            if failure.endpoint is None or failure.endpoint == endpoint:
                if failure.remaining > 0:
                    failure.remaining -= 1
                    if failure.remaining == 0:
                        del self._failures[index]
                return failure
        return None

    def _refuse(self, status: int, reason: str, endpoint: str, headers: dict[str, str] | None = None) -> _Response:
        if endpoint.startswith("/"):
            endpoint = self.origin + endpoint.split("?", 1)[0]
        with self._lock:
            self._rejections.append(Rejection(status, reason, endpoint))
        # Shaped like Mozilla autopush's errors, so a sender's logs read the same as in production.
        body = json.dumps({"code": status, "errno": status, "error": reason, "message": reason}).encode()
        return _Response(status, {**(headers or {}), "Content-Type": "application/json"}, body)

    def _check_headers(self, headers: Mapping[str, str]) -> tuple[int, str | None, str | None]:
        ttl_header = headers.get("TTL")
        if ttl_header is None:
            raise _Refusal(400, "missing TTL header")
        if not _DIGITS.fullmatch(ttl_header.strip()):
            raise _Refusal(400, f"TTL must be an integer >= 0, got {ttl_header!r}")
        ttl = int(ttl_header.strip())
        encoding = (headers.get("Content-Encoding") or "").strip()
        if encoding.lower() != "aes128gcm":
            raise _Refusal(415, f"Content-Encoding must be aes128gcm, got {encoding or 'none'!r}")
        urgency = headers.get("Urgency")
        if urgency is not None:
            urgency = urgency.strip()
            if urgency not in URGENCIES:
                raise _Refusal(400, f"Urgency must be one of {sorted(URGENCIES)}, got {urgency!r}")
        topic = headers.get("Topic")
        if topic is not None:
            topic = topic.strip()
            if not _TOPIC.fullmatch(topic):
                raise _Refusal(400, f"Topic must be 1 to 32 base64url characters, got {topic!r}")
        return ttl, urgency, topic

    def _check_vapid(self, headers: Mapping[str, str]) -> str:
        authorization = (headers.get("Authorization") or "").strip()
        if not authorization:
            raise _Refusal(401, "missing Authorization header (VAPID required)")
        scheme, _, credentials = authorization.partition(" ")
        scheme = scheme.lower()
        if scheme == "vapid":
            params = _auth_params(credentials)
            token, key = params.get("t"), params.get("k")
        elif scheme == "webpush":
            # VAPID draft 01, still what py_vapid's Vapid01 signs: the key travels in Crypto-Key.
            token = credentials.strip() or None
            key = _crypto_key_param(headers.get("Crypto-Key") or "", "p256ecdsa")
        else:
            raise _Refusal(401, f"unsupported Authorization scheme {scheme!r}")
        if not token or not key:
            raise _Refusal(401, f"{scheme} Authorization lacks the token or the public key")
        # Read without the lock: a dict lookup is atomic, and a miss racing a clear() only costs one re-verification.
        verdict = self._vapid_cache.get((token, key))
        if verdict is None:
            verdict = self._verify_token(token, key)
            with self._lock:
                if len(self._vapid_cache) >= _VAPID_CACHE_LIMIT:
                    self._vapid_cache.clear()
                self._vapid_cache[(token, key)] = verdict
        if isinstance(verdict, tuple):
            raise _Refusal(*verdict)
        # Only the clock can change the answer for a cached token, so this part runs every time.
        now = time.time()
        if verdict.exp <= now:
            raise _Refusal(403, "VAPID token expired (exp is in the past)")
        if verdict.exp > now + MAX_VAPID_LIFETIME:
            raise _Refusal(403, "VAPID exp is more than 24 hours ahead")
        return verdict.sub

    def _verify_token(self, token: str, key: str) -> _VerifiedToken | tuple[int, str]:
        try:
            raw_key = _b64url_decode(key)
            if len(raw_key) != 65 or raw_key[0] != 4:
                return 401, "VAPID key is not an uncompressed P-256 public key"
            public_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw_key)
        except ValueError:
            return 401, "VAPID key is not a valid P-256 public key"
        parts = token.split(".")
        if len(parts) != 3:
            return 401, "VAPID token is not a compact JWS"
        try:
            header = json.loads(_b64url_decode(parts[0]))
            signature = _b64url_decode(parts[2])
        except ValueError:
            return 401, "VAPID token is not a compact JWS"
        if not isinstance(header, dict) or header.get("alg") != "ES256":
            return 401, "VAPID token must be signed with ES256"
        if len(signature) != 64:
            return 401, "ES256 signature must be 64 bytes (r || s)"
        der_signature = encode_dss_signature(
            int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        )
        try:
            public_key.verify(der_signature, f"{parts[0]}.{parts[1]}".encode("ascii"), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return 401, "VAPID signature does not verify with the given key"
        try:
            claims = json.loads(_b64url_decode(parts[1]))
        except ValueError:
            return 401, "VAPID claims are not JSON"
        if not isinstance(claims, dict):
            return 401, "VAPID claims are not a JSON object"
        aud = claims.get("aud")
        if aud != self.origin:
            return 403, f"VAPID aud {aud!r} is not this push service's origin {self.origin!r}"
        exp = claims.get("exp")
        if isinstance(exp, bool) or not isinstance(exp, int | float):
            return 403, "VAPID exp claim missing or not a number"
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub.startswith(("mailto:", "https:")):
            return 403, f"VAPID sub must be a mailto: or https: URI, got {sub!r}"
        return _VerifiedToken(float(exp), sub)

    def _open(self, subscription: _Subscription, body: bytes) -> bytes:
        try:
            return http_ece.decrypt(
                body,
                private_key=subscription.private_key,
                auth_secret=subscription.auth_secret,
                version="aes128gcm",
            )
        # http_ece reports a bad body in several ways (ECEException, ValueError for a bad key point, struct errors for
        # a truncated header); to a push service they all mean the same thing.
        except Exception as exc:
            detail = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            raise _Refusal(400, f"payload does not decrypt: {detail}") from exc


def _control(service: LocalPushService, commands: Any, answers: Any) -> None:
    """Commands from a benchmark in another process. The tally per topic is kept as messages arrive between two
    questions, so asking often costs the service little however many pushes it holds."""
    seen = 0
    topics: dict[str, dict[str, Any]] = {}
    for line in commands:
        command = line.strip()
        if command == "reset":
            service.reset()
            seen, topics = 0, {}
            answers.write("{}\n")
        elif command == "stats":
            messages = service.messages()
            for message in messages[seen:]:
                tally = topics.setdefault(message.topic or "", {"accepted": 0, "endpoints": set(), "first": None,
                                                                 "last": None})
                tally["accepted"] += 1
                tally["endpoints"].add(message.endpoint)
                tally["first"] = message.received_at if tally["first"] is None else tally["first"]
                tally["last"] = message.received_at
            seen = len(messages)
            rejected: dict[str, int] = {}
            for rejection in service.rejected():
                rejected[str(rejection.status)] = rejected.get(str(rejection.status), 0) + 1
            accepted, open_now = service.connections()
            answers.write(json.dumps({
                "topics": {t: {"accepted": v["accepted"], "devices": len(v["endpoints"]), "first": v["first"],
                               "last": v["last"]} for t, v in topics.items()},
                "rejected": rejected, "connections": {"accepted": accepted, "open": open_now}}) + "\n")
        elif command:
            answers.write(json.dumps({"error": f"unknown command {command!r}"}) + "\n")
        answers.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.local_push",
        description="Run a local Web Push service in the foreground, for trying a sender by hand.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--subscriptions", type=int, default=1, help="how many subscriptions to create and print")
    parser.add_argument("--no-decrypt", action="store_true", help="accept payloads without decrypting them")
    parser.add_argument("--asyncio", action="store_true",
                        help="serve from one asyncio loop instead of a thread per connection (throughput runs)")
    parser.add_argument("--quiet", action="store_true", help="print the origin and subscriptions only (benchmarks)")
    parser.add_argument("--control", action="store_true",
                        help="answer commands on stdin, one JSON line each: 'stats' (accepted pushes per topic, "
                             "rejections, connections) and 'reset' (benchmarks in another process)")
    args = parser.parse_args(argv)

    service = LocalPushService(args.host, args.port, decrypt=not args.no_decrypt, asyncio_server=args.asyncio).start()
    print(service.origin, flush=True)
    for _ in range(args.subscriptions):
        print(json.dumps(service.new_subscription()), flush=True)
    if args.control:
        try:
            _control(service, sys.stdin, sys.stdout)
        finally:
            service.stop()
        return 0
    shown_messages = shown_rejections = 0
    try:
        while True:
            time.sleep(0.2)
            if args.quiet:
                continue
            messages, rejections = service.messages(), service.rejected()
            for message in messages[shown_messages:]:
                print(
                    f"201 {message.endpoint} ttl={message.ttl} urgency={message.urgency} topic={message.topic} "
                    f"sub={message.vapid_sub} payload={message.payload!r}",
                    flush=True,
                )
            for rejection in rejections[shown_rejections:]:
                print(f"{rejection.status} {rejection.endpoint} {rejection.reason}", flush=True)
            shown_messages, shown_rejections = len(messages), len(rejections)
    except KeyboardInterrupt:
        pass
    finally:
        service.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
