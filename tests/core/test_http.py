"""core.http against a loopback HTTP server: addresses, redirects, size and time limits."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from core import http

LOOPBACK = ["127.0.0.1/32"]
BODY = b"cwlVersion: v1.2\n"


class _Handler(BaseHTTPRequestHandler):
    """``/ok``, ``/missing``, ``/to-ok``, ``/to-elsewhere``, ``/loop``, ``/big``,
    ``/big-chunked``, ``/slow``."""

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


def _fetch(url: str, *, allowed=LOOPBACK, max_bytes: int = 1000, timeout_s: float = 5.0) -> bytes:
    return asyncio.run(
        http.fetch(url, allowed_networks=allowed, max_bytes=max_bytes, timeout_s=timeout_s)
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
        if isinstance(value, type) and name != "FetchError":
            assert issubclass(value, http.FetchError), name
