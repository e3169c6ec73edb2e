"""Session fixtures: the real embedded engine (Prefect server, fast worker, gateway).

One engine per session on SQLite (the embedded default); a second one on PostgreSQL
(127.0.0.1:5432, trust auth) starts only when a ``postgres`` test asks for it. Both run
as child processes on free loopback ports with a temporary ``OAPIP_HOME``; tests talk to
them over real HTTP. Application packages and input images come from a loopback file
server (with the EOEPCA packages of the reference folder, ``tests.reference``, when it is
to be had), and a stand-in ``convert.sh`` (first on ``PATH``) replaces the container image
of the convert-url package. A third engine, ``container_engine``, runs tools with a
DockerRequirement in containers of the session's podman service (``tests.containers``).
Nothing here reaches the internet.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import re
import shutil
import socket
import struct
import subprocess
import threading
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from infrastructure.containers.podman import PodmanService
from tests import reference
from tests.containers import podman  # noqa: F401  (session fixture)
from tests.k8s_api import calrissian_bin  # noqa: F401  (session fixture)
from tests.s3_server import (  # noqa: F401 (fixtures)
    S3Server,
    WorkspaceApiStandIn,
    moto_server,
    stagein_s3,
    stageout_s3,
    workspace_api,
)

POSTGRES_DSN = "postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
# The tests' own servers (file server, callback receivers, moto) listen on 127.0.0.1, which
# the outbound guard refuses unless listed: the stacks list it. Only it: the hostile-tenant
# tests attack other loopback addresses (127.0.0.2), which stay refused, and the engine's
# own services (Prefect API, gateway, S3 endpoints) are refused whatever is listed.
LOOPBACK_NETWORKS = '["127.0.0.1/32", "::1/128"]'
# Small, so the 413 test needs no huge body; larger than every package the tests send.
MAX_REQUEST_BYTES = 2 * 1024 * 1024

# What the engine's tool runs instead of the `eoepca/convert` image: fetch the image (no
# resize) and write what the real tool writes into the output directory (cwd):
# `<stem>-resize.<ext>`, a STAC item `<stem>-resize.json` and `catalog.json`.
CONVERT_SH = """\
#!/bin/sh
# convert.sh FN --url URL SIZE  (stand-in for the eoepca/convert image)
set -eu
url="$3"; name="$(basename "${url%%\\?*}")"; stem="${name%.*}-resize"; out="$stem.${name##*.}"
curl --noproxy '*' -sSf -o "$out" "$url"
now="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
printf '{"stac_version": "1.0.0", "id": "%s", "type": "Feature", "geometry": null, \
"properties": {"datetime": "%s"}, "assets": {"output": {"type": "image/png", \
"roles": ["data"], "href": "%s", "file:size": %s}}, "links": [{"rel": "parent", \
"href": "catalog.json"}, {"rel": "self", "href": "%s.json"}, {"rel": "root", \
"href": "catalog.json"}]}\n' "$stem" "$now" "$out" "$(wc -c < "$out")" "$stem" > "$stem.json"
printf '{"stac_version": "1.0.0", "id": "catalog", "type": "Catalog", \
"description": "Root catalog", "links": [{"rel": "item", "href": "%s.json"}, \
{"rel": "self", "href": "catalog.json"}]}\n' "$stem" > catalog.json
"""
# The names it writes for an input image called `logo.png`.
CONVERTED = ("catalog.json", "logo-resize.json", "logo-resize.png")


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tiny_png(width: int = 4, height: int = 4) -> bytes:
    """A valid RGB PNG of ``width`` x ``height`` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


# --- loopback file server ---------------------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@dataclass
class FileServer:
    """A folder served over HTTP on loopback; ``add`` puts a file there and gives its URL."""

    root: Path
    url: str

    def add(self, name: str, content: str | bytes) -> str:
        data = content.encode() if isinstance(content, str) else content
        (self.root / name).write_bytes(data)
        return f"{self.url}/{name}"


@pytest.fixture(scope="session")
def app_packages() -> Path:
    """The EOEPCA application packages (``tests.reference``); skips the test without them."""
    return reference.app_packages()


@pytest.fixture(scope="session")
def file_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FileServer]:
    """Serves ``logo.png``, the EOEPCA packages when they are to be had (a test deploying
    one by URL asks for ``app_packages`` too), and what tests ``add``."""
    root = tmp_path_factory.mktemp("www")
    packages = reference.find(reference.APP_PACKAGES)
    for path in packages.iterdir() if packages else ():
        if path.is_file():
            shutil.copy(path, root / path.name)
    (root / "logo.png").write_bytes(tiny_png())
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield FileServer(root, f"http://127.0.0.1:{server.server_address[1]}")
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def png_url(file_server: FileServer) -> str:
    return f"{file_server.url}/logo.png"


class _Redirect(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.send_response(302)
        self.send_header("Location", self.path.partition("?")[2])
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture(scope="session")
def redirector() -> Iterator[str]:
    """A loopback server (127.0.0.1) that redirects ``<its URL><target>`` to ``<target>``:
    the URL it gives ends with ``/to?``."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Redirect)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/to?"
    server.shutdown()
    server.server_close()


# --- the engine -------------------------------------------------------------------------


@dataclass
class Engine:
    """A running embedded stack and where to reach it."""

    name: str
    url: str  # gateway root, e.g. http://127.0.0.1:8123
    home: Path
    prefect_api_url: str
    stack: Any = None  # the stack.local.Stack running it
    env: dict[str, str] | None = None  # the settings its processes were started with

    @property
    def prefect_auth(self) -> tuple[str, str]:
        """Basic-auth credentials of this stack's Prefect API (``requests``' ``auth=``)."""
        from stack.prefect_auth import basic_auth

        return basic_auth(self.home)

    def prefect_settings(self) -> dict[Any, str]:
        """Prefect settings of a client of this stack (``temporary_settings(updates=...)``)."""
        from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL

        from stack.prefect_auth import auth_string

        return {
            PREFECT_API_URL: self.prefect_api_url,
            PREFECT_API_AUTH_STRING: auth_string(self.home),
        }

    def api(self, user: str | None) -> str:
        """Base URL of ``user``'s OGC API tree (``None``: the unprefixed one)."""
        return f"{self.url}/ogc-api" if user is None else f"{self.url}/{user}/ogc-api"

    def log_lines(self, name: str) -> list[str]:
        """The lines of the stack's ``name`` log (gateway, worker, prefect-server)."""
        path = self.home / "logs" / f"{name}.log"
        return path.read_text(errors="replace").splitlines() if path.exists() else []

    def log_tail(self, name: str = "worker", lines: int = 40) -> str:
        return "\n".join(self.log_lines(name)[-lines:])


@pytest.fixture(scope="session")
def tool_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bin")
    script = folder / "convert.sh"
    script.write_text(CONVERT_SH)
    script.chmod(0o755)
    folder.chmod(0o755)  # tools run as the sandbox user (OAPIP_SANDBOX=off)
    return folder


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def _running_engine(
    name: str,
    home: Path,
    tool_bin: Path,
    database_url: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> Iterator[Engine]:
    """Start ``stack.local.Stack`` with its own home and ports; stop it on exit.

    ``extra_env`` adds variables for the stack's processes (settings such as
    ``OAPIP_OIDC_ISSUER``, ``DOCKER_HOST``); the ``Engine`` yielded keeps the ``Stack`` so
    fault tests can kill and restart its parts.
    """
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    import core.settings
    from core.settings import Settings, StackSettings
    from stack.local import Stack
    from stack.prefect_auth import auth_string

    port, prefect_port = free_port(), free_port()
    api_url = f"http://127.0.0.1:{prefect_port}/api"
    env = {
        "PREFECT_API_URL": api_url,
        "OAPIP_HOME": str(home),
        "OAPIP_PORT": str(port),
        "OAPIP_PREFECT_PORT": str(prefect_port),
        "OAPIP_MAX_REQUEST_BYTES": str(MAX_REQUEST_BYTES),
        # Packages and inputs come from the loopback file server, which the default refuses.
        "OAPIP_ALLOWED_NETWORKS": LOOPBACK_NETWORKS,
        # The hostile-input tests' slow href server must not hold a test for 20 s.
        "OAPIP_PACKAGE_FETCH_TIMEOUT_S": "5",
        # Schedule tests use intervals of a few seconds; production keeps a 60 s minimum.
        "OAPIP_SCHEDULE_MIN_INTERVAL_S": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PATH": f"{tool_bin}{os.pathsep}{os.environ['PATH']}",
        **(extra_env or {}),
    }
    # The stack's children inherit os.environ; this process keeps its own afterwards.
    with _environment(env):
        core.settings.get_settings.cache_clear()
        settings = Settings(stack=StackSettings(database_url=database_url))
        assert settings.stack.port == port and settings.home == home, settings
        stack = Stack(settings)
        try:
            # Prefect read its settings when first imported: point this process's
            # client (used by the stack's setup step) at this engine's server.
            with temporary_settings(
                updates={PREFECT_API_URL: api_url, PREFECT_API_AUTH_STRING: auth_string(home)}
            ):
                stack.start()
        except BaseException:
            stack.stop()
            raise
    core.settings.get_settings.cache_clear()
    running = Engine(name, f"http://127.0.0.1:{port}", home, api_url, stack, env)
    try:
        yield running
    finally:
        stack.stop()
    # A test that only checks for "an error" would pass on a crash of the gateway.
    crashes = [line for line in running.log_lines("gateway") if "unexpected error on" in line]
    assert not crashes, f"the {name} gateway failed on: {crashes}"


@pytest.fixture(scope="session")
def sqlite_engine(
    tmp_path_factory: pytest.TempPathFactory, tool_bin: Path, file_server: FileServer
) -> Iterator[Engine]:
    """The embedded default: Prefect server on SQLite."""
    with _running_engine("sqlite", tmp_path_factory.mktemp("oapip-home"), tool_bin) as running:
        yield running


@pytest.fixture(scope="session")
def postgres_engine(
    tmp_path_factory: pytest.TempPathFactory, tool_bin: Path, file_server: FileServer
) -> Iterator[Engine]:
    """The same stack with the Prefect server on PostgreSQL, in a fresh database."""
    database = f"oapip_test_{uuid.uuid4().hex[:12]}"
    psql = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-c"]
    created = subprocess.run(
        [*psql, f"CREATE DATABASE {database}"], capture_output=True, text=True, check=False
    )
    if created.returncode != 0:
        pytest.fail(
            "PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth) is needed by the "
            f"`postgres` tests: {created.stderr.strip()}"
        )
    try:
        with _running_engine(
            "postgres",
            tmp_path_factory.mktemp("oapip-home-pg"),
            tool_bin,
            POSTGRES_DSN.format(name=database),
        ) as running:
            yield running
    finally:
        subprocess.run(
            [*psql, f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"],
            check=False,
            capture_output=True,
        )


def container_env(service: PodmanService) -> dict[str, str]:
    """Settings that run DockerRequirement tools in ``service``'s containers, never pulling."""
    return {
        **service.environment(),
        "OAPIP_CONTAINER_ENGINE": "docker",
        "OAPIP_CONTAINER_PULL": "false",
        # Tools fetch their inputs from the loopback file server.
        "OAPIP_CONTAINER_NETWORK": "host",
    }


@pytest.fixture(scope="session")
def container_engine(
    tmp_path_factory: pytest.TempPathFactory,
    tool_bin: Path,
    file_server: FileServer,
    podman: PodmanService,  # noqa: F811
    stageout_s3: S3Server,  # noqa: F811
) -> Iterator[Engine]:
    """The SQLite stack with tools in podman containers (DockerRequirement honoured) and
    results staged out to the stage-out S3 server, as on a production site."""
    with _running_engine(
        "containers",
        tmp_path_factory.mktemp("oapip-home-containers"),
        tool_bin,
        extra_env={**container_env(podman), **stageout_s3.environment("")},
    ) as running:
        yield running


@pytest.fixture(scope="session")
def s3_engine(
    tmp_path_factory: pytest.TempPathFactory,
    tool_bin: Path,
    file_server: FileServer,
    stagein_s3: S3Server,  # noqa: F811 (the fixture imported above)
    stageout_s3: S3Server,  # noqa: F811
    workspace_api: WorkspaceApiStandIn,  # noqa: F811
) -> Iterator[Engine]:
    """The SQLite stack with results on S3: inputs from the stage-in moto server, results
    to the stage-out one, in workspace mode with fallback (users registered with the
    Workspace API stand-in get their own bucket, others the shared `eoepca`), and a small
    retry budget so that failure tests end quickly."""
    env = {
        **stagein_s3.environment("STAGEIN_"),
        **stageout_s3.environment(""),
        "USE_WORKSPACE_API": "true",
        "OAPIP_WORKSPACE_API_URL": workspace_api.url,
        "OAPIP_WORKSPACE_FALLBACK": "true",
        "OAPIP_STAGING_ATTEMPTS": "2",
        "OAPIP_STAGING_BACKOFF_S": "0.1",
    }
    home = tmp_path_factory.mktemp("oapip-home-s3")
    with _running_engine("s3", home, tool_bin, extra_env=env) as running:
        yield running


@pytest.fixture(scope="session")
def engine(sqlite_engine: Engine) -> Engine:
    """The engine most tests use: the embedded SQLite default."""
    return sqlite_engine


@pytest.fixture
def any_engine(request: pytest.FixtureRequest) -> Engine:
    """The engine named by indirect parametrization: ``"sqlite"`` or ``"postgres"``."""
    return request.getfixturevalue(f"{request.param}_engine")


BOTH_ENGINES = pytest.mark.parametrize(
    "any_engine",
    ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
    indirect=True,
)


@pytest.fixture
def user(request: pytest.FixtureRequest) -> str:
    """A user name of this test alone, so tests never see each other's processes/jobs."""
    base = re.sub(r"[^A-Za-z0-9_]+", "-", request.node.name).strip("-")[:40]
    return f"{base}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def api(engine: Engine, user: str) -> str:
    """This test's user's OGC API base URL on the SQLite engine."""
    return engine.api(user)


# The HPC site (Slurm + Toil WES) starts only for tests that ask for it.
from tests.hpc import hpc, hpc_engine  # noqa: E402, F401
