"""core.http against loopback HTTP servers: the outbound guard (addresses, the engine's
services, DNS rebinding, redirects) for httpx and requests, and the deploy fetch's size
and time limits."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import requests

from core import http
from core.settings import OutboundSettings, PrefectSettings, Settings, StackSettings

LOOPBACK = ["127.0.0.1/32"]
BODY = b"cwlVersion: v1.2\n"


class _Handler(BaseHTTPRequestHandler):
    """``/ok``, ``/missing``, ``/to-ok``, ``/to-elsewhere``, ``/loop``, ``/big``,
    ``/big-chunked``, ``/slow``, ``/whoami``."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path == "/ok":
            self._answer(200, BODY)
        elif self.path == "/missing":
            self._answer(404, b"no")
        elif self.path in ("/to-ok", "/to-elsewhere", "/loop"):
            target = {
                "/to-ok": "/ok",
                "/to-elsewhere": "http://127.0.0.2:9/ok",
                "/loop": "/loop",
            }[self.path]
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/big":
            self._answer(200, b"x" * 2000)
        elif self.path == "/big-chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for _ in range(4):
                self.wfile.write(b"200\r\n" + b"x" * 0x200 + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/slow":
            time.sleep(1.5)
            self._answer(200, BODY)
        elif self.path == "/whoami":  # the address it listens on, the Host it was sent
            self._answer(200, f"{self.server.server_address[0]} {self.headers['Host']}".encode())

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    httpd.server_close()


def _guard(allowed=LOOPBACK, **kwargs) -> http.Guard:
    return http.Guard(allowed=tuple(ipaddress.ip_network(n) for n in allowed), **kwargs)


def _fetch(url: str, *, allowed=LOOPBACK, max_bytes: int = 1000, timeout_s: float = 5.0) -> bytes:
    return asyncio.run(
        http.fetch(url, guard=_guard(allowed), max_bytes=max_bytes, timeout_s=timeout_s)
    )


def test_fetches_from_an_allowed_network(server: str):
    assert _fetch(f"{server}/ok") == BODY


def test_follows_redirects(server: str):
    assert _fetch(f"{server}/to-ok") == BODY


def test_loopback_is_refused_unless_allowed(server: str):
    with pytest.raises(http.AddressRefused) as refused:
        _fetch(f"{server}/ok", allowed=[])
    assert refused.value.address == "127.0.0.1"
    assert refused.value.url == f"{server}/ok"
    assert "OAPIP_ALLOWED_NETWORKS" in str(refused.value)


def test_a_redirect_is_checked_again(server: str):
    with pytest.raises(http.AddressRefused) as refused:
        _fetch(f"{server}/to-elsewhere")
    assert refused.value.address == "127.0.0.2"
    assert refused.value.url == "http://127.0.0.2:9/ok"


def test_too_many_redirects(server: str):
    with pytest.raises(http.TooManyRedirects):
        _fetch(f"{server}/loop")


def test_a_status_other_than_200(server: str):
    with pytest.raises(http.BadStatus) as bad:
        _fetch(f"{server}/missing")
    assert bad.value.status_code == 404


@pytest.mark.parametrize("path", ["/big", "/big-chunked"])
def test_a_body_larger_than_the_limit(server: str, path: str):
    with pytest.raises(http.TooLarge) as large:
        _fetch(f"{server}{path}", max_bytes=1000)
    assert large.value.max_bytes == 1000


def test_the_time_limit_covers_the_whole_fetch(server: str):
    started = time.monotonic()
    with pytest.raises(http.TimedOut):
        _fetch(f"{server}/slow", timeout_s=0.3)
    assert time.monotonic() - started < 1.2


@pytest.mark.parametrize("url", ["ftp://example.org/app.cwl", "file:///etc/passwd", "http:///x"])
def test_only_http_urls(url: str):
    with pytest.raises(http.NotHttpUrl):
        _fetch(url)


def test_a_host_that_does_not_resolve():
    with pytest.raises(http.UnknownHost):
        _fetch("http://no-such-host.invalid/app.cwl")


def test_every_failure_is_a_fetch_error():
    for name in http.__all__:
        value = getattr(http, name)
        if isinstance(value, type) and issubclass(value, Exception) and name != "FetchError":
            assert issubclass(value, http.FetchError), name


# --- the guard's decisions ------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.2",  # loopback outside the allowed /32
        "10.1.2.3",  # private
        "192.168.0.1",
        "172.16.5.5",
        "100.64.0.1",  # CGNAT
        "169.254.10.10",  # link-local
        "224.0.0.1",  # multicast
        "240.0.0.1",  # reserved
        "0.0.0.0",  # unspecified: this host
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.2",  # IPv4-mapped loopback
        "64:ff9b::a01:203",  # NAT64 of 10.1.2.3
        "2002:a01:203::1",  # 6to4 of 10.1.2.3
    ],
)
def test_non_public_addresses_are_refused_unless_listed(address: str):
    guard = _guard()
    assert guard.refuses(ipaddress.ip_address(address), 80)
    listed = _guard([*LOOPBACK, "0.0.0.0/0", "::/0"])
    assert not listed.refuses(ipaddress.ip_address(address), 80) or address == "0.0.0.0"


def test_public_addresses_pass():
    assert not _guard([]).refuses(ipaddress.ip_address("93.184.216.34"), 443)
    assert not _guard([]).refuses(ipaddress.ip_address("2606:2800:220:1::"), 443)


@pytest.mark.parametrize("address", sorted(str(a) for a in http.METADATA_ADDRESSES))
def test_cloud_metadata_is_refused_even_when_its_network_is_listed(address: str):
    everything = _guard(["0.0.0.0/0", "::/0"])
    assert everything.refuses(ipaddress.ip_address(address), 80)


def test_the_engines_own_services_are_refused_even_when_loopback_is_listed():
    settings = Settings(
        prefect=PrefectSettings(api_url="http://127.0.0.1:14200/api"),
        stack=StackSettings(host="0.0.0.0", port=18000),
        outbound=OutboundSettings(allowed_networks=["127.0.0.0/8", "::1/128"]),
    )
    guard = http.Guard.from_settings(settings)
    assert {14200, 18000} <= guard.service_ports
    for address in ("127.0.0.1", "127.0.0.9", "0.0.0.0", "::1"):
        assert guard.refuses(ipaddress.ip_address(address), 14200), address
        assert guard.refuses(ipaddress.ip_address(address), 18000), address
    # Another port of an allowed network is fine, and so is the same port elsewhere.
    assert not guard.refuses(ipaddress.ip_address("127.0.0.1"), 18001)
    assert not guard.refuses(ipaddress.ip_address("93.184.216.34"), 14200)


def test_a_private_service_elsewhere_is_refused_on_every_port():
    settings = Settings(
        outbound=OutboundSettings(allowed_networks=["10.0.0.0/8"]),
        results={"s3_endpoint": "http://10.9.8.7:9000"},
    )
    guard = http.Guard.from_settings(settings)
    assert guard.refuses(ipaddress.ip_address("10.9.8.7"), 9001)
    assert not guard.refuses(ipaddress.ip_address("10.9.8.6"), 9000)


def test_the_old_setting_name_is_read(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OAPIP_PACKAGE_HREF_ALLOWED_NETWORKS", '["10.0.0.0/8"]')
    assert Settings().outbound.allowed_networks == ["10.0.0.0/8"]
    monkeypatch.setenv("OAPIP_ALLOWED_NETWORKS", '["192.168.0.0/16"]')
    assert Settings().outbound.allowed_networks == ["192.168.0.0/16"]


def test_a_refusal_never_says_where_a_name_points():
    with pytest.raises(http.AddressRefused) as refused:
        asyncio.run(_guard([]).check("http://localhost:9/secret"))
    assert refused.value.address in ("127.0.0.1", "::1")
    assert "127.0.0.1" not in str(refused.value) and "::1" not in str(refused.value)
    assert str(refused.value).startswith("http://localhost:9/secret is refused")


# --- the address checked is the address connected to -------------------------------------


@pytest.fixture(scope="module")
def twins() -> Iterator[int]:
    """Two servers on one port: 127.0.0.1 (the allowed one) and 127.0.0.2 (the victim)."""
    first = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    port = first.server_port
    second = ThreadingHTTPServer(("127.0.0.2", port), _Handler)
    for httpd in (first, second):
        httpd.daemon_threads = True
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield port
    for httpd in (first, second):
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def rebinding(monkeypatch: pytest.MonkeyPatch) -> None:
    """``rebind.test`` resolves to 127.0.0.1 the first time, to 127.0.0.2 afterwards."""
    real = socket.getaddrinfo
    answers = iter(["127.0.0.1"])

    def getaddrinfo(host, port, *args, **kwargs):
        if host == "rebind.test":
            return real(next(answers, "127.0.0.2"), port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def test_requests_connects_to_the_address_it_checked(twins: int, rebinding: None):
    with http.guarded_session(_guard()) as session:
        answer = session.get(f"http://rebind.test:{twins}/whoami", timeout=5).text
    assert answer == f"127.0.0.1 rebind.test:{twins}"


def test_httpx_connects_to_the_address_it_checked(twins: int, rebinding: None):
    with httpx.Client(transport=http.GuardedTransport(_guard())) as client:
        answer = client.get(f"http://rebind.test:{twins}/whoami", timeout=5).text
    assert answer == f"127.0.0.1 rebind.test:{twins}"


def test_the_async_fetch_connects_to_the_address_it_checked(twins: int, rebinding: None):
    assert _fetch(f"http://rebind.test:{twins}/whoami") == f"127.0.0.1 rebind.test:{twins}".encode()


def test_requests_checks_every_redirect(twins: int, redirector: str):
    with http.guarded_session(_guard()) as session:
        assert session.get(f"{redirector}http://127.0.0.1:{twins}/ok", timeout=5).ok
        with pytest.raises(http.AddressRefused) as refused:
            session.get(f"{redirector}http://127.0.0.2:{twins}/", timeout=5)
    assert refused.value.url == f"127.0.0.2:{twins}"


def test_httpx_refuses_before_connecting(twins: int):
    with (
        httpx.Client(transport=http.GuardedTransport(_guard())) as client,
        pytest.raises(http.AddressRefused),
    ):
        client.get(f"http://127.0.0.2:{twins}/", timeout=5)


def test_requests_ignores_proxies_from_the_environment(twins: int, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.2:9")
    with http.guarded_session(_guard()) as session:
        assert session.get(f"http://127.0.0.1:{twins}/ok", timeout=5).ok
    assert isinstance(session, requests.Session)
