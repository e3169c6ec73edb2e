"""The Kubernetes work pool's base job template renders to a Job that validates strictly.

Rendered the way the prefect-kubernetes worker does it (``from_template_and_values`` then
``prepare_for_flow_run``), for several sets of job variables, and validated against the
Kubernetes 1.32 schema in strict mode. The stock default template is checked too: it
fails (docs/architecture.md §6), which is why the engine ships its own.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.client.schemas.objects import FlowRun
from prefect_kubernetes.worker import KubernetesWorker, KubernetesWorkerJobConfiguration

from core.settings.table import secret_names
from stack.setup import kubernetes_job_template
from tests.k8s_schema import assert_valid
from tests.pod_security import violations
from tests.support import settings_from

ROOT = Path(__file__).resolve().parents[2]
VALUE_SETS: dict[str, dict[str, Any]] = {
    "template-defaults": {},
    "prefect-yaml-pool": yaml.safe_load((ROOT / "prefect.yaml").read_text())["definitions"][
        "work_pools"
    ]["kubernetes"]["job_variables"],
    "another-registry": {
        "image": "registry.example.org/oapip-prefect:0.1.0",
        "namespace": "processing",
        "env": {"OAPIP_STORAGE_URL": "s3://eoepca", "OAPIP_EXECUTION_ENGINE": "calrissian"},
        "labels": {"team": "eo"},
    },
    "resources-and-no-ttl": {
        "cpu_request": "1",
        "cpu_limit": "2",
        "memory_request": "1Gi",
        "memory_limit": "8Gi",
        "finished_job_ttl": None,
        "backoff_limit": 2,
        "image_pull_policy": "Always",
    },
}


class _NoServer:
    """Stands in for the Prefect client: the templates refer to no blocks or variables,
    so rendering never calls it (any call would fail the test with AttributeError)."""


def _render(template: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    config = asyncio.run(
        KubernetesWorkerJobConfiguration.from_template_and_values(
            template, values, client=_NoServer()
        )
    )
    flow_run = FlowRun(id=uuid.uuid4(), name="gentle-otter", flow_id=uuid.uuid4())
    config.prepare_for_flow_run(flow_run)
    return config.job_manifest


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_rendered_job_validates_strictly(values: dict[str, Any]):
    manifest = _render(kubernetes_job_template(), values)
    assert_valid([manifest])
    pod = manifest["spec"]["template"]["spec"]
    assert manifest["spec"]["completions"] == 1 and "completions" not in pod
    assert pod["securityContext"]["runAsNonRoot"] is True
    env = {e["name"] for e in pod["containers"][0]["env"]}
    assert "PREFECT__FLOW_RUN_ID" in env
    assert pod["containers"][0]["args"] == ["prefect", "flow-run", "execute"]


def test_site_settings_shape_the_jobs():
    """With the engine's settings (``OAPIP_JOB_*``, as the Helm chart gives them to
    ``oapip setup --worker kubernetes``) each Job gets the image, namespace and account,
    the ConfigMap of settings, each secret setting by reference, and the data volume."""
    env = {
        "OAPIP_JOB_IMAGE": "registry.example.org/oapip:1",
        "OAPIP_JOB_NAMESPACE": "eoepca",
        "OAPIP_JOB_SERVICE_ACCOUNT": "oapip-flow-run",
        "OAPIP_JOB_CONFIG_MAP": "oapip-config",
        "OAPIP_JOB_SECRET": "oapip-secrets",
        "OAPIP_JOB_DATA_CLAIM": "oapip-data",
        "OAPIP_HOME": "/var/lib/oapip",
    }
    manifest = _render(kubernetes_job_template(settings_from(env)), {})
    assert_valid([manifest])
    pod = manifest["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert manifest["metadata"]["namespace"] == "eoepca"
    assert container["image"] == "registry.example.org/oapip:1"
    assert pod["serviceAccountName"] == "oapip-flow-run"
    assert container["envFrom"] == [{"configMapRef": {"name": "oapip-config"}}]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
    assert set(refs) >= {*secret_names(), "PREFECT_API_AUTH_STRING"}
    assert all(r["name"] == "oapip-secrets" and r["key"] == n for n, r in refs.items())
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == "oapip-data"
    assert {"name": "data", "mountPath": "/var/lib/oapip/data"} in container["volumeMounts"]
    assert violations(pod, "restricted", manifest["spec"]["template"]["metadata"]) == []


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_jobs_pass_the_restricted_profile_with_limits(values: dict[str, Any]):
    manifest = _render(kubernetes_job_template(), values)
    template = manifest["spec"]["template"]
    assert violations(template["spec"], "restricted", template["metadata"]) == []
    resources = template["spec"]["containers"][0]["resources"]
    assert {"cpu", "memory"} <= resources["limits"].keys() <= resources["requests"].keys()


def test_stock_default_template_fails_strict_validation():
    manifest = _render(KubernetesWorker.get_default_base_job_template(), {})
    with pytest.raises(AssertionError, match="completions"):
        assert_valid([manifest])
