"""The scaled-out Prefect server of the chart works as rendered: its containers, run here as
processes with the command and environment each resolves to, make one Prefect server; and
the chart's housekeeping container, run the same way against it, serves its scheduled
deployment.

No cluster: the migration init container, the services pod and two API pods run on this
machine from their rendered ``args`` and environment; only what a pod's network and
volumes give differs (PostgreSQL and Redis at 127.0.0.1, a fresh database and a Redis
database of this module alone, one port per API process, ``PREFECT_HOME``, ``OAPIP_HOME``
and the data volume's paths per process). An event of a flow run created through one API
process is written by the services process (the event persister, fed over Redis) and read
back through the other: with the API processes on in-memory messaging, or the services
process not started, it never arrives. The housekeeping container runs through the
image's entrypoint (``infrastructure/docker/entrypoint.sh``) with its rendered ``args``.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import POSTGRES_DSN
from tests.infrastructure.chart import Container, containers, render
from tests.infrastructure.values import VALUE_SETS
from tests.support import poll

pytestmark = pytest.mark.timeout(900)

ENTRYPOINT = Path(__file__).resolve().parents[2] / "infrastructure" / "docker" / "entrypoint.sh"
_VALUES = VALUE_SETS["prefect-scaled-out"]
PSQL = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-c"]


def _free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as s:
        return s.getsockname()[1]


@pytest.fixture(scope="module")
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


@dataclass
class _Prefect:
    """The chart's Prefect server, running: its processes, its API processes' URLs, the
    credentials its clients are rendered with."""

    pods: _Pods
    urls: list[str]
    auth: tuple[str, str]

    def client(self, i: int) -> httpx.Client:
        return httpx.Client(base_url=self.urls[i], auth=self.auth, timeout=30)


@pytest.fixture(scope="module")
def prefect(tmp_path_factory: pytest.TempPathFactory, database: str) -> Iterator[_Prefect]:
    """The scaled-out Prefect server of ``prefect-scaled-out``: the migration, then the
    services process and two API processes, as their containers are rendered."""
    objects = render(_VALUES)
    by_name = {c.name: c for c in containers(objects)}
    migrate = by_name["Deployment/oapip-prefect-services/migrate"]
    services = by_name["Deployment/oapip-prefect-services/prefect-services"]
    server = by_name["Deployment/oapip-prefect/prefect-server"]
    auth = server.env["PREFECT_SERVER_API_AUTH_STRING"].split(":", 1)
    pods = _Pods(tmp_path_factory.mktemp("prefect-pods"), database)
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
        yield _Prefect(pods, urls, (auth[0], auth[1]))
    finally:
        pods.stop()


def test_api_pods_and_the_services_pod_make_one_prefect_server(prefect: _Prefect):
    first, second = prefect.client(0), prefect.client(1)
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
    assert all(p.poll() is None for p in prefect.pods.processes)


def test_the_housekeeping_container_serves_its_scheduled_deployment(
    prefect: _Prefect, tmp_path: Path
):
    """Run as rendered (the image's entrypoint with the container's ``args``), housekeeping
    creates its deployment with the schedule of ``retention.intervalSeconds``, its probe
    passes, and when it is stopped it pauses the schedule: a second pod, started before
    this one stops (a rolling update), would be left serving a paused schedule."""
    (housekeeping,) = [
        c
        for c in containers(render(_VALUES))
        if c.name == "Deployment/oapip-housekeeping/housekeeping"
    ]
    data = tmp_path / "data"  # the data volume
    env = {
        **housekeeping.env,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PREFECT_API_URL": prefect.urls[0],
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "OAPIP_HOME": str(tmp_path),
        "OAPIP_PREFECT_RESULTS_DIR": str(data / "prefect-results"),
        "OAPIP_STORAGE_URL": (data / "results").as_uri(),
        "PREFECT_RUNNER_SERVER_PORT": str(_free_port()),
    }
    assert housekeeping.env["OAPIP_STORAGE_URL"] == "file:///var/lib/oapip/data/results"
    process = prefect.pods.start(
        ["sh", str(ENTRYPOINT), *housekeeping.spec["args"]], env, "housekeeping"
    )
    api = prefect.client(1)

    def deployment() -> dict[str, Any] | None:
        assert process.poll() is None, (prefect.pods.tmp / "housekeeping.log").read_text()
        found = api.get("/deployments/name/oapip-housekeeping/housekeeping")
        return found.json() if found.status_code == 200 else None

    served = poll(deployment, timeout=120, interval=0.5, what="the housekeeping deployment")
    (schedule,) = served["schedules"]
    assert schedule["active"] and not served["paused"]
    assert schedule["schedule"]["interval"] == _VALUES["retention"]["intervalSeconds"]
    probe = housekeeping.spec["livenessProbe"]["exec"]["command"]
    assert housekeeping.spec["readinessProbe"]["exec"]["command"] == probe

    def healthy() -> bool:
        return subprocess.run(probe, env=env, capture_output=True, timeout=30).returncode == 0

    poll(healthy, timeout=60, interval=0.5, what="the housekeeping probe")
    os.killpg(process.pid, signal.SIGTERM)  # as the kubelet stops the pod
    assert process.wait(timeout=30) == 0  # a graceful stop
    assert api.get(f"/deployments/{served['id']}").json()["paused"] is True


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False
