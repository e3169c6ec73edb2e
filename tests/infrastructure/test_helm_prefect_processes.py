"""The scaled-out Prefect server of the chart works as rendered: its containers, run here as
processes with the command and environment each resolves to, make one Prefect server.

No cluster: the migration init container, the services pod and two API pods run on this
machine from their rendered ``args`` and environment; only what a pod's network gives
differs (PostgreSQL and Redis at 127.0.0.1, a fresh database and a Redis database of this
test alone, one port per API process, ``PREFECT_HOME`` per process). An event of a flow
run created through one API process is written by the services process (the event
persister, fed over Redis) and read back through the other: with the API processes on
in-memory messaging, or the services process not started, it never arrives.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import POSTGRES_DSN
from tests.infrastructure.chart import Container, containers, render
from tests.infrastructure.values import VALUE_SETS
from tests.support import poll

pytestmark = pytest.mark.timeout(900)

PSQL = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-c"]


def _free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as s:
        return s.getsockname()[1]


@pytest.fixture
def database() -> Iterator[str]:
    name = f"oapip_chart_{uuid.uuid4().hex[:10]}"
    created = subprocess.run([*PSQL, f"CREATE DATABASE {name}"], capture_output=True, text=True)
    if created.returncode != 0:
        pytest.fail(f"PostgreSQL on 127.0.0.1:5432 is needed: {created.stderr.strip()}")
    try:
        yield POSTGRES_DSN.format(name=name)
    finally:
        subprocess.run(
            [*PSQL, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"],
            check=False,
            capture_output=True,
        )


class _Pods:
    """The chart's Prefect containers as local processes, stopped by their ids."""

    def __init__(self, tmp: Path, database: str) -> None:
        self.tmp = tmp
        self.database = database
        self.redis_db = str(random.randint(8, 15))  # other stacks may use Redis too
        self.processes: list[subprocess.Popen] = []

    def argv(self, container: Container) -> list[str]:
        args = list(container.spec["args"])
        assert args[0] == "prefect"
        return [str(Path(sys.executable).parent / "prefect"), *args[1:]]

    def env(self, container: Container, name: str) -> dict[str, str]:
        home = self.tmp / name
        home.mkdir()
        return {
            **container.env,
            "PATH": os.environ["PATH"],
            "PREFECT_HOME": str(home),
            "PREFECT_API_DATABASE_CONNECTION_URL": self.database,
            "PREFECT_REDIS_MESSAGING_HOST": "127.0.0.1",
            "PREFECT_REDIS_MESSAGING_PORT": "6379",
            "PREFECT_REDIS_MESSAGING_DB": self.redis_db,
        }

    def start(self, argv: list[str], env: dict[str, str], name: str) -> subprocess.Popen:
        with open(self.tmp / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(
                argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.processes.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.processes:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def test_api_pods_and_the_services_pod_make_one_prefect_server(tmp_path: Path, database: str):
    objects = render(VALUE_SETS["prefect-scaled-out"])
    by_name = {c.name: c for c in containers(objects)}
    migrate = by_name["Deployment/oapip-prefect-services/migrate"]
    services = by_name["Deployment/oapip-prefect-services/prefect-services"]
    server = by_name["Deployment/oapip-prefect/prefect-server"]
    auth = tuple(server.env["PREFECT_SERVER_API_AUTH_STRING"].split(":", 1))
    pods = _Pods(tmp_path, database)
    try:
        done = subprocess.run(
            pods.argv(migrate), env=pods.env(migrate, "migrate"), capture_output=True, timeout=600
        )
        assert done.returncode == 0, done.stderr.decode()[-2000:]
        pods.start(pods.argv(services), pods.env(services, "services"), "services")
        urls = []
        for i in (1, 2):
            argv = pods.argv(server)
            argv[argv.index("--host") + 1] = "127.0.0.1"
            argv[argv.index("--port") + 1] = str(port := _free_port())
            pods.start(argv, pods.env(server, f"api-{i}"), f"api-{i}")
            urls.append(f"http://127.0.0.1:{port}/api")
        for url in urls:
            # Past 90 s on two cores shared with other servers.
            poll(lambda url=url: _answers(f"{url}/ready"), timeout=300, interval=0.5, what=url)
        first, second = (httpx.Client(base_url=url, auth=auth, timeout=30) for url in urls)
        flow = first.post("/flows/", json={"name": "chart-scale-out"}).json()
        run = first.post(
            "/flow_runs/", json={"flow_id": flow["id"], "state": {"type": "SCHEDULED"}}
        ).json()
        resource = f"prefect.flow-run.{run['id']}"

        def persisted() -> list[str]:
            body = {"filter": {"any_resource": {"id": [resource]}}, "limit": 10}
            events = second.post("/events/filter", json=body).json()["events"]
            return [e["event"] for e in events]

        assert second.get(f"/flow_runs/{run['id']}").json()["state_type"] == "SCHEDULED"
        poll(
            lambda: "prefect.flow-run.Scheduled" in persisted(),
            timeout=120,
            interval=0.5,
            what="the run's event, persisted by the services process",
        )
        assert all(p.poll() is None for p in pods.processes)
    finally:
        pods.stop()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False
