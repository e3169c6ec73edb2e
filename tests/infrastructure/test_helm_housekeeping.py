"""The chart deploys the housekeeping flow when jobs expire (issue 19): one pod serving
``python -m flows.housekeeping``, replaced whole, with what removing results needs and
nothing more; the gateway reads the same retention policy; values that cannot work are
refused when the chart is rendered.

Rendered with Helm's own engine, environments resolved as the kubelet would
(tests/infrastructure/chart.py). Strict schema validation, Pod Security ``restricted``,
requests, limits and probes, tokens and NetworkPolicies of every value set, housekeeping's
included, are checked in test_helm_chart.py and test_helm_pods.py; its container runs as a
process against the chart's Prefect server in test_helm_prefect_processes.py.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import helm_python
import pytest

from tests.infrastructure.chart import (
    Container,
    containers,
    engine_settings,
    flow_run_job,
    prefect_settings,
    render,
    unknown_settings,
)
from tests.infrastructure.values import EXISTING_SECRETS, VALUE_SETS, housekeeping_on

_NAME = "oapip-housekeeping"
_CONTAINER = f"Deployment/{_NAME}/housekeeping"
_WITH = sorted(name for name, values in VALUE_SETS.items() if housekeeping_on(values))


@functools.cache
def _render(name: str) -> list[dict[str, Any]]:
    """The objects of value set ``name``, rendered once for this module (read only)."""
    return render(VALUE_SETS[name])


def _container(objects: list[dict[str, Any]], name: str) -> Container:
    (found,) = [c for c in containers(objects, EXISTING_SECRETS) if c.name == name]
    return found


def _runs_flows(values: dict[str, Any], objects: list[dict[str, Any]]) -> Container:
    """The container that runs flows: the fast worker, or the kubernetes worker's Job."""
    if values.get("worker", {}).get("type") != "kubernetes":
        return _container(objects, "Deployment/oapip-worker/worker")
    return _container(
        [*objects, flow_run_job(objects, EXISTING_SECRETS)], "Job/flow-run/prefect-job"
    )


def test_value_sets_cover_housekeeping_with_and_without_site_retention():
    assert {"defaults", "s3", "existing-secret-toil", "no-ingress-cwltool"} <= set(VALUE_SETS)
    # On without retention.days (processes' own jobRetentionDays), off when switched off.
    assert {"defaults", "s3", "no-ingress-cwltool"} <= set(_WITH)
    assert "existing-secret-toil" not in _WITH


@pytest.mark.parametrize("name", VALUE_SETS)
def test_housekeeping_is_one_pod_replaced_whole_or_absent(name: str):
    values, objects = VALUE_SETS[name], _render(name)
    named = [o for o in objects if o["metadata"]["name"] == _NAME]
    if not housekeeping_on(values):
        assert named == []
        config = next(o for o in objects if o["kind"] == "ConfigMap")["data"]
        assert not {k for k in config if "RETENTION" in k or "HOUSEKEEPING" in k}
        return
    assert sorted(o["kind"] for o in named) == ["Deployment", "ServiceAccount"]
    deployment = next(o for o in named if o["kind"] == "Deployment")
    # Never two: a stopping runner pauses the schedule the other one serves.
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == _NAME and pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    assert container["args"] == ["housekeeping"]  # infrastructure/docker/entrypoint.sh
    assert container["image"] == "oapip-prefect:0.1.0"


@pytest.mark.parametrize("name", _WITH)
def test_every_variable_of_housekeeping_is_a_setting(name: str):
    """Each variable the housekeeping container gets (the ConfigMap's and its own) is read
    by the engine or by Prefect; its probe asks Prefect's runner webserver, on loopback,
    at the port Prefect reads."""
    housekeeping = _container(_render(name), _CONTAINER)
    assert unknown_settings(housekeeping.env) == []
    runner = prefect_settings(housekeeping.env).runner.server
    assert runner.enable and runner.host == "127.0.0.1"
    for probe in ("livenessProbe", "readinessProbe"):
        command = housekeeping.spec[probe]["exec"]["command"]
        assert command[:2] == ["python", "-c"]
        assert (
            "http://127.0.0.1:%s/health' % os.environ['PREFECT_RUNNER_SERVER_PORT']" in (command[2])
        )
    assert int(housekeeping.env["PREFECT_RUNNER_SERVER_PORT"]) == runner.port


@pytest.mark.parametrize("name", _WITH)
def test_the_gateway_and_housekeeping_read_one_retention_policy(name: str):
    """What the gateway shows (``expires``, 410) and what housekeeping does come from the
    same values: both build the same retention settings, the values given."""
    values, objects = VALUE_SETS[name], _render(name)
    gateway = engine_settings(_container(objects, "Deployment/oapip-gateway/gateway").env)
    housekeeping = engine_settings(_container(objects, _CONTAINER).env)
    assert gateway.retention == housekeeping.retention
    given = values.get("retention", {})
    assert housekeeping.retention.retention_days == given.get("days")
    assert housekeeping.retention.purge_days == given.get("purgeDays")
    assert housekeeping.retention.housekeeping_interval_s == given.get("intervalSeconds", 3600)


@pytest.mark.parametrize("name", _WITH)
def test_housekeeping_holds_what_removing_results_needs(name: str):
    """The result stores' settings and keys as the flows that wrote the results have them
    (blocks/result_stores.py: the shared store's, and in workspace mode the Workspace
    API's); the data volume read-write, where result files are without S3."""
    values, objects = VALUE_SETS[name], _render(name)
    housekeeping = _container(objects, _CONTAINER)
    mine = engine_settings(housekeeping.env)
    flows = engine_settings(_runs_flows(values, objects).env)
    for group in ("results", "workspace", "transfer"):
        assert getattr(mine, group) == getattr(flows, group), group
    assert mine.results_url == flows.results_url
    data = housekeeping.mount_of("/var/lib/oapip/data/results")
    assert data is not None and data["readOnly"] is False
    assert data["persistentVolumeClaim"]["claimName"] == "oapip-data"


_BASE = {
    "INGRESS_HOST": "a.org",
    "postgresql": {"password": "x"},
    "prefect": {"auth": {"password": "y"}},
}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"retention": {"purgeDays": 30}, "housekeeping": {"enabled": False}},
            "retention.purgeDays needs the housekeeping Deployment",
        ),
        (
            {"retention": {"days": 7}, "housekeeping": {"enabled": False}},
            "retention.days needs the housekeeping Deployment",
        ),
        ({"retention": {"days": 0}}, "retention.days must be above 0"),
        ({"retention": {"days": 7, "purgeDays": -1}}, "retention.purgeDays must be 0 or more"),
        (
            {"retention": {"days": 7, "intervalSeconds": 0}},
            "retention.intervalSeconds must be 1 or more",
        ),
        (
            {"settings": {"OAPIP_JOB_RETENTION_DAYS": "7"}},
            "settings.OAPIP_JOB_RETENTION_DAYS: set retention.days",
        ),
        (
            {"housekeeping": {"enabled": True}, "settings": {"OAPIP_HOUSEKEEPING_INTERVAL_S": 60}},
            "settings.OAPIP_HOUSEKEEPING_INTERVAL_S: set retention.days",
        ),
    ],
)
def test_retention_that_cannot_work_is_refused(values: dict[str, Any], message: str):
    with pytest.raises(helm_python.HelmError, match=re.escape(message)):
        render({**_BASE, **values})
