"""Outbound requests on a user's behalf: the one guard for every URL a user makes the
engine fetch or call.

A server that fetches its users' URLs must not become a way into the networks it sits
in (its own Prefect API, gateway and S3 endpoints, a cloud's metadata service, whatever
listens on its loopback or private network). Every such request goes through a
:class:`Guard`, whatever library makes it: :func:`fetch` (httpx, async: deploy
``href``s), :func:`guarded_session` (requests: stage-in, STAC), :class:`GuardedTransport`
(httpx: callbacks), and :meth:`Guard.check` for URLs known at submit (a 400 at once).

The guard works where the connection is opened: it resolves the host once, checks every
address, and connects only to the addresses it checked, while the ``Host`` header, TLS
SNI and the certificate check keep the URL's name. DNS rebinding gains nothing, and
every redirect is a new connection, checked again. It refuses, in the same words
whatever the reason (a refusal tells nothing about what is there):

* anything but ``http``/``https`` (``s3://`` is read only from the operator's stage-in
  endpoint, never through here);
* non-public addresses (loopback, private, link-local, CGNAT, multicast, reserved,
  unspecified, and IPv6 forms carrying such an IPv4 address), unless inside a network
  the operator lists (``OAPIP_ALLOWED_NETWORKS``);
* whatever is listed: cloud metadata (:data:`METADATA_ADDRESSES`) and the engine's own
  services in its settings (Prefect API, gateway, S3 endpoints, database, WES, Workspace
  API): on this host, their ports at any of its addresses; elsewhere, their whole
  non-public address. A service on a public address is reached like any public host.

Failures are the small tree below, each with the URL (or ``host:port``) it concerns; the
caller words them for its own users.

    FetchError
    ├── NotHttpUrl          not an http(s) URL with a host
    ├── UnknownHost         its host does not resolve
    ├── AddressRefused      the guard refuses where its host resolves to
    ├── BadStatus           answered neither 200 nor a redirect
    ├── TooManyRedirects
    ├── TooLarge            more than ``max_bytes``
    ├── TimedOut            not all there within ``timeout_s``
    └── TransportFailed     the connection failed (``__cause__`` is httpx's error)
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpcore
import httpx
import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util.connection import create_connection

from core.settings import Settings

__all__ = [
    "MAX_REDIRECTS",
    "METADATA_ADDRESSES",
    "AddressRefused",
    "BadStatus",
    "FetchError",
    "Guard",
    "GuardedTransport",
    "NotHttpUrl",
    "TimedOut",
    "TooLarge",
    "TooManyRedirects",
    "TransportFailed",
    "UnknownHost",
    "fetch",
    "guarded_session",
]

MAX_REDIRECTS = 5
"""Redirects followed before a fetch gives up."""

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

METADATA_ADDRESSES: frozenset[Address] = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200")
)
"""Cloud metadata services (AWS, GCP, Azure, OpenStack; ECS tasks; AWS IPv6; Alibaba):
refused even inside a network the operator allows."""

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_DEFAULT_PORTS = {"http": 80, "https": 443}
REFUSED = (
    "is refused: this server does not connect there for its users (an operator may "
    "allow a network with OAPIP_ALLOWED_NETWORKS)"
)


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
    """The guard refuses ``url`` (a URL, or ``host:port`` when the refusal came from a
    connection). ``address`` is where it resolved to, for the operator's logs only: the
    message never says it (it would map internal names for anyone)."""

    def __init__(self, url: str, address: str) -> None:
        super().__init__(url, f"{url} {REFUSED}")
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


# --- the guard ----------------------------------------------------------------------------


def _embedded(address: Address) -> list[Address]:
    """``address`` and the IPv4 address an IPv6 one carries (mapped, 6to4, NAT64), if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return [address]
    inner = address.ipv4_mapped or address.sixtofour
    if inner is None and address in _NAT64:
        inner = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return [address] if inner is None else [address, inner]


def _is_local(address: Address) -> bool:
    """Whether ``address`` reaches this host: loopback, unspecified, or one of its own
    addresses (the kernel lets a socket bind only to those)."""
    if address.is_loopback or address.is_unspecified:
        return True
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.bind((str(address), 0))
    except OSError:
        return False
    return True


def _endpoint(url: str | None) -> tuple[str, int | None] | None:
    """Host and port of a service URL (``None`` when it has no host)."""
    if not url:
        return None
    parts = urlsplit(url)
    if not parts.hostname:
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    return parts.hostname, port or _DEFAULT_PORTS.get(parts.scheme)


def _addresses(infos: list[Any]) -> list[Address]:
    """The addresses of ``getaddrinfo`` answers (an IPv6 zone dropped)."""
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


@dataclass(frozen=True)
class Guard:
    """Where the engine may connect on a user's behalf (see the module docstring).

    Attributes:
        allowed: networks the operator allows besides public addresses.
        service_ports: ports of the engine's services on this host: refused on any local
            address (loopback, unspecified or the host's own).
        service_addresses: non-public addresses of the engine's services elsewhere:
            refused on every port.
    """

    allowed: tuple[Network, ...] = ()
    service_ports: frozenset[int] = frozenset()
    service_addresses: frozenset[Address] = frozenset()

    @classmethod
    def from_settings(cls, settings: Settings) -> Guard:
        """The guard of ``settings``: their allowed networks and their services' hosts
        resolved once (per process and set of values)."""
        services = (
            settings.prefect.api_url,
            settings.ui_url,
            f"http://{settings.stack.host}:{settings.stack.port}",
            settings.public_url,
            settings.stack.database_url,
            settings.results.s3_endpoint,
            settings.stagein.endpoint,
            settings.workspace.api_url,
            settings.toil.wes_url,
        )
        return _guard(tuple(settings.outbound.allowed_networks), services)

    def refuses(self, address: Address, port: int) -> bool:
        """Whether a connection to ``address`` (port ``port``) is refused."""
        for candidate in _embedded(address):
            if candidate in METADATA_ADDRESSES or candidate in self.service_addresses:
                return True
            if port in self.service_ports and _is_local(candidate):
                return True
            if any(candidate in network for network in self.allowed):
                continue
            if not candidate.is_global or candidate.is_multicast:
                return True
        return False

    def _pick(self, where: str, port: int, addresses: list[Address]) -> list[str]:
        """``addresses`` (once each), once none is refused (``AddressRefused``)."""
        for address in addresses:
            if self.refuses(address, port):
                raise AddressRefused(where, str(address))
        return list(dict.fromkeys(map(str, addresses)))

    def resolve(self, host: str, port: int, *, url: str | None = None) -> list[str]:
        """The addresses to connect to for ``host``:``port``, in the resolver's order,
        once every one it resolves to is allowed: a connection tries them in turn and
        goes nowhere else. ``AddressRefused`` or ``UnknownHost`` name ``url`` (default
        ``host:port``)."""
        where = url or f"{host}:{port}"
        try:
            infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise UnknownHost(where, f"cannot resolve {host}: {exc}") from exc
        return self._pick(where, port, _addresses(infos))

    async def aresolve(self, host: str, port: int, *, url: str | None = None) -> list[str]:
        """:meth:`resolve` without blocking the event loop."""
        where = url or f"{host}:{port}"
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host.strip("[]"), port, type=socket.SOCK_STREAM
            )
        except (OSError, UnicodeError) as exc:
            raise UnknownHost(where, f"cannot resolve {host}: {exc}") from exc
        return self._pick(where, port, _addresses(infos))

    @staticmethod
    def host_and_port(url: str) -> tuple[str, int]:
        """Host and port of an ``http(s)`` URL; ``NotHttpUrl`` for anything else."""
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            raise NotHttpUrl(url, f"{url} has no valid port") from None
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise NotHttpUrl(url, f"{url} is not an http(s) URL")
        return parts.hostname, port or _DEFAULT_PORTS[parts.scheme]

    async def check(self, url: str) -> None:
        """Refuse ``url`` now if it is not http(s) (``NotHttpUrl``), does not resolve
        (``UnknownHost``) or resolves where the guard refuses (``AddressRefused``)."""
        host, port = self.host_and_port(url)
        await self.aresolve(host, port, url=url)


@functools.lru_cache(maxsize=16)
def _guard(allowed_networks: tuple[str, ...], services: tuple[str | None, ...]) -> Guard:
    ports: set[int] = set()
    addresses: set[Address] = set()
    for endpoint in filter(None, map(_endpoint, services)):
        host, port = endpoint
        try:
            resolved = _addresses(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except (OSError, UnicodeError):
            continue  # no address now: nothing to connect to either
        for address in (a for found in resolved for a in _embedded(found)):
            if _is_local(address):
                if port is not None:
                    ports.add(port)
            elif not address.is_global:
                addresses.add(address)
    return Guard(
        allowed=tuple(ipaddress.ip_network(n, strict=False) for n in allowed_networks),
        service_ports=frozenset(ports),
        service_addresses=frozenset(addresses),
    )


# --- requests: stage-in -------------------------------------------------------------------


class _PinnedConnection(HTTPConnection):
    """urllib3's connection, opened to the address the guard checked (``self.host`` keeps
    the URL's name, so the Host header, SNI and the certificate check use it)."""

    guard: ClassVar[Guard]

    def _new_conn(self) -> socket.socket:
        failure: OSError | None = None
        for address in self.guard.resolve(self.host, self.port):
            try:
                return create_connection(
                    (address, self.port),
                    self.timeout,
                    source_address=self.source_address,
                    socket_options=self.socket_options,
                )
            except OSError as exc:  # the next address, as socket.create_connection does
                failure = exc
        if isinstance(failure, TimeoutError):
            raise ConnectTimeoutError(
                self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})"
            ) from failure
        raise NewConnectionError(
            self, f"Failed to establish a new connection: {failure}"
        ) from failure


class _GuardedAdapter(HTTPAdapter):
    """requests' adapter whose connection pools open only :class:`_PinnedConnection`s."""

    def __init__(self, guard: Guard) -> None:
        self._guard = guard
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        guard = self._guard

        class Pinned(_PinnedConnection):
            pass

        class PinnedTls(_PinnedConnection, HTTPSConnection):
            pass

        Pinned.guard = PinnedTls.guard = guard

        class Pool(HTTPConnectionPool):
            ConnectionCls = Pinned

        class TlsPool(HTTPSConnectionPool):
            ConnectionCls = PinnedTls

        self.poolmanager.pool_classes_by_scheme = {"http": Pool, "https": TlsPool}


def guarded_session(guard: Guard) -> requests.Session:
    """A requests session whose every connection, redirects included, passes ``guard``.

    It follows at most :data:`MAX_REDIRECTS` redirects and ignores the environment
    (proxies, ``.netrc`` credentials): a proxy would be the one address connected to.
    A refused address raises :class:`AddressRefused` (naming ``host:port``) from the
    request, not a requests error.
    """
    session = requests.Session()
    session.trust_env = False
    session.max_redirects = MAX_REDIRECTS
    adapter = _GuardedAdapter(guard)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


# --- httpx: callbacks (sync) and deploy hrefs (async) -------------------------------------


class _PinnedBackend(httpcore.SyncBackend):
    def __init__(self, guard: Guard) -> None:
        self._guard = guard

    def connect_tcp(self, host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        failure: Exception | None = None
        for address in self._guard.resolve(host, port):
            try:
                return super().connect_tcp(address, port, *args, **kwargs)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure or httpcore.ConnectError(f"no address for {host}")


class _AsyncPinnedBackend(httpcore.AnyIOBackend):
    def __init__(self, guard: Guard) -> None:
        self._guard = guard

    async def connect_tcp(self, host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        failure: Exception | None = None
        for address in await self._guard.aresolve(host, port):
            try:
                return await super().connect_tcp(address, port, *args, **kwargs)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure or httpcore.ConnectError(f"no address for {host}")


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport whose every connection passes ``guard`` (httpx has no resolver
    hook: httpcore's network backend, where TCP connections are opened, is the place).
    TLS keeps the URL's name: httpcore takes SNI from the request, not the address."""

    def __init__(self, guard: Guard) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            network_backend=_PinnedBackend(guard),
        )


class _AsyncGuardedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, guard: Guard) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            network_backend=_AsyncPinnedBackend(guard),
        )


async def fetch(url: str, *, guard: Guard, max_bytes: int, timeout_s: float) -> bytes:
    """The body at ``url``: http(s) through ``guard`` (every redirect checked again), at
    most ``max_bytes`` bytes within ``timeout_s`` seconds in all.

    Raises a :class:`FetchError`.
    """
    current = url
    try:
        async with (
            asyncio.timeout(timeout_s),
            httpx.AsyncClient(transport=_AsyncGuardedTransport(guard), timeout=timeout_s) as client,
        ):
            for _ in range(MAX_REDIRECTS + 1):
                guard.host_and_port(current)  # NotHttpUrl for a redirect to another scheme
                try:
                    async with client.stream("GET", current) as response:
                        if response.is_redirect and "location" in response.headers:
                            current = str(response.url.join(response.headers["location"]))
                            continue
                        if response.status_code != 200:
                            raise BadStatus(current, response.status_code)
                        return await _read(response, current, max_bytes)
                # Raised where the connection opens, naming host:port: the URL says more.
                except AddressRefused as exc:
                    raise AddressRefused(current, exc.address) from None
                except UnknownHost as exc:
                    raise UnknownHost(current, str(exc)) from exc
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
