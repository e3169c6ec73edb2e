"""The Helm chart renders, with Helm's own template engine, to objects valid in strict mode.

``helm-python-sdk`` binds Helm v4's Go SDK (the same renderer as ``helm template``); no
cluster is involved. Each value set's objects are validated against the Kubernetes 1.32
schema in strict mode, and the chart passes ``helm lint --strict``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml

from tests.k8s_schema import assert_valid

CHART = Path(__file__).resolve().parents[2] / "infrastructure" / "helm" / "oapip"

VALUE_SETS: dict[str, dict[str, Any]] = {
    "minimal": {"INGRESS_HOST": "eoepca.example.org", "postgresql": {"password": "s3cr3t/+"}},
    "external-db-s3-kubernetes-worker": {
        "INGRESS_HOST": "develop.eoepca.org",
        "S3_ENDPOINT": "https://minio.develop.eoepca.org",
        "S3_REGION": "eu-west-2",
        "STAGEIN_S3_ENDPOINT": "https://s3.eu-central-1.amazonaws.com",
        "USE_WORKSPACE_API": True,
        "NODE_SELECTOR_KEY": "node-role.kubernetes.io/processing",
        "NODE_SELECTOR_VALUE": "true",
        "OIDC_ISSUER": "https://iam.develop.eoepca.org/realms/eoepca",
        "OIDC_CLIENT_ID": "oapip",
        "imagePullSecrets": ["registry-credentials"],
        "secrets": {"existingSecret": "oapip-credentials"},
        "postgresql": {"bundled": False, "external": {"url": "postgresql+asyncpg://p@db/p"}},
        "worker": {"type": "kubernetes", "replicas": 2},
        "prefect": {"uiHost": "prefect.develop.eoepca.org"},
        "calrissian": {"storageClass": "longhorn", "keepNamespaceOnFailure": True},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [
            {"key": "dedicated", "operator": "Equal", "value": "eo", "effect": "NoSchedule"}
        ],
    },
    "no-ingress-cwltool": {
        "ingress": {"enabled": False},
        "execution": {"engine": "cwltool"},
        "postgresql": {"password": "x", "storageClass": "fast-ssd"},
        "secrets": {"S3_ACCESS_KEY": "a", "S3_SECRET_KEY": "b"},
    },
}


def _render(values: dict[str, Any]) -> list[dict[str, Any]]:
    with helm_python.Chart.load(CHART) as chart:
        rendered = chart.render(values=values, name="oapip", namespace="eoepca", is_install=True)
    objects = []
    for path, text in rendered.items():
        if path.endswith(".yaml"):
            objects += [doc for doc in yaml.safe_load_all(text) if doc]
    return objects


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_every_rendered_object_validates_strictly(values: dict[str, Any]):
    objects = _render(values)
    assert assert_valid(objects) >= 10
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "Service", "ClusterRole", "ClusterRoleBinding", "ConfigMap"} <= kinds


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_chart_passes_helm_lint_strict(values: dict[str, Any]):
    result = helm_python.lint(CHART, values, strict=True, namespace="eoepca")
    # Severity 1 is information ("icon is recommended"); 2 and up are warnings and errors.
    problems = [m for m in result["messages"] if m["severity"] > 1]
    assert not problems and not result["errors"], (problems, result["errors"])


def test_ingress_serves_zoo_host_with_cert_manager_tls():
    objects = _render(VALUE_SETS["external-db-s3-kubernetes-worker"])
    ingress = next(o for o in objects if o["kind"] == "Ingress")
    assert (
        ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt-prod"
    )
    hosts = [rule["host"] for rule in ingress["spec"]["rules"]]
    assert hosts == ["zoo.develop.eoepca.org", "prefect.develop.eoepca.org"]
    assert ingress["spec"]["tls"][0]["hosts"] == hosts


def test_design_settings_reach_the_engine():
    objects = _render(VALUE_SETS["external-db-s3-kubernetes-worker"])
    config = next(o for o in objects if o["kind"] == "ConfigMap")["data"]
    assert config["NODE_SELECTOR_KEY"] == "node-role.kubernetes.io/processing"
    assert config["OAPIP_STORAGE_URL"] == "s3://eoepca"
    assert config["USE_WORKSPACE_API"] == "true"
    assert config["OAPIP_EXECUTION_ENGINE"] == "calrissian"
    assert config["OAPIP_PUBLIC_URL"] == "https://zoo.develop.eoepca.org"
    # Flow-run Jobs of the kubernetes worker: this release's image, namespace and account.
    assert config["OAPIP_JOB_NAMESPACE"] == "eoepca"
    assert config["OAPIP_JOB_SERVICE_ACCOUNT"] == "oapip"
    assert config["OAPIP_WORK_POOL"] == "oapip-kubernetes"
    assert not any(o["kind"] == "Secret" for o in objects)  # existingSecret is used
    assert not any(o["kind"] == "StatefulSet" for o in objects)  # external PostgreSQL


def test_calrissian_rbac_covers_what_the_backend_creates():
    role = next(o for o in _render(VALUE_SETS["minimal"]) if o["kind"] == "ClusterRole")
    granted = {(r, v) for rule in role["rules"] for r in rule["resources"] for v in rule["verbs"]}
    for resource in (
        "namespaces",
        "serviceaccounts",
        "roles",
        "rolebindings",
        "configmaps",
        "persistentvolumeclaims",
        "jobs",
        "pods",
    ):
        assert (resource, "create") in granted and (resource, "delete") in granted
    assert ("pods/log", "get") in granted and ("pods", "watch") in granted


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"postgresql": {"password": "x"}}, "INGRESS_HOST is required"),
        ({"INGRESS_HOST": "a.org"}, "postgresql.password is required"),
    ],
)
def test_missing_required_values_are_named(values: dict[str, Any], message: str):
    with pytest.raises(helm_python.HelmError, match=message):
        _render(values)
