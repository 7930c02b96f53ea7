"""Where the sender may connect: push services are public https hosts, nothing else.

A push subscription's endpoint is a URL the browser hands us, and the sender later POSTs to it from inside our
network. Without a rule it could name the cloud metadata service (169.254.169.254), a database on a private network
or the machine itself. So an endpoint must be https on a public address, checked twice:

- at subscribe time, on the URL as written (an address literal, `localhost`): refused with a 422 naming `endpoint`;
- at send time, on the address actually connected to. A host name is resolved by `GuardedResolver`, the resolver of
  the sender's connector, and a name resolving to any address that is not public is refused before a connection is
  opened; DNS that changes after the subscription was accepted (rebinding) meets the same check. Address literals
  skip aiohttp's resolver, so `send_problem` checks them before the request.

MUSUBI_PUSH_ALLOW_PRIVATE names the addresses or networks exempt from this (the local push service on 127.0.0.1
that the tests and benchmarks run); an endpoint whose host is such an address literal may also be plain http.
"""
from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


class RefusedAddress(OSError):
    """The endpoint's host is, or resolves to, an address push may not reach."""


def parse_networks(raw: str) -> tuple[Network, ...]:
    """`127.0.0.1, 10.0.0.0/8, ::1` into networks; raises ValueError naming a bad entry."""
    out = []
    for entry in (e.strip() for e in raw.split(",")):
        if entry:
            try:
                out.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network") from None
    return tuple(out)


def _plain(address: Address) -> Address:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def address_allowed(address: str | Address, allowed: Iterable[Network] = ()) -> bool:
    """Public (globally routable, not multicast), or inside one of the explicitly allowed networks."""
    try:
        ip = _plain(ipaddress.ip_address(address) if isinstance(address, str) else address)
    except ValueError:
        return False
    if any(ip.version == net.version and ip in net for net in allowed):
        return True
    return ip.is_global and not ip.is_multicast


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def endpoint_problem(endpoint: str, allowed: Iterable[Network] = ()) -> str | None:
    """What is wrong with an endpoint as written, or None. The same rule at subscribe time and before each send."""
    allowed = tuple(allowed)
    try:
        parts = urlsplit(endpoint)
        host = parts.hostname
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        return "not a URL"
    if parts.scheme not in ("https", "http") or not host:
        return "must be an https URL"
    if parts.username is not None or parts.password is not None:
        return "must not carry a user name or password"
    literal = _literal(host)
    if literal is None and (host.lower().rstrip(".") in _LOOPBACK_NAMES or host.lower().endswith(".localhost")):
        literal = ipaddress.ip_address("127.0.0.1")
    if literal is not None:
        if not address_allowed(literal, allowed):
            return "must be a push service on a public address"
        exempt = any(_plain(literal).version == n.version and _plain(literal) in n for n in allowed)
        if parts.scheme == "http" and not exempt:
            return "must be an https URL"
        return None
    if parts.scheme != "https":
        return "must be an https URL"
    return None  # a host name: its addresses are checked when the sender connects (GuardedResolver)


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver, refusing a host that resolves to any address push may not reach. The connector connects
    only to what this returns, so the address checked is the address connected to."""

    def __init__(self, allowed: Iterable[Network] = (), inner: AbstractResolver | None = None) -> None:
        self.allowed = tuple(allowed)
        self.inner = inner if inner is not None else DefaultResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self.inner.resolve(host, port, family)
        bad = [r["host"] for r in results if not address_allowed(r["host"], self.allowed)]
        if bad or not results:
            raise RefusedAddress(f"{host} resolves to {', '.join(bad) or 'nothing'}, not a public address")
        return results

    async def close(self) -> None:
        await self.inner.close()


def refusal_in(exc: BaseException) -> RefusedAddress | None:
    """The RefusedAddress behind an aiohttp connection error, if that is what it was."""
    seen: set[int] = set()
    current: Any = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, RefusedAddress):
            return current
        seen.add(id(current))
        current = getattr(current, "os_error", None) or current.__cause__ or current.__context__
    return None
