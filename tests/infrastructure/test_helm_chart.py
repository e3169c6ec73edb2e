"""The Helm chart renders, with Helm's own template engine, to objects valid in strict mode,
publishes the Prefect API only behind credentials, and grants nothing outside the engine's
namespace and its job namespaces but what creating those namespaces needs.

``helm-python-sdk`` binds Helm v4's Go SDK (the same renderer as ``helm template``); no
cluster is involved. Each value set's objects (and the flow-run Job of the kubernetes
worker) are validated against the Kubernetes 1.32 schema in strict mode, and the chart
passes ``helm lint --strict``.
"""

from __future__ import annotations

import asyncio
import base64
import re
from typing import Any

import helm_python
import httpx
import pytest
from prefect.server.api.server import create_api_app
from prefect.settings import PREFECT_SERVER_API_AUTH_STRING, temporary_settings

from tests.infrastructure.chart import (
    CHART,
    NAMESPACE,
    containers,
    flow_run_job,
    job_objects,
    prefect_settings,
    render,
)
from tests.infrastructure.values import EXISTING_SECRETS, VALUE_SETS, secret_values
from tests.k8s_schema import assert_valid

_RBAC_KINDS = {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_every_rendered_object_validates_strictly(values: dict[str, Any]):
    objects = render(values)
    if values.get("worker", {}).get("type") == "kubernetes":
        objects.append(flow_run_job(objects, EXISTING_SECRETS))
    assert assert_valid(objects) >= 15
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "Service", "ConfigMap", "ServiceAccount", "NetworkPolicy"} <= kinds


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_chart_passes_helm_lint_strict(values: dict[str, Any]):
    result = helm_python.lint(CHART, values, strict=True, namespace=NAMESPACE)
    # Severity 1 is information ("icon is recommended"); 2 and up are warnings and errors.
    problems = [m for m in result["messages"] if m["severity"] > 1]
    assert not problems and not result["errors"], (problems, result["errors"])


def test_ingress_serves_the_gateway_at_the_zoo_host_with_cert_manager_tls():
    objects = render(VALUE_SETS["ingress-tls-prefect-ui"])
    ingresses = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Ingress"}
    gateway = ingresses["oapip"]
    assert gateway["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == (
        "letsencrypt-staging"
    )
    assert [r["host"] for r in gateway["spec"]["rules"]] == ["zoo.eoepca.example.org"]
    assert gateway["spec"]["tls"][0]["hosts"] == ["zoo.eoepca.example.org"]
    backends = {p["backend"]["service"]["name"] for p in _paths(gateway)}
    assert backends == {"oapip-gateway"}


def _paths(ingress: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]


def _prefect_routes(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (o["metadata"]["name"], path)
        for o in objects
        if o["kind"] == "Ingress"
        for path in _paths(o)
        if path["backend"]["service"]["name"] == "oapip-prefect"
    ]


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_the_prefect_api_is_published_only_when_asked(values: dict[str, Any]):
    routes = _prefect_routes(render(values))
    if values.get("prefect", {}).get("uiHost"):
        assert [(name, p["path"]) for name, p in routes] == [("oapip-prefect-ui", "/")]
    else:
        assert routes == []


@pytest.mark.parametrize("name", ["ingress-tls-prefect-ui", "existing-secret-toil"])
def test_no_route_reaches_the_prefect_api_without_credentials(name: str):
    """The one route to the Prefect server (`/` of prefect.uiHost, so /api too) reaches a
    server whose API answers 401 without the credentials: the server is built here with
    the auth string its rendered container resolves to, and asked."""
    values = VALUE_SETS[name]
    objects = render(values)
    assert _prefect_routes(objects)
    (server,) = [
        c for c in containers(objects, EXISTING_SECRETS) if c.spec["name"] == "prefect-server"
    ]
    auth = prefect_settings(server.env).server.api.auth_string.get_secret_value()
    assert auth == secret_values(values)["PREFECT_API_AUTH_STRING"] and ":" in auth
    with temporary_settings(updates={PREFECT_SERVER_API_AUTH_STRING: auth}):
        api = create_api_app(ignore_cache=True)
    assert _status(api, "/flows/filter") == 401
    assert _status(api, "/flows/filter", "admin:guess") == 401
    assert _status(api, "/flows/filter", auth) != 401
    assert _status(api, "/health", method="GET") == 200  # the probes' path, nothing more


def _status(app: Any, path: str, credentials: str | None = None, method: str = "POST") -> int:
    headers = {}
    if credentials is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()

    async def ask() -> int:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://prefect") as client:
            body = {} if method == "POST" else None
            return (await client.request(method, path, headers=headers, json=body)).status_code

    return asyncio.run(ask())


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_rbac_grants_nothing_outside_the_namespace_but_job_namespaces(values: dict[str, Any]):
    """Namespaced Roles only in the release namespace; at cluster scope only: create and
    delete namespaces, create RoleBindings, bind the two job ClusterRoles by name. The
    other two ClusterRoles are bound by no ClusterRoleBinding (the engine binds them inside
    each job namespace it creates)."""
    objects = [o for o in render(values) if o["kind"] in _RBAC_KINDS]
    for o in objects:
        assert o["metadata"].get("namespace", NAMESPACE) == NAMESPACE
        for rule in o.get("rules", []):
            assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], rule
            assert "secrets" not in rule["resources"], rule
    cluster_bindings = [o for o in objects if o["kind"] == "ClusterRoleBinding"]
    roles = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ClusterRole"}
    granted = {
        (resource, verb, tuple(rule.get("resourceNames", [])))
        for binding in cluster_bindings
        for rule in roles[binding["roleRef"]["name"]]["rules"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    if not values.get("calrissian", {}).get("enabled", True):
        assert not roles and not cluster_bindings
        return
    job_roles = ("oapip-eoepca-job-engine", "oapip-eoepca-job-calrissian")
    assert granted == {
        ("namespaces", "create", ()),
        ("namespaces", "delete", ()),
        ("rolebindings", "create", ()),
        ("clusterroles", "bind", job_roles),
    }
    assert set(roles) == {"oapip-eoepca-job-namespaces", *job_roles}
    (binding,) = cluster_bindings
    runs_flows = "flow-run" if values.get("worker", {}).get("type") == "kubernetes" else "worker"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": f"oapip-{runs_flows}", "namespace": NAMESPACE}
    ]
    calrissian = {
        (r, v)
        for rule in roles[job_roles[1]]["rules"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }
    assert calrissian == {
        (p, v) for p in ["pods"] for v in ["create", "get", "list", "watch", "delete"]
    } | {("pods/log", "get")}


def test_the_engine_can_run_a_job_with_what_the_chart_grants(tmp_path):
    """Each object the engine creates for a Calrissian job is covered: the namespace and
    the first RoleBinding by the cluster grant, the rest by the engine's job role that
    binding gives it, and the admission policy admits the namespace and the bindings."""
    objects = render(VALUE_SETS["node-selector"])
    created = job_objects(objects, tmp_path)
    roles = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ClusterRole"}

    def allowed(role: str, kind: str) -> bool:
        plural = {
            "NetworkPolicy": "networkpolicies",
            "PersistentVolumeClaim": "persistentvolumeclaims",
        }
        resource = plural.get(kind, kind.lower() + "s")
        return any(
            resource in rule["resources"] and "create" in rule["verbs"]
            for rule in roles[role]["rules"]
        )

    namespace, engine_binding, *rest = created
    assert allowed("oapip-eoepca-job-namespaces", namespace["kind"])
    assert allowed("oapip-eoepca-job-namespaces", engine_binding["kind"])
    assert engine_binding["roleRef"]["name"] == "oapip-eoepca-job-engine"
    assert engine_binding["subjects"][0] == {
        "kind": "ServiceAccount",
        "name": "oapip-worker",
        "namespace": NAMESPACE,
    }
    for o in rest:
        assert allowed("oapip-eoepca-job-engine", o["kind"]) or o["kind"] == "RoleBinding", o
    _admitted(objects, namespace, [o for o in created if o["kind"] == "RoleBinding"])


def _admitted(objects: list, namespace: dict, bindings: list) -> None:
    """The admission policy's conditions hold for what the engine creates (the policy's CEL
    checks name prefix and labels; the same facts are checked here against its text)."""
    policies = {
        o["metadata"]["name"]: o for o in objects if o["kind"] == "ValidatingAdmissionPolicy"
    }
    ns_policy = policies["oapip-eoepca-job-namespaces"]["spec"]
    expressions = " ".join(v["expression"] for v in ns_policy["validations"])
    (prefix,) = set(re.findall(r"startsWith\('([^']+)'\)", expressions))
    assert namespace["metadata"]["name"].startswith(prefix)
    labels = namespace["metadata"]["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "oapip"
    assert labels["pod-security.kubernetes.io/enforce"] in ("baseline", "restricted")
    user = ns_policy["matchConditions"][0]["expression"]
    assert user == "request.userInfo.username == 'system:serviceaccount:eoepca:oapip-worker'"
    rb_policy = policies["oapip-eoepca-job-rolebindings"]["spec"]
    allowed = re.findall(r"'(oapip-eoepca-job-[a-z]+)'", rb_policy["validations"][1]["expression"])
    assert {b["roleRef"]["name"] for b in bindings} <= set(allowed)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"postgresql": {"password": "x"}, "prefect": {"auth": {"password": "y"}}},
            "INGRESS_HOST is required",
        ),
        (
            {"INGRESS_HOST": "a.org", "prefect": {"auth": {"password": "y"}}},
            "postgresql.password is required",
        ),
        (
            {"INGRESS_HOST": "a.org", "postgresql": {"password": "x"}},
            "prefect.auth.password is required",
        ),
        (
            {
                "INGRESS_HOST": "a.org",
                "postgresql": {"password": "x"},
                "prefect": {"auth": {"password": "y"}},
                "calrissian": {"enabled": False},
            },
            "execution.engine=calrissian needs calrissian.enabled",
        ),
    ],
)
def test_missing_required_values_are_named(values: dict[str, Any], message: str):
    with pytest.raises(helm_python.HelmError, match=re.escape(message)):
        render(values)
