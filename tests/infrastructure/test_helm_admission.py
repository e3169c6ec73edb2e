"""The chart's admission policies, evaluated: what a stolen token of the engine's account
can no longer do, and what the engine itself still does.

Each ValidatingAdmissionPolicy is applied as the API server applies it (resource rules,
then match conditions, then every validation) with its CEL expressions evaluated by
``cel-python``; the objects are the ones the engine really creates for a job
(``blocks.calrissian_manifests.job_manifests`` with the settings the chart gives it).
"""

from __future__ import annotations

from typing import Any

import celpy
import pytest

from tests.infrastructure.chart import job_objects, render
from tests.infrastructure.values import VALUE_SETS

ENGINE = "system:serviceaccount:eoepca:oapip-worker"
ADMIN = "kubernetes-admin"


@pytest.fixture(scope="module")
def policies() -> list[dict[str, Any]]:
    return [o for o in render(VALUE_SETS["defaults"]) if o["kind"] == "ValidatingAdmissionPolicy"]


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """The Namespace and RoleBindings the engine creates for one job, with the chart's
    settings."""
    created = job_objects(render(VALUE_SETS["defaults"]), tmp_path_factory.mktemp("job"))
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


def _binds(policies: list, binding: dict[str, Any], namespace: dict[str, Any]) -> bool:
    """Whether the engine may create ``binding`` in ``namespace``."""
    return _admits(
        policies,
        user=ENGINE,
        operation="CREATE",
        resource="rolebindings",
        obj=binding,
        namespace=namespace,
    )


def _namespace(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels or {}}}


def test_the_engine_creates_and_deletes_its_job_namespaces(policies, job):
    namespace = job["namespace"]
    assert _admits(policies, user=ENGINE, operation="CREATE", resource="namespaces", obj=namespace)
    assert _admits(policies, user=ENGINE, operation="DELETE", resource="namespaces", old=namespace)
    assert _binds(policies, job["engine"], namespace)
    assert _binds(policies, job["calrissian"], namespace)


def test_a_stolen_engine_token_touches_no_other_namespace(policies, job):
    system = _namespace("kube-system", {"kubernetes.io/metadata.name": "kube-system"})
    assert not _admits(policies, user=ENGINE, operation="DELETE", resource="namespaces", old=system)
    assert not _admits(
        policies, user=ENGINE, operation="UPDATE", resource="namespaces", obj=system, old=system
    )
    assert not _binds(policies, job["engine"], system)


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


def test_the_engine_binds_no_other_role_even_in_its_namespace(policies, job):
    binding = {
        **job["engine"],
        "roleRef": {**job["engine"]["roleRef"], "name": "cluster-admin"},
    }
    assert not _binds(policies, binding, job["namespace"])


def test_the_policies_fence_the_engine_only(policies):
    system = _namespace("kube-system")
    assert _admits(policies, user=ADMIN, operation="DELETE", resource="namespaces", old=system)
