"""The chart deploys Prefect's production shape when asked (``prefect.replicas`` > 1): N API
pods with services off, one services pod, messaging and leases on Redis with the settings
``oapip up --prefect-replicas N`` gives (``stack/scaleout.redis_env``); and the job outbox
every gateway replica shares is Prefect's database, whose URL the gateway takes from the
Secret.

Rendered with Helm's own engine, environments resolved as the kubelet would
(tests/infrastructure/chart.py). Strict schema validation, Pod Security ``restricted`` and
the NetworkPolicies of the scaled-out value set are checked with every other value set
(test_helm_chart.py, test_helm_pods.py).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from typing import Any

import helm_python
import pytest
from prefect_redis.client import RedisMessagingSettings

from stack.scaleout import redis_env
from stack.tuning import LEAN_SERVER
from tests.infrastructure.chart import (
    Container,
    containers,
    engine_settings,
    prefect_settings,
    render,
)
from tests.infrastructure.values import EXISTING_SECRETS, VALUE_SETS

_SCALED = VALUE_SETS["prefect-scaled-out"]


def _deployments(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment"}


def _container(objects: list[dict[str, Any]], name: str) -> Container:
    (found,) = [c for c in containers(objects, EXISTING_SECRETS) if c.name == name]
    return found


def test_replicas_run_api_pods_without_services_and_one_services_pod():
    objects = render(_SCALED)
    deployments = _deployments(objects)
    api, services = deployments["oapip-prefect"], deployments["oapip-prefect-services"]
    assert api["spec"]["replicas"] == 3
    assert services["spec"]["replicas"] == 1
    assert services["spec"]["strategy"] == {"type": "Recreate"}  # never two at once
    server = _container(objects, "Deployment/oapip-prefect/prefect-server")
    assert server.spec["args"][:4] == ["prefect", "server", "start", "--no-services"]
    worker = _container(objects, "Deployment/oapip-prefect-services/prefect-services")
    assert worker.spec["args"] == ["prefect", "server", "services", "start"]
    migrate = _container(objects, "Deployment/oapip-prefect-services/migrate")
    assert migrate.init and migrate.spec["args"] == [
        "prefect",
        "server",
        "database",
        "upgrade",
        "-y",
    ]
    # The database is migrated once, by the services pod, not by N API pods at once.
    assert prefect_settings(server.env).server.database.migrate_on_start is False
    # The one Service reaches the API pods only.
    (service,) = [
        o for o in objects if o["kind"] == "Service" and o["metadata"]["name"] == "oapip-prefect"
    ]
    api_labels = api["spec"]["template"]["metadata"]["labels"]
    services_labels = services["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= api_labels.items()
    assert not service["spec"]["selector"].items() <= services_labels.items()


def test_api_and_services_pods_share_redis_with_the_settings_oapip_up_gives(
    monkeypatch: pytest.MonkeyPatch,
):
    """Every container of the Prefect server (API, services, migration) has the settings
    ``stack.scaleout.redis_env`` makes of the same Redis URL and database, and Prefect and
    prefect-redis read them back."""
    objects = render(_SCALED)
    server = _container(objects, "Deployment/oapip-prefect/prefect-server")
    database = server.env["PREFECT_API_DATABASE_CONNECTION_URL"]
    wanted = redis_env(
        engine_settings(
            {
                "OAPIP_DATABASE_URL": database,
                "OAPIP_REDIS_URL": _SCALED["redis"]["url"],
                "OAPIP_PREFECT_REPLICAS": "3",
            }
        )
    )
    assert wanted["PREFECT_REDIS_MESSAGING_PORT"] == "6380"  # the URL's, not the default
    prefect_containers = [c for c in containers(objects) if "prefect" in c.workload]
    assert len(prefect_containers) == 3
    for c in prefect_containers:
        assert {k: c.env.get(k) for k in wanted} == wanted, c.name
        assert c.env["PREFECT_API_DATABASE_CONNECTION_URL"] == database, c.name
        prefect = prefect_settings(c.env)
        assert prefect.server.events.messaging_broker == "prefect_redis.messaging"
        assert prefect.server.concurrency.lease_storage == "prefect_redis.lease_storage"
        with monkeypatch.context() as only:  # the container's environment, nothing else
            for name in list(os.environ):
                only.delenv(name)
            for name, value in c.env.items():
                only.setenv(name, value)
            redis = RedisMessagingSettings()
        assert (redis.host, redis.port, redis.db) == ("redis.example", 6380, 2), c.name


@pytest.mark.parametrize("name", sorted(set(VALUE_SETS) - {"prefect-scaled-out"}))
def test_one_replica_is_one_pod_with_every_service(name: str):
    objects = render(VALUE_SETS[name])
    assert "oapip-prefect-services" not in _deployments(objects)
    server = _container(objects, "Deployment/oapip-prefect/prefect-server")
    assert "--no-services" not in server.spec["args"]
    assert not any(k.startswith("PREFECT_REDIS") for k in server.env)
    assert prefect_settings(server.env).server.database.migrate_on_start is True


def _scaled(**redis: str) -> dict[str, Any]:
    return {**_SCALED, "redis": redis}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (_scaled(), "prefect.replicas > 1 needs redis.url"),
        (_scaled(url="redis://:pw@redis.example:6379/0"), "without credentials"),
        (_scaled(url="rediss://redis.example:6379/0"), "redis.url must be redis://"),
        (
            {
                **_SCALED,
                "postgresql": {"bundled": False, "external": {"url": "sqlite+aiosqlite:///p.db"}},
            },
            "needs the Prefect server on PostgreSQL",
        ),
    ],
    ids=["no-redis", "redis-password", "redis-tls", "not-postgresql"],
)
def test_scaled_out_values_the_shape_cannot_run_fail_the_render(
    values: dict[str, Any], message: str
):
    with pytest.raises(helm_python.HelmError, match=re.escape(message)):
        render(values)


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_the_gateway_shares_the_outbox_in_prefects_database(values: dict[str, Any]):
    """Every gateway replica reads the same outbox: the table in Prefect's database, its
    URL (with the password) from the Secret, never the ConfigMap; no other engine
    container gets it."""
    objects = render(values)
    gateway = _container(objects, "Deployment/oapip-gateway/gateway")
    (item,) = [e for e in gateway.spec["env"] if e["name"] == "OAPIP_OUTBOX_DATABASE_URL"]
    assert item["valueFrom"]["secretKeyRef"]["key"] == "DATABASE_URL"
    server = _container(objects, "Deployment/oapip-prefect/prefect-server")
    database = server.env["PREFECT_API_DATABASE_CONNECTION_URL"]
    assert database.startswith("postgresql")
    assert engine_settings(gateway.env).gateway.outbox_database_url == database
    config = next(o for o in objects if o["kind"] == "ConfigMap")
    assert "OAPIP_OUTBOX_DATABASE_URL" not in config["data"]
    for c in containers(objects, EXISTING_SECRETS):
        if c.spec["name"] in ("setup", "worker"):
            assert engine_settings(c.env).gateway.outbox_database_url is None, c.name


def test_the_services_pods_probe_passes_only_while_postgresql_and_redis_answer():
    """The probe's command, run as the kubelet would with the container's environment
    (the hosts pointed at loopback sockets here), succeeds while both take a connection
    and fails once one does not."""
    objects = render(_SCALED)
    services = _container(objects, "Deployment/oapip-prefect-services/prefect-services")
    command = services.spec["livenessProbe"]["exec"]["command"]
    assert command == services.spec["readinessProbe"]["exec"]["command"]
    with (
        socket.create_server(("127.0.0.1", 0)) as database,
        socket.create_server(("127.0.0.1", 0)) as redis,
    ):
        env = {
            **services.env,
            "PATH": os.environ["PATH"],
            "PREFECT_API_DATABASE_CONNECTION_URL": "postgresql+asyncpg://prefect:pw@127.0.0.1:"
            f"{database.getsockname()[1]}/prefect",
            "PREFECT_REDIS_MESSAGING_HOST": "127.0.0.1",
            "PREFECT_REDIS_MESSAGING_PORT": str(redis.getsockname()[1]),
        }
        python = [sys.executable, *command[1:]]
        assert subprocess.run(python, env=env, capture_output=True).returncode == 0
        redis.close()
        assert subprocess.run(python, env=env, capture_output=True).returncode != 0


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_every_prefect_server_container_is_the_lean_server_oapip_up_runs(name: str):
    """The chart's Prefect server (one pod, or API pods and the services pod) has the
    settings of ``stack.tuning.LEAN_SERVER``, as every stack ``oapip up`` starts."""
    prefect_containers = [
        c
        for c in containers(render(VALUE_SETS[name]), EXISTING_SECRETS)
        if "prefect" in c.workload and not c.init
    ]
    assert prefect_containers
    for c in prefect_containers:
        assert {k: c.env.get(k) for k in LEAN_SERVER} == LEAN_SERVER, c.name
