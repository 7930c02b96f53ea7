"""The push sender's HTTP/1.1 client: POSTs to push services over pooled keep-alive connections.

A push is one POST with a small body and a response whose status is all that matters, thousands of times a second
to the same two or three services. A general client spends more CPU on each request than the encryption of its
body (docs/benchmarks.md measured aiohttp at 160-190 µs a request against 130-150 µs for the encryption), so the
sender uses this one, which does only what a push needs:

- one pool of keep-alive connections per origin (scheme, host, port), reused across batches; a connection idle for
  longer than IDLE_SECONDS, or one the service has closed, is dropped before use;
- connections are opened only to addresses push may reach (push/addresses.py): a host name is resolved here and
  refused if any of its addresses is not public, and the address connected to is one of those checked;
- https with the system's trust store and the host name verified; plain http only where addresses.py allows it;
- the header block is rendered once per batch and origin by the caller (`request_head`): per message only the
  path, Content-Length and body change;
- the response is read for its status, Retry-After and Connection, and its body (Content-Length, chunked, or up
  to the end of the connection) is read and discarded, at most MAX_BODY bytes; anything malformed closes the
  connection and counts as a network error;
- redirects are never followed: a 3xx is returned as it came;
- a reused connection that the service closed while it sat idle (the request gets no byte of a response) is
  retried once on a new connection, as the service cannot have acted on a request it never read.

The client lives on one asyncio loop (the sender's) and is not thread-safe.
"""
from __future__ import annotations

import asyncio
import re
import socket
import ssl
import time
from dataclasses import dataclass, field
from urllib.parse import SplitResult, quote

from federation.push import addresses

IDLE_SECONDS = 30.0  # push services close idle connections after a minute or so; do not race them
MAX_BODY = 64 * 1024  # push services answer with a few hundred bytes at most
MAX_HEADERS = 100
READ_LIMIT = 16 * 1024  # longest status or header line accepted

_SAFE_PATH = re.compile(r"[!-~]+")  # printable ASCII without the space: nothing can end the request line early
_HEADER_VALUE = re.compile(r"[\t -~]*")


class ProtocolError(Exception):
    """The service's answer was not HTTP/1.x as a push service speaks it."""


class _NoResponse(Exception):
    """The connection ended before the first byte of a response."""


_DEFAULT_PORTS = {"https": 443, "http": 80}


@dataclass(frozen=True)
class Origin:
    scheme: str
    host: str
    port: int

    @classmethod
    def of(cls, parts: SplitResult) -> Origin:
        """The origin of a split endpoint URL, its port filled in from the scheme when the URL has none."""
        return cls(parts.scheme, parts.hostname or "", parts.port or _DEFAULT_PORTS.get(parts.scheme, 80))

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == _DEFAULT_PORTS.get(self.scheme) else f"{host}:{self.port}"


@dataclass
class Response:
    status: int
    retry_after: str | None = None


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    used_at: float = field(default_factory=time.monotonic)

    def usable(self, now: float) -> bool:
        return (now - self.used_at < IDLE_SECONDS and not self.writer.is_closing()
                and not self.reader.at_eof() and self.reader.exception() is None)

    def close(self) -> None:
        try:
            self.writer.close()
        except Exception:  # noqa: BLE001 - closing a broken connection must not fail the send
            pass


def request_head(origin: Origin, headers: dict[str, str]) -> bytes:
    """The part of a request after the request line that is the same for every message of a batch to one origin:
    Host and the given headers, each checked so no value can add a header of its own."""
    lines = [f"Host: {origin.netloc}\r\n"]
    for name, value in headers.items():
        if not re.fullmatch(r"[A-Za-z0-9-]+", name) or not _HEADER_VALUE.fullmatch(value):
            raise ValueError(f"header {name!r} cannot be sent as given")
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines).encode("ascii")


def request_path(path: str, query: str) -> bytes:
    """The request target of an endpoint's path and query, percent-encoding anything that is not printable ASCII."""
    target = (path or "/") + (f"?{query}" if query else "")
    if not _SAFE_PATH.fullmatch(target):
        target = quote(target, safe="/?=&%:@!$'()*+,;-._~")
    return target.encode("ascii")


class PushHTTP:
    """Pooled HTTP/1.1 POSTs to push services, on the loop it is used from."""

    def __init__(self, timeout: float, allowed: tuple[addresses.Network, ...] = (),
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.timeout = timeout
        self.allowed = tuple(allowed)
        self._ssl = ssl_context
        self._idle: dict[Origin, list[_Connection]] = {}
        self.opened = 0  # connections opened over the client's life

    def _tls(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    async def _open(self, origin: Origin) -> _Connection:
        literal = addresses.literal_address(origin.host)
        if literal is not None:
            if not addresses.address_allowed(literal, self.allowed):
                raise addresses.RefusedAddress(f"{origin.host} is not a public address")
            candidates = [str(literal)]
        else:
            loop = asyncio.get_running_loop()
            infos = await loop.getaddrinfo(origin.host, origin.port, type=socket.SOCK_STREAM,
                                           proto=socket.IPPROTO_TCP)
            candidates = addresses.checked_addresses(origin.host, [info[4][0] for info in infos], self.allowed)
        tls = origin.scheme == "https"
        error: OSError | None = None
        for address in candidates:
            try:
                reader, writer = await asyncio.open_connection(
                    address, origin.port, ssl=self._tls() if tls else None,
                    server_hostname=origin.host if tls else None, limit=READ_LIMIT)
            except OSError as exc:
                error = exc
                continue
            self.opened += 1
            return _Connection(reader, writer)
        raise error if error is not None else OSError(f"no address to connect to for {origin.host}")

    def _checkout(self, origin: Origin) -> _Connection | None:
        pool = self._idle.get(origin)
        now = time.monotonic()
        while pool:
            conn = pool.pop()
            if conn.usable(now):
                return conn
            conn.close()
        return None

    async def post(self, origin: Origin, target: bytes, head: bytes, body: bytes) -> Response:
        """POST `body` to `target` at `origin`. Raises RefusedAddress, OSError, TimeoutError or ProtocolError."""
        request = b"".join((b"POST ", target, b" HTTP/1.1\r\n", head, b"Content-Length: %d\r\n\r\n" % len(body),
                            body))
        async with asyncio.timeout(self.timeout):
            conn = self._checkout(origin)
            if conn is not None:
                try:
                    return await self._exchange(origin, conn, request)
                except (_NoResponse, ConnectionResetError, BrokenPipeError):
                    pass  # closed by the service while idle: it never read this request; once more, afresh
            conn = await self._open(origin)
            try:
                return await self._exchange(origin, conn, request)
            except _NoResponse:
                raise ProtocolError("the service closed the connection without answering") from None

    async def _exchange(self, origin: Origin, conn: _Connection, request: bytes) -> Response:
        keep = False
        try:
            conn.writer.write(request)
            await conn.writer.drain()
            response, keep = await self._read_response(conn.reader)
            return response
        finally:
            if keep:
                conn.used_at = time.monotonic()
                self._idle.setdefault(origin, []).append(conn)
            else:
                conn.close()

    async def _read_response(self, reader: asyncio.StreamReader) -> tuple[Response, bool]:
        first = True
        while True:
            try:
                line = await reader.readline()
            except ValueError:  # a line longer than READ_LIMIT
                raise ProtocolError("status line too long") from None
            if not line:
                if first:
                    raise _NoResponse()
                raise ProtocolError("the connection ended inside the response")
            first = False
            version, status = _status_line(line)
            headers = await _headers(reader)
            if 100 <= status < 200:
                continue  # 100 Continue and other interim answers precede the real one
            break
        connection = headers.get("connection", "").lower()
        keep = (version == b"HTTP/1.1" and "close" not in connection) or "keep-alive" in connection
        if status in (204, 304):
            return Response(status, headers.get("retry-after")), keep
        encoding = headers.get("transfer-encoding", "").lower()
        if encoding:
            if encoding != "chunked":
                raise ProtocolError(f"unsupported Transfer-Encoding {encoding!r}")
            await _chunked(reader)
        elif "content-length" in headers:
            raw = headers["content-length"]
            if not raw.isdigit():
                raise ProtocolError(f"bad Content-Length {raw!r}")
            length = int(raw)
            if length > MAX_BODY:
                return Response(status, headers.get("retry-after")), False  # not read: the connection is dropped
            await _exactly(reader, length)
        else:
            await _until_end(reader)
            keep = False
        return Response(status, headers.get("retry-after")), keep

    async def close(self) -> None:
        pools, self._idle = self._idle, {}
        for pool in pools.values():
            for conn in pool:
                conn.close()
                try:
                    await conn.writer.wait_closed()
                except Exception:  # noqa: BLE001 - the service may already have gone
                    pass


def _status_line(line: bytes) -> tuple[bytes, int]:
    parts = line.rstrip(b"\r\n").split(b" ", 2)
    if len(parts) < 2 or parts[0] not in (b"HTTP/1.1", b"HTTP/1.0") or len(parts[1]) != 3 \
            or not parts[1].isdigit():
        raise ProtocolError(f"not an HTTP/1.x status line: {line[:80]!r}")
    return parts[0], int(parts[1])


async def _headers(reader: asyncio.StreamReader) -> dict[str, str]:
    found: dict[str, str] = {}
    for _ in range(MAX_HEADERS):
        try:
            line = await reader.readline()
        except ValueError:
            raise ProtocolError("header line too long") from None
        if line in (b"\r\n", b"\n"):
            return found
        if not line.endswith(b"\n"):
            raise ProtocolError("the connection ended inside the headers")
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():
            raise ProtocolError(f"malformed header line {line[:80]!r}")
        key = name.decode("latin-1").lower()
        text = value.strip().decode("latin-1")
        if key == "content-length" and key in found and found[key] != text:
            raise ProtocolError("conflicting Content-Length headers")
        found[key] = text
    raise ProtocolError("too many header lines")


async def _exactly(reader: asyncio.StreamReader, n: int) -> None:
    try:
        await reader.readexactly(n)
    except asyncio.IncompleteReadError:
        raise ProtocolError("the connection ended inside the body") from None


async def _chunked(reader: asyncio.StreamReader) -> None:
    total = 0
    while True:
        try:
            line = await reader.readline()
        except ValueError:
            raise ProtocolError("chunk size line too long") from None
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise ProtocolError(f"bad chunk size {line[:40]!r}") from None
        if size == 0:
            await _headers(reader)  # trailers, up to the empty line
            return
        total += size
        if total > MAX_BODY:
            raise ProtocolError("response body too large")
        await _exactly(reader, size)
        if await reader.readline() not in (b"\r\n", b"\n"):
            raise ProtocolError("chunk not followed by CRLF")


async def _until_end(reader: asyncio.StreamReader) -> None:
    total = 0
    while chunk := await reader.read(READ_LIMIT):
        total += len(chunk)
        if total > MAX_BODY:
            raise ProtocolError("response body too large")
