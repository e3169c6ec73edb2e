"""Basic-auth reverse proxy in front of Toil's WES server (development and test stacks).

Toil's server has no authentication of its own; sites put a proxy in front of it (the
reference guide uses nginx with an htpasswd file). This is the same thing in one small
standard-library script, so the HPC stack needs nothing but Python:

    python wes_auth_proxy.py --listen 127.0.0.1:8090 --upstream http://127.0.0.1:8091 \\
        --user oapip --password-file /path/to/password

Every request without the right ``Authorization: Basic`` header is answered 401; the
others are forwarded to the upstream as they are (minus the credentials) and the answer
is passed back. Bodies are buffered in memory: WES requests and answers are small.
"""

from __future__ import annotations

import argparse
import base64
import hmac
import http.client
import http.server
import sys
from pathlib import Path
from urllib.parse import urlsplit

# Headers that belong to one connection, not to the request (RFC 9110 §7.6.1).
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
}
_UPSTREAM_TIMEOUT_S = 300.0


def _expected_header(user: str, password: str) -> bytes:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return f"Basic {token}".encode()


def make_handler(upstream: str, expected: bytes) -> type[http.server.BaseHTTPRequestHandler]:
    """A request handler class that checks ``expected`` and forwards to ``upstream``."""
    target = urlsplit(upstream)
    if target.scheme != "http" or not target.hostname:
        raise SystemExit(f"--upstream must be an http:// URL, not {upstream!r}")

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "wes-auth-proxy"

        def _authorized(self) -> bool:
            given = (self.headers.get("Authorization") or "").encode()
            return hmac.compare_digest(given, expected)

        def _read_body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        self.rfile.readline()
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _reply(self, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _forward(self) -> None:
            body = self._read_body()
            if not self._authorized():
                self._reply(
                    401,
                    b'{"msg": "authentication required", "status_code": 401}',
                    [
                        ("WWW-Authenticate", 'Basic realm="Toil WES"'),
                        ("Content-Type", "application/json"),
                    ],
                )
                return
            headers = {
                name: value
                for name, value in self.headers.items()
                if name.lower() not in _HOP_BY_HOP | {"authorization", "host", "content-length"}
            }
            headers["Host"] = target.netloc
            if body or self.command in ("POST", "PUT", "PATCH"):
                headers["Content-Length"] = str(len(body))
            connection = http.client.HTTPConnection(
                target.hostname, target.port or 80, timeout=_UPSTREAM_TIMEOUT_S
            )
            try:
                connection.request(self.command, self.path, body=body, headers=headers)
                answer = connection.getresponse()
                data = answer.read()
            except OSError as exc:
                message = f'{{"msg": "WES upstream unreachable: {type(exc).__name__}"}}'
                self._reply(502, message.encode(), [("Content-Type", "application/json")])
                return
            finally:
                connection.close()
            passed = [
                (name, value)
                for name, value in answer.getheaders()
                if name.lower() not in _HOP_BY_HOP | {"content-length"}
            ]
            self._reply(answer.status, data, passed)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _forward

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            sys.stderr.write(f"{self.log_date_time_string()} {format % args}\n")

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", required=True, help="HOST:PORT to serve on")
    parser.add_argument("--upstream", required=True, help="base URL of Toil's WES server")
    parser.add_argument("--user", required=True, help="the one accepted user name")
    parser.add_argument(
        "--password-file", required=True, type=Path, help="file holding the password"
    )
    args = parser.parse_args()
    host, _, port = args.listen.rpartition(":")
    expected = _expected_header(args.user, args.password_file.read_text().strip())
    server = http.server.ThreadingHTTPServer(
        (host, int(port)), make_handler(args.upstream, expected)
    )
    server.daemon_threads = True
    sys.stderr.write(f"wes-auth-proxy on {args.listen} -> {args.upstream}\n")
    sys.stderr.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
