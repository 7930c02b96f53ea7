"""Where the sender may connect: push services are public https hosts, nothing else.

A push subscription's endpoint is a URL the browser hands us, and the sender later POSTs to it from inside our
network. Without a rule it could name the cloud metadata service (169.254.169.254), a database on a private network
or the machine itself. So an endpoint must be https on a public address, checked twice:

- at subscribe time, on the URL as written (an address literal, `localhost`): refused with a 422 naming `endpoint`;
- at send time, on the address actually connected to. The sender's client (push/http.py) resolves a host name
  itself and passes the answers through `checked_addresses`: a name resolving to any address that is not public
  is refused before a connection is opened, and only the checked addresses are connected to, so DNS that changes
  after the subscription was accepted (rebinding) meets the same check. Address literals are checked as written.

MUSUBI_PUSH_ALLOW_PRIVATE names the addresses or networks exempt from this (the local push service on 127.0.0.1
that the tests and benchmarks run); an endpoint whose host is such an address literal may also be plain http.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

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


def literal_address(host: str) -> Address | None:
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
    literal = literal_address(host)
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
    return None  # a host name: its addresses are checked when the sender connects (checked_addresses)


def checked_addresses(host: str, found: Iterable[str], allowed: Iterable[Network] = ()) -> list[str]:
    """The addresses a host name resolved to, each once in the resolver's order, if every one of them is one push may
    reach; RefusedAddress otherwise (a single private answer among public ones is enough: DNS can rebind between
    the check and the connect, so the sender connects only to what was checked here)."""
    allowed = tuple(allowed)
    unique = list(dict.fromkeys(found))
    bad = [a for a in unique if not address_allowed(a, allowed)]
    if bad or not unique:
        raise RefusedAddress(f"{host} resolves to {', '.join(bad) or 'nothing'}, not a public address")
    return unique
