"""Every value the chart takes reaches the engine under the name the engine reads.

For each value set, each container of each workload (the flow-run Job of the kubernetes
worker included: the work pool's job template rendered as Prefect would) has its
environment resolved as the kubelet would, and the engine's own ``Settings`` object, and
Prefect's, are built from it: the values must come out. The names can no longer drift:
the chart's list of secret settings is checked against the engine's ``SecretStr`` fields.
"""

from __future__ import annotations

import operator
import re
from typing import Any

import pytest

from blocks.calrissian import CalrissianBackend
from core.naming import RESULT_STORAGE_BLOCK
from core.settings.table import secret_names
from tests.infrastructure.chart import (
    CHART,
    Container,
    containers,
    engine_settings,
    flow_run_job,
    prefect_settings,
    render,
    unknown_settings,
)
from tests.infrastructure.values import (
    EXISTING_SECRETS,
    VALUE_SETS,
    expected_settings,
    housekeeping_on,
    secret_values,
)

_ENGINE_ROLES = {"gateway", "setup", "worker", "prefect-job", "housekeeping"}
"""Containers running the engine's code (or Prefect's worker in its image)."""


def _engine_containers(values: dict[str, Any]) -> list[Container]:
    objects = render(values)
    found = containers(objects, EXISTING_SECRETS)
    if values.get("worker", {}).get("type") == "kubernetes":
        job = flow_run_job(objects, EXISTING_SECRETS)
        found += [
            c for c in containers([*objects, job], EXISTING_SECRETS) if c.workload == "Job/flow-run"
        ]
    return [c for c in found if c.spec["name"] in _ENGINE_ROLES]


def _runs_flows(container: Container, values: dict[str, Any]) -> bool:
    """Whether ``container`` runs flows: the fast worker, or each flow-run Job."""
    kubernetes = values.get("worker", {}).get("type") == "kubernetes"
    return container.name == (
        "Job/flow-run/prefect-job" if kubernetes else "Deployment/oapip-worker/worker"
    )


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_every_value_reaches_every_engine_container(values: dict[str, Any]):
    expected = expected_settings(values)
    engine = _engine_containers(values)
    names = {c.name for c in engine}
    assert {"Deployment/oapip-gateway/gateway", "Deployment/oapip-worker/setup"} <= names
    if values.get("worker", {}).get("type") == "kubernetes":
        assert "Job/flow-run/prefect-job" in names
    assert ("Deployment/oapip-housekeeping/housekeeping" in names) is housekeeping_on(values)
    for container in engine:
        settings = engine_settings(container.env)
        got = {path: operator.attrgetter(path)(settings) for path in expected}
        got = {k: str(v) if k in ("home", "prefect.results_dir") else v for k, v in got.items()}
        assert got == expected, container.name
        if values.get("NODE_SELECTOR_KEY"):
            backend = CalrissianBackend.from_settings(settings)
            assert backend.node_selector == {values["NODE_SELECTOR_KEY"]: "true"}


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_secrets_reach_only_what_runs_flows(values: dict[str, Any]):
    """The S3, Workspace and Toil credentials reach the process that runs flows (the fast
    worker, or each flow-run Job) and no other, but for housekeeping, which removes results
    and gets the keys of the stores (the shared bucket's and the Workspace API's token);
    the Prefect API credentials reach every Prefect client; the database URL only the
    Prefect server and, for the job outbox in that database, the gateway."""
    given = secret_values(values)
    fields = {
        "S3_ACCESS_KEY": "results.s3_access_key",
        "S3_SECRET_KEY": "results.s3_secret_key",
        "STAGEIN_S3_ACCESS_KEY": "stagein.access_key",
        "STAGEIN_S3_SECRET_KEY": "stagein.secret_key",
        "OAPIP_WORKSPACE_API_TOKEN": "workspace.api_token",
        "OAPIP_TOIL_WES_PASSWORD": "toil.wes_password",
    }
    assert sorted(fields) == secret_names()
    removal = {"S3_ACCESS_KEY", "S3_SECRET_KEY", "OAPIP_WORKSPACE_API_TOKEN"}
    for container in _engine_containers(values):
        settings = engine_settings(container.env)
        flows = _runs_flows(container, values)
        for name, path in fields.items():
            secret = operator.attrgetter(path)(settings)
            value = secret.get_secret_value() if secret is not None else None
            gets = flows or (container.spec["name"] == "housekeeping" and name in removal)
            assert value == (given.get(name) if gets else None), (container.name, name)
        auth = prefect_settings(container.env).api.auth_string
        assert auth is not None and auth.get_secret_value() == given["PREFECT_API_AUTH_STRING"]
        assert "DATABASE_URL" not in container.env
        others = {k: v for k, v in container.env.items() if k != "OAPIP_OUTBOX_DATABASE_URL"}
        assert not any("db-0006" in v or "s3cr3t" in v for v in others.values())
        has_outbox = "OAPIP_OUTBOX_DATABASE_URL" in container.env
        assert has_outbox is (container.spec["name"] == "gateway"), container.name


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_prefect_settings_arrive_where_prefect_runs(values: dict[str, Any]):
    objects = render(values)
    given = secret_values(values)
    everything = containers(objects, EXISTING_SECRETS)
    (server,) = [c for c in everything if c.spec["name"] == "prefect-server"]
    prefect = prefect_settings(server.env)
    assert prefect.server.api.auth_string.get_secret_value() == given["PREFECT_API_AUTH_STRING"]
    database = prefect.server.database.connection_url.get_secret_value()
    existing = values.get("secrets", {}).get("existingSecret")
    if existing:
        assert database == EXISTING_SECRETS[existing]["DATABASE_URL"]
    elif values["postgresql"].get("bundled", True):
        assert database == "postgresql+asyncpg://prefect:s3cr3t%2F%2B@oapip-postgresql:5432/prefect"
    else:
        assert database == values["postgresql"]["external"]["url"]
    for container in _engine_containers(values):
        prefect = prefect_settings(container.env)
        assert prefect.api.url == "http://oapip-prefect:4200/api"
        assert prefect.results.default_storage_block == RESULT_STORAGE_BLOCK
        assert str(prefect.home).startswith("/var/lib/oapip/")


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_results_go_to_s3_or_the_shared_volume_never_a_pod_layer(values: dict[str, Any]):
    """What runs flows writes the results documents (and files, without S3) on the shared
    volume; the gateway reads them there; housekeeping removes result files there."""
    engine = _engine_containers(values)
    writers = [c for c in engine if _runs_flows(c, values)]
    readers = [c for c in engine if c.spec["name"] == "gateway"]
    removers = [c for c in engine if c.spec["name"] == "housekeeping"]
    assert len(writers) == len(readers) == 1
    assert len(removers) == int(housekeeping_on(values))
    for container in writers + readers + removers:
        settings = engine_settings(container.env)
        places = [] if container in removers else [str(settings.prefect.results_dir)]
        if settings.results_url.startswith("file://"):
            places.append(settings.results_url.removeprefix("file://"))
        for place in places:
            volume = container.mount_of(place)
            assert volume is not None, (container.name, place)
            assert volume["persistentVolumeClaim"]["claimName"] == "oapip-data"
            assert volume["readOnly"] is (container in readers)


def test_the_charts_secret_settings_are_the_engines():
    """The chart's list of secret settings is the engine's: a new SecretStr field fails
    here until the chart passes it on (templates/_helpers.tpl, oapip.secretSettings)."""
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    match = re.search(r'define "oapip.secretSettings" -}}\n(.+)\n', helpers)
    assert match is not None
    assert sorted(match.group(1).split()) == secret_names()
    values = (CHART / "values.yaml").read_text()
    for name in secret_names():
        assert f'  {name}: ""' in values, name


@pytest.mark.parametrize("name", ["kubernetes-worker", "s3"])
def test_every_configmap_key_is_a_setting_someone_reads(name: str):
    """No ConfigMap key the engine ignores: each is a field's variable of the engine's
    settings, one of Prefect's, or an operator's name the engine aliases."""
    config = next(o for o in render(VALUE_SETS[name]) if o["kind"] == "ConfigMap")
    assert unknown_settings(config["data"]) == []


def test_readme_names_every_value():
    """The README's values table names each top-level value of values.yaml."""
    import yaml

    readme = (CHART.parents[2] / "README.md").read_text()
    section = readme.split("### Kubernetes (Helm)", 1)[1].split("\n## ", 1)[0]
    for key in yaml.safe_load((CHART / "values.yaml").read_text()):
        assert f"`{key}" in section, key
