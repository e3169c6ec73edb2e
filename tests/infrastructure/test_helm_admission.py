"""The chart's admission policies, evaluated: what a stolen token of the engine's account
can no longer do, and what the engine itself still does.

Each ValidatingAdmissionPolicy is applied as the API server applies it (resource rules,
then match conditions, then every validation) with its CEL expressions evaluated by
``cel-python``; the objects are the ones the engine really creates for a job
(``blocks.calrissian_manifests.job_manifests`` with the settings the chart gives it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import celpy
import pytest

from blocks.backend import CwlJob
from blocks.calrissian import CalrissianBackend
from blocks.calrissian_manifests import job_manifests
from tests.infrastructure.chart import containers, engine_settings, render
from tests.infrastructure.values import VALUE_SETS

ENGINE = "system:serviceaccount:eoepca:oapip-worker"
ADMIN = "kubernetes-admin"


@pytest.fixture(scope="module")
def policies() -> list[dict[str, Any]]:
    return [o for o in render(VALUE_SETS["defaults"]) if o["kind"] == "ValidatingAdmissionPolicy"]


@pytest.fixture(scope="module")
def job_objects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """The Namespace and RoleBindings the engine creates for one job, with the chart's
    settings."""
    objects = render(VALUE_SETS["defaults"])
    worker = next(c for c in containers(objects) if c.name == "Deployment/oapip-worker/worker")
    backend = CalrissianBackend.from_settings(engine_settings(worker.env))
    job = CwlJob(
        job_id="0b6c5e1a-3f2d-4c1e-9a6b-2f1d0c9e8a7b",
        process_id="water-bodies-detection-with-a-long-name",
        workflow={"class": "CommandLineTool", "id": "main"},
        entrypoint="#main",
        job_order={},
        workdir=Path(tmp_path_factory.mktemp("job")),
    )
    created = job_manifests(backend.job_spec(job), job.workflow, "#main", {})
    bindings = [o for o in created if o["kind"] == "RoleBinding"]
    return {"namespace": created[0], "engine": bindings[0], "calrissian": bindings[1]}


def _admits(
    policies: list[dict[str, Any]],
    *,
    user: str,
    operation: str,
    resource: str,
    obj: dict[str, Any] | None = None,
    old: dict[str, Any] | None = None,
    namespace: dict[str, Any] | None = None,
) -> bool:
    env = celpy.Environment()
    activation = {
        "request": celpy.json_to_cel(
            {
                "operation": operation,
                "userInfo": {"username": user},
                "resource": {"resource": resource},
            }
        ),
        "object": celpy.json_to_cel(obj),
        "oldObject": celpy.json_to_cel(old),
        "namespaceObject": celpy.json_to_cel(namespace),
    }

    def holds(expression: str) -> bool:
        return bool(env.program(env.compile(expression)).evaluate(activation))

    for policy in policies:
        spec = policy["spec"]
        rules = spec["matchConstraints"]["resourceRules"]
        if not any(resource in r["resources"] and operation in r["operations"] for r in rules):
            continue
        if not all(holds(c["expression"]) for c in spec.get("matchConditions", [])):
            continue
        if not all(holds(v["expression"]) for v in spec["validations"]):
            return False
    return True


def _namespace(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels or {}}}


def test_the_engine_creates_and_deletes_its_job_namespaces(policies, job_objects):
    namespace = job_objects["namespace"]
    assert _admits(policies, user=ENGINE, operation="CREATE", resource="namespaces", obj=namespace)
    assert _admits(policies, user=ENGINE, operation="DELETE", resource="namespaces", old=namespace)
    for binding in (job_objects["engine"], job_objects["calrissian"]):
        assert _admits(
            policies,
            user=ENGINE,
            operation="CREATE",
            resource="rolebindings",
            obj=binding,
            namespace=namespace,
        )


def test_a_stolen_engine_token_touches_no_other_namespace(policies, job_objects):
    system = _namespace("kube-system", {"kubernetes.io/metadata.name": "kube-system"})
    assert not _admits(policies, user=ENGINE, operation="DELETE", resource="namespaces", old=system)
    assert not _admits(
        policies, user=ENGINE, operation="UPDATE", resource="namespaces", obj=system, old=system
    )
    binding = job_objects["engine"]
    assert not _admits(
        policies,
        user=ENGINE,
        operation="CREATE",
        resource="rolebindings",
        obj=binding,
        namespace=system,
    )


@pytest.mark.parametrize(
    ("name", "labels"),
    [
        (
            "kube-system-2",
            {
                "app.kubernetes.io/managed-by": "oapip",
                "pod-security.kubernetes.io/enforce": "baseline",
            },
        ),
        ("oapip-x-1", {"pod-security.kubernetes.io/enforce": "baseline"}),
        (
            "oapip-x-1",
            {
                "app.kubernetes.io/managed-by": "oapip",
                "pod-security.kubernetes.io/enforce": "privileged",
            },
        ),
        ("oapip-x-1", {"app.kubernetes.io/managed-by": "oapip"}),
    ],
)
def test_the_engine_creates_no_other_namespace(policies, name: str, labels: dict[str, str]):
    namespace = _namespace(name, labels)
    assert not _admits(
        policies, user=ENGINE, operation="CREATE", resource="namespaces", obj=namespace
    )


def test_the_engine_binds_no_other_role_even_in_its_namespace(policies, job_objects):
    binding = {
        **job_objects["engine"],
        "roleRef": {**job_objects["engine"]["roleRef"], "name": "cluster-admin"},
    }
    namespace = job_objects["namespace"]
    assert not _admits(
        policies,
        user=ENGINE,
        operation="CREATE",
        resource="rolebindings",
        obj=binding,
        namespace=namespace,
    )


def test_the_policies_fence_the_engine_only(policies):
    system = _namespace("kube-system")
    assert _admits(policies, user=ADMIN, operation="DELETE", resource="namespaces", old=system)
