"""Who may do what in a Calrissian job's namespace, and what its pods may reach.

What :func:`blocks.calrissian_manifests.job_manifests` adds to every job namespace, so that
a user's tool, which is code, reaches neither the engine nor the cluster:

    Namespace labels        Pod Security ``baseline`` enforced, ``restricted`` warned and
                            audited. Calrissian 0.18.1 builds its tool pods itself and gives
                            them only ``runAsUser``/``runAsGroup`` (its own user's): no
                            ``allowPrivilegeEscalation``, capabilities or seccomp profile,
                            so ``baseline`` is the level they can meet. The engine's own
                            pods there (Calrissian's, ``copy-inputs``, ``collect``) meet
                            ``restricted``.
    RoleBinding oapip-engine  the engine's ServiceAccount -> ``engine_role``: the engine's
                            rights in this namespace, created right after it (only when the
                            engine runs with that ClusterRole, as the Helm chart sets it up)
    NetworkPolicy job-isolation  no ingress to any pod; egress to DNS and to any address but
                            the blocked ones (cloud metadata by default). The engine's own
                            namespace refuses job pods on its side too (the chart's policies).
    ServiceAccount calrissian       Calrissian's pod: creates, watches and deletes tool pods
    ServiceAccount calrissian-tool  tool pods and ``collect``: no token mounted, no rights
    RoleBinding calrissian  ``calrissian`` -> ``pod_role`` (pods, pods/log in this namespace),
                            or a Role of its own with those rights when no ClusterRole is given

Every function is pure; nothing here talks to a cluster.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from typing import Any

__all__ = [
    "CALRISSIAN_ACCOUNT",
    "CONTAINER_SECURITY",
    "ENFORCED_LEVEL",
    "TOOL_ACCOUNT",
    "engine_binding",
    "namespace_labels",
    "network_policy",
    "pod_rights",
    "pod_security_context",
    "service_accounts",
]

Metadata = Callable[[str], dict[str, Any]]
"""Metadata (name, namespace, labels) of a job object, given its name."""

ENFORCED_LEVEL = "baseline"
"""Pod Security level enforced in job namespaces: what Calrissian's tool pods can meet."""
CALRISSIAN_ACCOUNT = "calrissian"
TOOL_ACCOUNT = "calrissian-tool"
_POD_ROLE_NAME = "calrissian-pod-manager"
_RBAC = "rbac.authorization.k8s.io"

CONTAINER_SECURITY: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}
"""Security context of every container the engine puts in a job namespace."""


def namespace_labels() -> dict[str, str]:
    """Pod Security admission labels of a job namespace (the cluster enforces them)."""
    return {
        "pod-security.kubernetes.io/enforce": ENFORCED_LEVEL,
        "pod-security.kubernetes.io/warn": "restricted",
        "pod-security.kubernetes.io/audit": "restricted",
    }


def pod_security_context(user: int) -> dict[str, Any]:
    """Pod security context of the engine's pods in a job namespace, as ``user`` (numeric).

    Calrissian runs its tool pods as the user it runs as, so this also makes them non-root.
    """
    return {
        "runAsNonRoot": True,
        "runAsUser": user,
        "runAsGroup": user,
        "fsGroup": user,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def engine_binding(meta: Metadata, role: str, account: str) -> dict[str, Any]:
    """Bind the engine's ServiceAccount ``account`` (``namespace:name``) to ClusterRole
    ``role`` in the job namespace: creating it needs only ``bind`` on that role."""
    namespace, _, name = account.partition(":")
    if not namespace or not name:
        raise ValueError(f"the engine's account must be <namespace>:<name>, not {account!r}")
    return {
        "apiVersion": f"{_RBAC}/v1",
        "kind": "RoleBinding",
        "metadata": meta("oapip-engine"),
        "roleRef": {"apiGroup": _RBAC, "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
    }


def network_policy(meta: Metadata, blocked_cidrs: Sequence[str]) -> dict[str, Any]:
    """No ingress to the job's pods; egress to DNS and everywhere but ``blocked_cidrs``."""
    blocked = [ipaddress.ip_network(c, strict=False) for c in blocked_cidrs]
    peers = []
    for everything in (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")):
        inside = [str(n) for n in blocked if n.version == everything.version]
        block: dict[str, Any] = {"cidr": str(everything)}
        if inside:
            block["except"] = inside
        peers.append({"ipBlock": block})
    dns = [{"protocol": protocol, "port": 53} for protocol in ("UDP", "TCP")]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta("job-isolation"),
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
            "egress": [{"ports": dns}, {"to": peers}],
        },
    }


def service_accounts(meta: Metadata, pull_secrets: Sequence[str]) -> list[dict[str, Any]]:
    """Calrissian's account (its pod mounts the token) and the tools' (no token)."""
    accounts = []
    for name, token in ((CALRISSIAN_ACCOUNT, True), (TOOL_ACCOUNT, False)):
        account: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": meta(name),
            "automountServiceAccountToken": token,
        }
        if pull_secrets:
            account["imagePullSecrets"] = [{"name": s} for s in pull_secrets]
        accounts.append(account)
    return accounts


def pod_rights(meta: Metadata, namespace: str, cluster_role: str | None) -> list[dict[str, Any]]:
    """Calrissian's rights on pods in its namespace: a binding to ``cluster_role``, or a
    Role of its own (which the engine can only create if it holds those rights itself)."""
    objects: list[dict[str, Any]] = []
    if cluster_role is None:
        objects.append(
            {
                "apiVersion": f"{_RBAC}/v1",
                "kind": "Role",
                "metadata": meta(_POD_ROLE_NAME),
                "rules": [
                    {
                        "apiGroups": [""],
                        "resources": ["pods"],
                        "verbs": ["create", "get", "list", "watch", "delete"],
                    },
                    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
                ],
            }
        )
    kind, role = ("ClusterRole", cluster_role) if cluster_role else ("Role", _POD_ROLE_NAME)
    objects.append(
        {
            "apiVersion": f"{_RBAC}/v1",
            "kind": "RoleBinding",
            "metadata": meta(_POD_ROLE_NAME),
            "roleRef": {"apiGroup": _RBAC, "kind": kind, "name": role},
            "subjects": [
                {"kind": "ServiceAccount", "name": CALRISSIAN_ACCOUNT, "namespace": namespace}
            ],
        }
    )
    return objects
