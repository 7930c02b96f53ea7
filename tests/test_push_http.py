"""The push sender's HTTP client (federation/push/http.py) against services that misbehave on purpose.

The local push service (devtools/local_push.py) is a well-behaved push service; these tests use a scripted one
on a raw socket instead, which answers each request exactly as a test tells it: keep-alive and chunked bodies, a
connection closed while idle or without an answer, a redirect, partial and malformed responses, silence, TLS with
a certificate that is or is not trusted and for the right or the wrong name. Every case states what the service
received, so a retry that sent a push twice, or a request that never left, shows.
"""
from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from federation.push import http
from federation.push.addresses import RefusedAddress, parse_networks

LOCAL = parse_networks("127.0.0.1, ::1")
HEAD_HEADERS = {"TTL": "60", "Urgency": "high", "Topic": "n1", "Authorization": "vapid t=x, k=y",
                "Content-Encoding": "aes128gcm", "Content-Type": "application/octet-stream"}

OK = b"HTTP/1.1 201 Created\r\nLocation: /m/1\r\nContent-Length: 0\r\n\r\n"
HANG = object()  # keep the connection open and say nothing
SILENT_CLOSE = object()  # close the connection without a byte of answer


@dataclass
class Seen:
    connection: int
    line: bytes
    headers: dict[str, str]
    body: bytes


@dataclass
class Scripted:
    """A service on 127.0.0.1 that answers request n (1-based, over all connections) with `respond(n)`: bytes to
    send, or (bytes, close_afterwards), or HANG, or SILENT_CLOSE."""
    respond: Callable[[int], object]
    tls: ssl.SSLContext | None = None
    seen: list[Seen] = field(default_factory=list)
    connections: int = 0

    def __post_init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def origin(self, host: str = "127.0.0.1", scheme: str = "http") -> http.Origin:
        return http.Origin(scheme, host, self.port)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            with self._lock:
                self.connections += 1
                number = self.connections
            threading.Thread(target=self._serve, args=(conn, number), daemon=True).start()

    def _serve(self, conn: socket.socket, number: int) -> None:
        try:
            if self.tls is not None:
                conn.settimeout(5)
                conn = self.tls.wrap_socket(conn, server_side=True)
            stream = conn.makefile("rb")
            while not self._stop.is_set():
                line = stream.readline()
                if not line:
                    return
                headers = {}
                while (h := stream.readline()) not in (b"\r\n", b""):
                    name, _, value = h.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = stream.read(int(headers.get("content-length", "0")))
                with self._lock:
                    self.seen.append(Seen(number, line, headers, body))
                    n = len(self.seen)
                action = self.respond(n)
                if action is HANG:
                    self._stop.wait(10)
                    return
                if action is SILENT_CLOSE:
                    return
                data, close = action if isinstance(action, tuple) else (action, False)
                conn.sendall(data)  # type: ignore[arg-type]
                if close:
                    return
        except (OSError, ssl.SSLError):
            return
        finally:
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sock.close()


@pytest.fixture
def scripted():  # type: ignore[no-untyped-def]
    made: list[Scripted] = []

    def make(respond: Callable[[int], object], tls: ssl.SSLContext | None = None) -> Scripted:
        made.append(Scripted(respond, tls))
        return made[-1]

    yield make
    for server in made:
        server.close()


def with_client(use, timeout: float = 5, allowed=LOCAL, tls: ssl.SSLContext | None = None):  # type: ignore[no-untyped-def]
    """`use(client)` on a fresh client, on a loop of its own; the client is closed whatever happens."""
    async def go():  # type: ignore[no-untyped-def]
        client = http.PushHTTP(timeout, allowed, tls)
        try:
            return await use(client)
        finally:
            await client.close()

    return asyncio.run(go())


async def post(client: http.PushHTTP, origin: http.Origin, body: bytes = b"x" * 10,
               target: bytes = b"/push/a") -> http.Response:
    return await client.post(origin, target, http.request_head(origin, HEAD_HEADERS), body)


# --- keep-alive ---------------------------------------------------------------------------------------------------

def test_one_connection_carries_many_posts_whatever_the_framing_of_the_answers(scripted):
    answers = [OK,
               b"HTTP/1.1 201 Created\r\nContent-Length: 5\r\n\r\nhello",
               b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"3;x=1\r\nabc\r\n2\r\nde\r\n0\r\nX: y\r\n\r\n",
               b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
               b"HTTP/1.1 204 No Content\r\n\r\n"]
    server = scripted(lambda n: answers[n - 1])

    async def go(client: http.PushHTTP) -> tuple[list[int], int]:
        return [(await post(client, server.origin(), body=b"%d" % i)).status for i in range(5)], client.opened

    assert with_client(go) == ([201, 201, 201, 201, 204], 1)
    assert server.connections == 1
    assert [s.body for s in server.seen] == [b"0", b"1", b"2", b"3", b"4"]
    first = server.seen[0]
    assert first.line == b"POST /push/a HTTP/1.1\r\n"
    assert first.headers["host"] == f"127.0.0.1:{server.port}"
    assert {k.lower(): v for k, v in HEAD_HEADERS.items()}.items() <= first.headers.items()
    assert first.headers["content-length"] == "1"


def test_connection_close_and_http_1_0_answers_are_not_reused(scripted):
    answers = [b"HTTP/1.1 201 Created\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
               b"HTTP/1.0 201 Created\r\nContent-Length: 0\r\n\r\n",
               b"HTTP/1.1 201 Created\r\n\r\nno length: the body runs to the end of the connection"]
    server = scripted(lambda n: (answers[n - 1], True) if n <= 3 else OK)

    async def go(client: http.PushHTTP) -> list[int]:
        return [(await post(client, server.origin())).status for _ in range(4)]

    assert with_client(go) == [201] * 4
    assert server.connections == 4 and len(server.seen) == 4


def test_a_connection_the_service_closed_while_idle_is_replaced_and_the_push_sent_once(scripted):
    server = scripted(lambda n: (OK, n == 1))  # answers, then hangs up without saying so

    async def go(client: http.PushHTTP) -> list[int]:
        first = (await post(client, server.origin())).status
        await asyncio.sleep(0.2)  # the close reaches the client while the connection sits in the pool
        return [first, (await post(client, server.origin())).status]

    assert with_client(go) == [201, 201]
    assert server.connections == 2 and len(server.seen) == 2


def test_a_reused_connection_that_ends_without_an_answer_is_tried_once_more_afresh(scripted):
    server = scripted(lambda n: SILENT_CLOSE if n == 2 else OK)

    async def go(client: http.PushHTTP) -> list[int]:
        return [(await post(client, server.origin())).status for _ in range(2)]

    assert with_client(go) == [201, 201]
    # The second request reached a connection that closed without answering: sent once more on a new one.
    assert server.connections == 2 and len(server.seen) == 3


def test_a_new_connection_that_ends_without_an_answer_is_an_error_not_a_loop(scripted):
    server = scripted(lambda n: SILENT_CLOSE)

    async def go(client: http.PushHTTP) -> None:
        await post(client, server.origin())

    with pytest.raises(http.ProtocolError):
        with_client(go)
    assert server.connections == 1 and len(server.seen) == 1


# --- what is not followed, not trusted, not waited for -----------------------------------------------------------

def test_a_redirect_is_returned_as_it_came_and_never_followed(scripted):
    elsewhere = scripted(lambda n: OK)
    server = scripted(lambda n: f"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:{elsewhere.port}"
                                f"/push/a\r\nContent-Length: 0\r\n\r\n".encode())

    async def go(client: http.PushHTTP) -> int:
        return (await post(client, server.origin())).status

    assert with_client(go) == 307
    assert elsewhere.connections == 0


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 201 Created\r\nContent-Length: 100\r\n\r\nonly ten..",  # the body stops short
    b"HTTP/1.1 201 Created\r\nContent-Len",  # the headers stop short
    b"SMTP ready\r\n\r\n",  # not HTTP
    b"HTTP/1.1 2x1 Created\r\n\r\n",  # not a status
    b"HTTP/1.1 201 Created\r\nContent-Length: ten\r\n\r\n",
    b"HTTP/1.1 201 Created\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"HTTP/1.1 201 Created\r\nTransfer-Encoding: gzip\r\n\r\n",
    b"HTTP/1.1 201 Created\r\nX: " + b"a" * (http.READ_LIMIT + 10) + b"\r\n\r\n",
    b"HTTP/1.1 201 Created\r\n" + b"X: y\r\n" * (http.MAX_HEADERS + 1) + b"\r\n",
], ids=["short-body", "short-headers", "not-http", "bad-status", "bad-length", "two-lengths", "bad-chunk",
        "unknown-encoding", "long-line", "many-headers"])
def test_partial_or_malformed_answers_are_errors_and_the_connection_is_dropped(scripted, answer):
    server = scripted(lambda n: (answer, True) if n == 1 else OK)

    async def go(client: http.PushHTTP) -> int:
        with pytest.raises(http.ProtocolError):
            await post(client, server.origin())
        return (await post(client, server.origin())).status

    assert with_client(go) == 201
    assert server.connections == 2 and len(server.seen) == 2  # a fresh connection, and nothing sent twice


def test_an_answer_with_a_huge_body_is_not_read_and_its_connection_is_dropped(scripted):
    big = b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 9\r\nContent-Length: %d\r\n\r\n" % (http.MAX_BODY + 1)
    server = scripted(lambda n: big if n == 1 else OK)

    async def go(client: http.PushHTTP) -> list[http.Response]:
        return [await post(client, server.origin()), await post(client, server.origin())]

    first, second = with_client(go)
    assert (first.status, first.retry_after, second.status) == (429, "9", 201)
    assert server.connections == 2


def test_a_service_that_never_answers_costs_the_timeout_and_no_more(scripted):
    server = scripted(lambda n: HANG)

    async def go(client: http.PushHTTP) -> None:
        await post(client, server.origin())

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        with_client(go, timeout=0.5)
    assert time.monotonic() - started < 3


def test_addresses_push_may_not_reach_are_refused_before_connecting(scripted):
    server = scripted(lambda n: OK)

    def attempt(origin: http.Origin, allowed=()):  # type: ignore[no-untyped-def]
        return with_client(lambda client: post(client, origin), allowed=allowed)

    # 127.0.0.1 is not allowed for this client, as a literal or behind a name (localhost resolves to it).
    with pytest.raises(RefusedAddress):
        attempt(server.origin())
    with pytest.raises(RefusedAddress):
        attempt(server.origin("localhost"))
    with pytest.raises(RefusedAddress):
        attempt(http.Origin("http", "10.0.0.1", 80), LOCAL)
    assert server.connections == 0


# --- what goes on the wire ----------------------------------------------------------------------------------------

def test_no_header_value_or_path_can_end_the_request_early():
    origin = http.Origin("https", "push.example", 443)
    assert http.request_head(origin, {"TTL": "60"}) == b"Host: push.example\r\nTTL: 60\r\n"
    assert http.Origin("https", "::1", 8443).netloc == "[::1]:8443"
    from urllib.parse import urlsplit
    assert http.Origin.of(urlsplit("https://fcm.googleapis.com/fcm/send/x")) == http.Origin(
        "https", "fcm.googleapis.com", 443)
    assert http.Origin.of(urlsplit("http://127.0.0.1:8080/push/x")).netloc == "127.0.0.1:8080"
    for bad in ({"Topic": "a\r\nX-Injected: 1"}, {"Topic": "a\nb"}, {"Bad Name": "x"}, {"Topic": "ü"}):
        with pytest.raises(ValueError):
            http.request_head(origin, bad)
    assert http.request_path("/push/a b", "") == b"/push/a%20b"
    assert http.request_path("/push/ü", "x=1") == b"/push/%C3%BC?x=1"
    assert http.request_path("", "") == b"/"
    assert http.request_path("/wpush/v2/gAAAA-_=", "") == b"/wpush/v2/gAAAA-_="


# --- TLS ------------------------------------------------------------------------------------------------------------

def _certificate(tmp_path: Path, name: str) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    alt: list[x509.GeneralName] = [x509.DNSName(name)]
    if name == "localhost":
        alt.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def _server_tls(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


def test_https_verifies_the_certificate_and_the_host_name(scripted, tmp_path):
    right = _certificate(tmp_path, "localhost")
    wrong = _certificate(tmp_path, "other.example")
    good = scripted(lambda n: OK, tls=_server_tls(*right))
    misnamed = scripted(lambda n: OK, tls=_server_tls(*wrong))

    def trusting(*certs: Path) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        for cert in certs:
            ctx.load_verify_locations(cert)
        return ctx

    def send(server: Scripted, tls: ssl.SSLContext | None, times: int = 1) -> list[int]:
        async def go(client: http.PushHTTP) -> list[int]:
            return [(await post(client, server.origin("localhost", "https"))).status for _ in range(times)]

        return with_client(go, tls=tls)

    # Trusted and named right: sent, over one TLS connection.
    assert send(good, trusting(right[0]), times=3) == [201, 201, 201]
    assert len(good.seen) == 3
    # The system's trust store does not know the test's certificate.
    with pytest.raises(ssl.SSLCertVerificationError):
        send(good, None)
    # A trusted certificate for another name.
    with pytest.raises(ssl.SSLCertVerificationError):
        send(misnamed, trusting(wrong[0]))
    assert len(good.seen) == 3 and misnamed.seen == []


def test_the_sender_reports_a_redirect_and_a_broken_service_as_their_outcomes(scripted, tmp_path):
    """Through the sender: a 307 is an outcome of its own (logged, never retried by send_batch), a service that
    breaks the protocol is a network error (0: retried later), and neither stops the rest of the batch."""
    from federation.push import vapid
    from federation.push.sender import Sender

    vapid.generate(tmp_path / "vapid.json")
    keys = vapid.VapidKeys.load(tmp_path / "vapid.json", "mailto:push-test@musubi.invalid")
    redirecting = scripted(lambda n: b"HTTP/1.1 307 Temporary Redirect\r\nLocation: /x\r\nContent-Length: 0\r\n\r\n")
    broken = scripted(lambda n: (b"HTTP/1.1 201 Created\r\nContent-Length: 50\r\n\r\nshort", True))
    fine = scripted(lambda n: OK)
    from devtools.local_push import LocalPushService

    with LocalPushService() as issuer:  # real browser keys, so the sender's encryption runs as in production
        subs = []
        for i, server in enumerate((redirecting, broken, fine, fine)):
            real = issuer.new_subscription()
            subs.append({"id": i, "endpoint": f"http://127.0.0.1:{server.port}/push/{i}", "keys": real["keys"]})
    sender = Sender(concurrency=2, timeout=5)
    try:
        outcomes = sender.send_all(keys, subs, b'{"v":1}', {"TTL": "60", "Topic": "n1"},
                                   parse_networks("127.0.0.1"))
    finally:
        sender.close()
    assert [(o.subscription_id, o.status) for o in outcomes] == [(0, 307), (1, 0), (2, 201), (3, 201)]
    assert len(fine.seen) == 2 and fine.connections <= 2
    assert fine.seen[0].headers["ttl"] == "60" and fine.seen[0].headers["authorization"].startswith("vapid t=")
