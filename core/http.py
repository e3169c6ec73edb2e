"""Outbound HTTP on a user's behalf: fetch a URL a request names, within limits.

A server that fetches the URLs its users send must not become a way into the networks it
sits in, nor be held by a slow or endless answer. :func:`fetch` checks the address every
name resolves to (redirects included) against the networks the operator allows, and
reads at most a number of bytes within a time limit. Its failures are the small tree
below, each with the URL it concerns; the caller words them for its own users.

    FetchError
    ├── NotHttpUrl          not an http(s) URL with a host
    ├── UnknownHost         its host does not resolve
    ├── AddressRefused      its host resolves to an address outside the public internet
    │                       and the allowed networks
    ├── BadStatus           answered neither 200 nor a redirect
    ├── TooManyRedirects
    ├── TooLarge            more than ``max_bytes``
    ├── TimedOut            not all there within ``timeout_s``
    └── TransportFailed     the connection failed (``__cause__`` is httpx's error)
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlparse

import httpx

__all__ = [
    "MAX_REDIRECTS",
    "AddressRefused",
    "BadStatus",
    "FetchError",
    "NotHttpUrl",
    "TimedOut",
    "TooLarge",
    "TooManyRedirects",
    "TransportFailed",
    "UnknownHost",
    "check_address",
    "fetch",
]

MAX_REDIRECTS = 5
"""Redirects :func:`fetch` follows before it gives up."""


class FetchError(Exception):
    """A URL could not be fetched; ``url`` is the one that failed (after redirects)."""

    def __init__(self, url: str, reason: str = "") -> None:
        super().__init__(reason or url)
        self.url = url


class NotHttpUrl(FetchError):
    """The URL is not ``http(s)://`` with a host."""


class UnknownHost(FetchError):
    """The URL's host does not resolve; the message is the resolver's."""


class AddressRefused(FetchError):
    """The URL's host resolves to ``address``, which the server does not fetch from."""

    def __init__(self, url: str, address: str) -> None:
        super().__init__(url, f"points at {address}")
        self.address = address


class BadStatus(FetchError):
    """The answer was ``status_code``, neither 200 nor a redirect."""

    def __init__(self, url: str, status_code: int) -> None:
        super().__init__(url, f"HTTP {status_code}")
        self.status_code = status_code


class TooManyRedirects(FetchError):
    """More than :data:`MAX_REDIRECTS` redirects."""


class TooLarge(FetchError):
    """The body is longer than ``max_bytes``."""

    def __init__(self, url: str, max_bytes: int) -> None:
        super().__init__(url, f"larger than {max_bytes} bytes")
        self.max_bytes = max_bytes


class TimedOut(FetchError):
    """The whole fetch took longer than ``timeout_s``."""

    def __init__(self, url: str, timeout_s: float) -> None:
        super().__init__(url, f"not there within {timeout_s:g} s")
        self.timeout_s = timeout_s


class TransportFailed(FetchError):
    """The connection failed or broke; the exception's cause is httpx's error."""


async def check_address(url: str, allowed_networks: Iterable[str]) -> None:
    """Refuse a ``url`` whose host resolves to an address not allowed (``AddressRefused``),
    that does not resolve (``UnknownHost``) or that is not http(s) (``NotHttpUrl``).

    Public addresses are allowed; loopback, private, link-local, multicast and reserved
    ones only inside ``allowed_networks`` (CIDR strings). Every address the name resolves
    to must pass: a name with one public and one private address is refused.
    """
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise NotHttpUrl(url, "not an http(s) URL")
    try:
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        infos = await asyncio.get_running_loop().getaddrinfo(
            parsed.hostname, port, type=socket.SOCK_STREAM
        )
    except (OSError, ValueError) as exc:
        raise UnknownHost(url, str(exc)) from exc
    allowed = [ipaddress.ip_network(n, strict=False) for n in allowed_networks]
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if any(address in network for network in allowed):
            continue
        if not address.is_global or address.is_multicast:
            raise AddressRefused(url, str(address))


async def fetch(
    url: str, *, allowed_networks: Iterable[str], max_bytes: int, timeout_s: float
) -> bytes:
    """The body at ``url``: http(s), allowed addresses only (:func:`check_address`, again
    at every redirect), at most ``max_bytes`` bytes within ``timeout_s`` seconds in all.

    Raises a :class:`FetchError`.
    """
    allowed = list(allowed_networks)
    current = url
    try:
        async with (
            asyncio.timeout(timeout_s),
            httpx.AsyncClient(timeout=timeout_s) as client,
        ):
            for _ in range(MAX_REDIRECTS + 1):
                await check_address(current, allowed)
                async with client.stream("GET", current) as response:
                    if response.is_redirect and "location" in response.headers:
                        current = str(response.url.join(response.headers["location"]))
                        continue
                    if response.status_code != 200:
                        raise BadStatus(current, response.status_code)
                    return await _read(response, current, max_bytes)
            raise TooManyRedirects(current, f"more than {MAX_REDIRECTS} redirects")
    except TimeoutError:
        raise TimedOut(current, timeout_s) from None
    except httpx.HTTPError as exc:
        raise TransportFailed(current, str(exc)) from exc


async def _read(response: httpx.Response, url: str, max_bytes: int) -> bytes:
    """The body of ``response``, refused as soon as it is known to pass ``max_bytes``."""
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) > max_bytes:
        raise TooLarge(url, max_bytes)
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise TooLarge(url, max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)
