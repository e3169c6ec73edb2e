"""Every pod the chart makes (and the flow-run Job of the kubernetes worker) passes the Pod
Security ``restricted`` profile, has requests and limits on every container, probes on
every long-running one, a read-only root, and a Kubernetes token only where it is used;
the engine's namespace accepts connections only from where they are needed.

The rules are the Pod Security Standards' own (tests/pod_security.py). Calrissian's job
pods are checked in tests/blocks/test_calrissian_manifests.py, and the tool pods Calrissian
creates are admitted by the emulated API under the job namespace's enforced level
(tests/blocks/test_calrissian_emulated.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.infrastructure.chart import containers, flow_run_job, render
from tests.infrastructure.values import EXISTING_SECRETS, VALUE_SETS, housekeeping_on
from tests.pod_security import pod_spec_of, violations


def _objects(values: dict[str, Any]) -> list[dict[str, Any]]:
    objects = render(values)
    if values.get("worker", {}).get("type") == "kubernetes":
        objects.append(flow_run_job(objects, EXISTING_SECRETS))
    return objects


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_every_pod_passes_the_restricted_profile(values: dict[str, Any]):
    pods = [
        (o["kind"], o["metadata"].get("name"), pod_spec_of(o))
        for o in _objects(values)
        if pod_spec_of(o)
    ]
    assert len(pods) >= 3
    for kind, name, (metadata, pod) in pods:
        assert violations(pod, "restricted", metadata) == [], f"{kind}/{name}"
        user = pod["securityContext"]["runAsUser"]
        assert isinstance(user, int) and user > 0


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_every_container_is_bounded_probed_and_read_only(values: dict[str, Any]):
    for c in containers(_objects(values), EXISTING_SECRETS):
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= c.spec["resources"].get(bound, {}).keys(), c.name
        assert c.spec["securityContext"]["readOnlyRootFilesystem"] is True, c.name
        if not c.init and not c.workload.startswith("Job/"):
            assert "livenessProbe" in c.spec and "readinessProbe" in c.spec, c.name
        mounts = {m["mountPath"] for m in c.spec.get("volumeMounts", [])}
        if c.workload != "StatefulSet/oapip-postgresql":
            assert {"/tmp", "/var/lib/oapip"} <= mounts, c.name  # what Python and Prefect write


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_a_kubernetes_token_is_mounted_only_where_it_is_used(values: dict[str, Any]):
    """The internet-facing gateway, the Prefect server (and its services pod), PostgreSQL
    and housekeeping mount no token; the account that runs flows does when it creates
    Calrissian job namespaces, and Prefect's Kubernetes worker does (it starts Jobs)."""
    objects = _objects(values)
    accounts = {
        o["metadata"]["name"]: o.get("automountServiceAccountToken", True)
        for o in objects
        if o["kind"] == "ServiceAccount"
    }
    kubernetes = values.get("worker", {}).get("type") == "kubernetes"
    calrissian = values.get("calrissian", {}).get("enabled", True)
    expected = {
        "Deployment/oapip-gateway": False,
        "Deployment/oapip-prefect": False,
        "StatefulSet/oapip-postgresql": False,
        "Deployment/oapip-worker": kubernetes or calrissian,
    }
    if kubernetes:
        expected["Job/flow-run"] = calrissian
    if values.get("prefect", {}).get("replicas", 1) > 1:
        expected["Deployment/oapip-prefect-services"] = False
    if housekeeping_on(values):
        expected["Deployment/oapip-housekeeping"] = False
    if not values.get("postgresql", {}).get("bundled", True):
        del expected["StatefulSet/oapip-postgresql"]
    seen = {}
    for c in containers(objects, EXISTING_SECRETS):
        pod = c.pod
        seen[c.workload] = pod.get(
            "automountServiceAccountToken", accounts[pod["serviceAccountName"]]
        )
    assert {k: v for k, v in seen.items() if k in expected} == expected


def _policy(objects: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(
        o for o in objects if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == name
    )


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_the_engine_namespace_accepts_only_what_it_needs(values: dict[str, Any]):
    """Job namespaces (any other namespace) reach neither the Prefect server nor
    PostgreSQL; the gateway takes connections from the ingress controller only (unless the
    operator opens it); the workers and housekeeping take none."""
    objects = render(values)
    ingress_from = values.get("networkPolicy", {}).get(
        "ingressFrom",
        [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}],
    )
    gateway = _policy(objects, "oapip-gateway")["spec"]["ingress"]
    assert gateway[0].get("from", []) == ingress_from
    prefect = _policy(objects, "oapip-prefect")["spec"]["ingress"][0]["from"]
    same_namespace = [p for p in prefect if set(p) == {"podSelector"}]
    others = [p for p in prefect if set(p) != {"podSelector"}]
    assert len(same_namespace) == 2  # the engine's pods, the flow-run Jobs
    assert others == (ingress_from if values.get("prefect", {}).get("uiHost") else [])
    assert _selects(prefect[0]["podSelector"], _labels("housekeeping"))
    # PostgreSQL: the Prefect server's pods (API, services) and the gateway (its outbox).
    (postgresql,) = _policy(objects, "oapip-postgresql")["spec"]["ingress"][0]["from"]
    assert set(postgresql) == {"podSelector"}
    admitted = {
        component
        for component in (
            "prefect-server",
            "prefect-services",
            "gateway",
            "worker",
            "flow-run",
            "housekeeping",
        )
        if _selects(postgresql["podSelector"], _labels(component))
    }
    assert admitted == {"prefect-server", "prefect-services", "gateway"}
    assert not _selects(postgresql["podSelector"], _labels("prefect-server", "other-release"))
    workers = _policy(objects, "oapip-workers")["spec"]
    assert workers["policyTypes"] == ["Ingress"] and "ingress" not in workers
    assert _selects(workers["podSelector"], _labels("prefect-services"))
    assert _selects(workers["podSelector"], _labels("housekeeping"))
    # Every pod of the chart is selected by one policy: none is left open by default.
    for o in objects:
        if pod_spec_of(o):
            labels = pod_spec_of(o)[0]["labels"]
            assert any(_selects(p["spec"]["podSelector"], labels) for p in _policies(objects)), o
    if values.get("worker", {}).get("type") == "kubernetes":
        job_labels = pod_spec_of(flow_run_job(objects, EXISTING_SECRETS))[0]["labels"]
        assert _selects(_policy(objects, "oapip-workers")["spec"]["podSelector"], job_labels)
        assert _selects(prefect[1]["podSelector"], job_labels)


def _labels(component: str, release: str = "oapip") -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "oapip",
        "app.kubernetes.io/instance": release,
        "app.kubernetes.io/component": component,
    }


def _policies(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == "NetworkPolicy"]


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    return all(labels.get(e["key"]) in e["values"] for e in selector.get("matchExpressions", []))
