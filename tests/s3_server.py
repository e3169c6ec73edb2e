"""Real S3 over HTTP for the tests: ``moto[server]`` subprocesses on loopback ports.

Two servers with two key pairs, as in production: the stage-in endpoint (inputs are read
from it) and the stage-out endpoint (results are written to it). moto accepts any
signature, so the keys only prove the engine sends the right ones to the right place;
what a server holds is real and read back over HTTP. Each server is a child process
stopped by its PID at the end of the session.

A loopback stand-in of the EOEPCA Workspace API hands out per-user buckets on the
stage-out server. The fixtures are imported into ``tests/conftest.py``.
"""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pystac
import pytest
import requests
from botocore.config import Config

__all__ = [
    "S3Server",
    "WorkspaceApiStandIn",
    "moto_server",
    "stagein_s3",
    "stageout_s3",
    "start_moto",
    "workspace_api",
]


@dataclass
class S3Server:
    """One running moto server and the keys the tests use with it."""

    endpoint: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"
    process: subprocess.Popen | None = None

    def client(self) -> Any:
        """A boto3 S3 client of this server (path-style, few retries)."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 2}),
        )

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def put(self, bucket: str, key: str, content: bytes | str) -> str:
        """Store an object; return its ``s3://`` URL."""
        data = content.encode() if isinstance(content, str) else content
        self.client().put_object(Bucket=bucket, Key=key, Body=data)
        return f"s3://{bucket}/{key}"

    def get(self, url: str) -> bytes:
        """The content of the object at an ``s3://`` URL."""
        bucket, _, key = url.removeprefix("s3://").partition("/")
        return self.client().get_object(Bucket=bucket, Key=key)["Body"].read()

    def read_catalog(self, url: str) -> pystac.Catalog:
        """The STAC catalog published at ``url`` (``s3://``), read back with pystac
        through this server, as a client of the bucket would."""
        server = self

        class S3StacIO(pystac.stac_io.DefaultStacIO):
            def read_text(self, source: Any, *args: Any, **kwargs: Any) -> str:
                return server.get(str(source)).decode()

        root = pystac.read_file(url, stac_io=S3StacIO())
        assert isinstance(root, pystac.Catalog), url
        return root

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        paginator = self.client().get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def environment(self, prefix: str) -> dict[str, str]:
        """The engine's settings for this server: ``<prefix>S3_ENDPOINT`` etc."""
        return {
            f"{prefix}S3_ENDPOINT": self.endpoint,
            f"{prefix}S3_ACCESS_KEY": self.access_key,
            f"{prefix}S3_SECRET_KEY": self.secret_key,
            f"{prefix}S3_REGION": self.region,
        }


def start_moto(port: int, log: Path, timeout_s: float = 30.0) -> subprocess.Popen:
    """Start ``moto_server`` on ``127.0.0.1:port``; return once it answers HTTP."""
    moto = Path(sys.executable).with_name("moto_server")
    with log.open("ab") as out:
        process = subprocess.Popen(
            [str(moto), "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=out
        )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto_server exited with {process.returncode}; see {log}")
        try:
            requests.get(f"http://127.0.0.1:{port}/", timeout=5)
            return process
        except requests.RequestException:
            time.sleep(0.1)
    process.kill()
    raise TimeoutError(f"moto_server on port {port} did not answer within {timeout_s:.0f} s")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A factory: ``moto_server(name, access, secret)`` starts one server per name."""
    from tests.conftest import free_port

    servers: dict[str, S3Server] = {}
    logs = tmp_path_factory.mktemp("moto")

    def start(name: str, access_key: str, secret_key: str) -> S3Server:
        if name not in servers:
            port = free_port()
            process = start_moto(port, logs / f"{name}.log")
            servers[name] = S3Server(
                f"http://127.0.0.1:{port}", access_key, secret_key, process=process
            )
        return servers[name]

    yield start
    for server in servers.values():
        if server.process is not None:
            stop(server.process)


@pytest.fixture(scope="session")
def stagein_s3(moto_server: Any) -> S3Server:
    """Where inputs live: its own server and keys."""
    return moto_server("stage-in", "stagein-access", "stagein-secret")


@pytest.fixture(scope="session")
def stageout_s3(moto_server: Any) -> S3Server:
    """Where results go: another server with other keys and the `eoepca` bucket."""
    server = moto_server("stage-out", "stageout-access", "stageout-secret")
    server.create_bucket("eoepca")
    return server


# --- a Workspace API stand-in -------------------------------------------------------------


@dataclass
class WorkspaceApiStandIn:
    """A loopback HTTP server answering ``GET /workspaces/ws-<user>`` like the EOEPCA
    Workspace API: ``{"storage": {"credentials": {bucketname, endpoint, access, secret,
    region}}}`` for registered users, 404 for others. Each user gets their own keys."""

    url: str
    workspaces: dict[str, dict[str, str]]
    requests_seen: list[tuple[str, str | None]]

    def register(self, user: str, server: S3Server, *, create_bucket: bool = True) -> str:
        """Give ``user`` a workspace whose bucket ``ws-<user>`` is on ``server``."""
        bucket = f"ws-{user}"
        if create_bucket:
            server.create_bucket(bucket)
        self.workspaces[bucket] = {
            "bucketname": bucket,
            "endpoint": server.endpoint,
            "access": f"{user}-access",
            "secret": f"{user}-secret",
            "region": server.region,
        }
        return bucket


@pytest.fixture(scope="session")
def workspace_api() -> Iterator[WorkspaceApiStandIn]:
    stand_in = WorkspaceApiStandIn("", {}, [])

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            stand_in.requests_seen.append((self.path, self.headers.get("Authorization")))
            name = self.path.rstrip("/").rsplit("/", 1)[-1]
            found = stand_in.workspaces.get(name) if self.path.startswith("/workspaces/") else None
            body = json.dumps(
                {"name": name, "storage": {"credentials": found}}
                if found
                else {"detail": "workspace not found"}
            ).encode()
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    stand_in.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield stand_in
    server.shutdown()
    server.server_close()
