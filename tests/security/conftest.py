"""Fixtures of the security tests: a real OIDC issuer on loopback, a gateway that trusts
it, and an engine of their own for the fault and secret tests.

The issuer is a small HTTP server publishing OIDC discovery and a JWKS of real RSA and
EC keys; tokens are signed with PyJWT. The OIDC gateway is a second gateway process
(``uvicorn api_gateway.main:app``) on the session engine's Prefect server, configured
with that issuer; the session gateway stays in open mode.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from core.processes import stop_process_group
from stack.local import wait_for_http
from tests.conftest import Engine, FileServer, _running_engine, free_port

AUDIENCE = "oapip-gateway"
# Values of secret settings the secret tests configure and then look for everywhere.
SECRETS = {
    "S3_SECRET_KEY": "s3-secret-5f1e9c0b7a",
    "S3_ACCESS_KEY": "s3-access-AKIA7Q2X",
    "STAGEIN_S3_SECRET_KEY": "stagein-secret-93ab17",
    "OAPIP_TOIL_WES_PASSWORD": "wes-password-c0ffee42",
    "OAPIP_OIDC_CLIENT_SECRET": "oidc-client-secret-d34db33f",
}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Issuer:
    """An OIDC issuer on loopback: discovery, a JWKS, and tokens signed with its keys."""

    url: str
    keys: dict[str, Any] = field(default_factory=dict)  # kid -> private key (published)
    jwks_fetches: int = 0

    def add_key(self, kid: str, kind: str = "rsa") -> None:
        self.keys[kid] = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            if kind == "rsa"
            else ec.generate_private_key(ec.SECP256R1())
        )

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid, private in self.keys.items():
            algorithm = "RS256" if isinstance(private, rsa.RSAPrivateKey) else "ES256"
            jwk = json.loads(jwt.get_algorithm_by_name(algorithm).to_jwk(private.public_key()))
            keys.append({**jwk, "kid": kid, "use": "sig", "alg": algorithm})
        return {"keys": keys}

    def claims(self, user: str, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "iss": self.url,
            "aud": AUDIENCE,
            "sub": str(uuid.uuid4()),
            "preferred_username": user,
            "iat": now,
            "nbf": now - 5,
            "exp": now + 300,
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def token(
        self,
        user: str,
        *,
        kid: str = "rsa-1",
        key: Any = None,
        algorithm: str | None = None,
        **claims: Any,
    ) -> str:
        """A token for ``user`` signed with the key ``kid`` (or ``key``, published as
        ``kid``); ``claims`` override the standard ones (``None`` removes one)."""
        private = key or self.keys[kid]
        if algorithm is None:
            algorithm = "RS256" if isinstance(private, rsa.RSAPrivateKey) else "ES256"
        return jwt.encode(
            self.claims(user, **claims), private, algorithm=algorithm, headers={"kid": kid}
        )

    def unsigned_token(self, user: str) -> str:
        """``alg: none``: no signature at all."""
        header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": "rsa-1"}).encode())
        payload = _b64(json.dumps(self.claims(user)).encode())
        return f"{header}.{payload}."

    def hs256_with_public_key(self, user: str, kid: str = "rsa-1") -> str:
        """HS256 keyed with the issuer's public key (the algorithm-confusion attack)."""
        public_pem = (
            self.keys[kid]
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
        payload = _b64(json.dumps(self.claims(user)).encode())
        signature = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return f"{header}.{payload}.{_b64(signature)}"


class _IssuerHandler(http.server.BaseHTTPRequestHandler):
    issuer: Issuer

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path == "/.well-known/openid-configuration":
            body = {"issuer": self.issuer.url, "jwks_uri": f"{self.issuer.url}/jwks"}
        elif self.path == "/jwks":
            self.issuer.jwks_fetches += 1
            body = self.issuer.jwks()
        else:
            self.send_error(404)
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture(scope="session")
def issuer() -> Iterator[Issuer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _IssuerHandler)
    issuer = Issuer(f"http://127.0.0.1:{server.server_address[1]}")
    issuer.add_key("rsa-1")
    issuer.add_key("ec-1", "ec")
    _IssuerHandler.issuer = issuer
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield issuer
    server.shutdown()
    server.server_close()


@dataclass
class OidcGateway:
    """A gateway that requires tokens from ``issuer``, on the session engine's Prefect."""

    url: str
    issuer: Issuer
    log: Path

    def api(self, user: str | None) -> str:
        return f"{self.url}/ogc-api" if user is None else f"{self.url}/{user}/ogc-api"


@pytest.fixture(scope="session")
def oidc_gateway(
    engine: Engine, issuer: Issuer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OidcGateway]:
    from core.settings import PrefectSettings, Settings
    from stack.local import prefect_env

    port = free_port()
    log = tmp_path_factory.mktemp("oidc-gateway") / "gateway.log"
    env = {
        **prefect_env(
            Settings(home=engine.home, prefect=PrefectSettings(api_url=engine.prefect_api_url))
        ),
        "OAPIP_PORT": str(port),
        "OAPIP_OIDC_ISSUER": issuer.url,
        "OAPIP_OIDC_CLIENT_ID": AUDIENCE,
        "OAPIP_OIDC_JWKS_REFRESH_S": "0",  # tests rotate keys and count fetches
        # Multi-tenant mode starts only with the tool sandbox (the session engine's
        # worker, in single-user mode, runs the jobs).
        "OAPIP_SANDBOX": "containers",
        "OAPIP_DEFAULT_IMAGE": "localhost/oapip/tool-base:latest",
    }
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "api_gateway.main:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-access-log",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health", 60, proc)
        yield OidcGateway(f"http://127.0.0.1:{port}", issuer, log)
    finally:
        stop_process_group(proc.pid, proc)
    crashes = [line for line in log.read_text().splitlines() if "unexpected error on" in line]
    assert not crashes, f"the OIDC gateway failed on: {crashes}"


def auth(token: str) -> dict[str, str]:
    """The Authorization header of ``token``."""
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="package")
def own_engine(
    tmp_path_factory: pytest.TempPathFactory, tool_bin: Path, file_server: FileServer
) -> Iterator[Engine]:
    """An engine of these tests alone (fault tests kill its parts), with secrets set."""
    with _running_engine(
        "security",
        tmp_path_factory.mktemp("oapip-home-security"),
        tool_bin,
        extra_env=dict(SECRETS),
    ) as running:
        yield running
