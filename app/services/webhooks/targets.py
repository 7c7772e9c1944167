"""Where a webhook may send: checked when it is made and again, after DNS, at each attempt.

Only public addresses are allowed unless the gateway is told otherwise: a receiver on
loopback, a private or link-local network, or a cloud metadata address would let a key holder
reach what only the gateway's host can.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_URL_CHARS = 2_000


class TargetRefused(ValueError):
    """The URL or what it resolves to may not receive deliveries; the message says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Target:
    """A checked URL: its scheme, host and port, and the addresses it resolved to."""

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[IPAddress, ...] = ()


def check_url(url: str, *, allow_http: bool) -> Target:
    """The URL's parts, if it is an absolute https URL (or http when allowed) with a host."""
    if len(url) > MAX_URL_CHARS:
        raise TargetRefused("webhook_url_invalid", f"the URL is over {MAX_URL_CHARS} characters")
    parts = urlsplit(url)
    allowed = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in allowed:
        hint = "" if allow_http else " (http needs PASEO_GATEWAY_WEBHOOKS_ALLOW_HTTP=true)"
        raise TargetRefused(
            "webhook_url_invalid", f"the URL must start with {' or '.join(allowed)}://{hint}"
        )
    if not parts.hostname:
        raise TargetRefused("webhook_url_invalid", "the URL has no host")
    if parts.username or parts.password:
        raise TargetRefused("webhook_url_invalid", "the URL may not carry a user or password")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise TargetRefused("webhook_url_invalid", "the URL's port is not a number") from None
    return Target(url, parts.scheme, parts.hostname, port)


def refused_address(address: IPAddress) -> str | None:
    """Why `address` may not receive deliveries (loopback, private, link-local, metadata,
    reserved...), or None for a public one. IPv4 inside IPv6 is judged as IPv4."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return f"{address} is a loopback address"
    if address.is_link_local:
        return f"{address} is link-local (cloud metadata lives there)"
    if address.is_multicast:  # some multicast ranges count as global
        return f"{address} is a multicast address"
    if address.is_global:
        return None
    return f"{address} is not a public address"


def check_addresses(
    target: Target, addresses: Sequence[IPAddress], *, allow_private: bool
) -> Target:
    """`target` with the addresses it resolved to, if every one may receive deliveries."""
    if not addresses:
        raise TargetRefused("webhook_host_unresolvable", f"{target.host} resolves to no address")
    if not allow_private:
        for address in addresses:
            reason = refused_address(address)
            if reason is not None:
                raise TargetRefused(
                    "webhook_target_private",
                    f"{target.host} resolves to {reason}; set "
                    "PASEO_GATEWAY_WEBHOOKS_ALLOW_PRIVATE_TARGETS=true to allow it",
                )
    return Target(target.url, target.scheme, target.host, target.port, tuple(addresses))


async def resolve(target: Target, *, allow_private: bool) -> Target:
    """Resolve the host now (an IP literal as itself) and check every address it gives."""
    try:
        literal: IPAddress | None = ipaddress.ip_address(target.host)
    except ValueError:
        literal = None
    if literal is not None:
        return check_addresses(target, [literal], allow_private=allow_private)
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(
            target.host, target.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
    except (OSError, UnicodeError) as exc:
        raise TargetRefused(
            "webhook_host_unresolvable", f"{target.host} does not resolve: {exc}"
        ) from None
    found: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).partition("%")[0])
        if address not in found:
            found.append(address)
    return check_addresses(target, found, allow_private=allow_private)


async def check_target(url: str, *, allow_http: bool, allow_private: bool) -> Target:
    """`url` checked, resolved now, and every address it gives checked: what the gateway may
    send to (raises `TargetRefused` saying why not)."""
    return await resolve(check_url(url, allow_http=allow_http), allow_private=allow_private)
