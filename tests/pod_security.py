"""The Kubernetes Pod Security Standards, ``baseline`` and ``restricted``, as a checker.

Written from the standards' own page (kubernetes.io/docs/concepts/security/
pod-security-standards, the version of Kubernetes 1.32): each control is one function
returning what it finds wrong with a pod spec, so a failure names the control and the
field. ``restricted`` is everything of ``baseline`` plus its own controls. Used on every
pod spec the chart and the engine make, and by the emulated Kubernetes API as admission
(tests/k8s_api.py), the way a namespace's ``pod-security.kubernetes.io/enforce`` label
makes the API server refuse a pod.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["LEVELS", "pod_spec_of", "violations"]

LEVELS = ("privileged", "baseline", "restricted")

_BASELINE_CAPABILITIES = {
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
}
_SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
_SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
_RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}

Pod = dict[str, Any]
Control = Callable[[Pod, dict[str, Any]], Iterator[str]]


def pod_spec_of(manifest: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(pod metadata, pod spec) of a Pod or of a workload's pod template; None otherwise."""
    kind = manifest.get("kind")
    if kind == "Pod":
        return manifest.get("metadata", {}), manifest["spec"]
    spec = manifest.get("spec", {})
    if kind == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    template = spec.get("template")
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"):
        return template.get("metadata", {}), template["spec"]
    return None


def _containers(pod: Pod) -> Iterator[tuple[str, dict[str, Any]]]:
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for container in pod.get(field) or []:
            yield f"{field}[{container.get('name')}]", container


def _security(container: dict[str, Any]) -> dict[str, Any]:
    return container.get("securityContext") or {}


def _windows(pod: Pod) -> bool:
    return (pod.get("os") or {}).get("name") == "windows"


# --- baseline ------------------------------------------------------------------------------


def _host_process(pod: Pod, _: dict[str, Any]) -> Iterator[str]:
    if ((pod.get("securityContext") or {}).get("windowsOptions") or {}).get("hostProcess"):
        yield "HostProcess: spec.securityContext.windowsOptions.hostProcess"
    for where, c in _containers(pod):
        if (_security(c).get("windowsOptions") or {}).get("hostProcess"):
            yield f"HostProcess: {where}.securityContext.windowsOptions.hostProcess"


def _host_namespaces(pod: Pod, _: dict[str, Any]) -> Iterator[str]:
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(field):
            yield f"Host Namespaces: spec.{field}"


def _privileged(pod: Pod, _: dict[str, Any]) -> Iterator[str]:
    for where, c in _containers(pod):
        if _security(c).get("privileged"):
            yield f"Privileged Containers: {where}.securityContext.privileged"


def _baseline_capabilities(pod: Pod, _: dict[str, Any]) -> Iterator[str]:
    for where, c in _containers(pod):
        added = set((_security(c).get("capabilities") or {}).get("add") or [])
        if added - _BASELINE_CAPABILITIES:
            yield f"Capabilities: {where} adds {sorted(added - _BASELINE_CAPABILITIES)}"


def _host_path(pod: Pod, _: dict[str, Any]) -> Iterator[str]:
    for volume in pod.get("volumes") or []:
        if "hostPath" in volume:
            yield f"HostPath Volumes: volume {volume.get('name')}"


def _host_ports(pod: Pod, _: dict[str, Any]) -> Iterator[str]:
    for where, c in _containers(pod):
        for port in c.get("ports") or []:
            if port.get("hostPort"):
                yield f"Host Ports: {where} hostPort {port['hostPort']}"


def _app_armor(pod: Pod, metadata: dict[str, Any]) -> Iterator[str]:
    contexts = [("spec.securityContext", pod.get("securityContext") or {})]
    contexts += [(f"{w}.securityContext", _security(c)) for w, c in _containers(pod)]
    for where, context in contexts:
        kind = (context.get("appArmorProfile") or {}).get("type")
        if kind not in (None, "RuntimeDefault", "Localhost"):
            yield f"AppArmor: {where}.appArmorProfile.type {kind}"
    for key, value in (metadata.get("annotations") or {}).items():
        if key.startswith("container.apparmor.security.beta.kubernetes.io/") and not (
            value == "runtime/default" or value.startswith("localhost/")
        ):
            yield f"AppArmor: annotation {key}={value}"


def _se_linux(pod: Pod, _: dict[str, Any]) -> Iterator[str]:
    contexts = [("spec.securityContext", pod.get("securityContext") or {})]
    contexts += [(f"{w}.securityContext", _security(c)) for w, c in _containers(pod)]
    for where, context in contexts:
        options = context.get("seLinuxOptions") or {}
        if options.get("type", "") not in _SELINUX_TYPES:
            yield f"SELinux: {where}.seLinuxOptions.type"
        if options.get("user") or options.get("role"):
            yield f"SELinux: {where}.seLinuxOptions user/role"


def _proc_mount(pod: Pod, _: dict[str, Any]) -> Iterator[str]:
    for where, c in _containers(pod):
        if _security(c).get("procMount") not in (None, "Default"):
            yield f"/proc Mount Type: {where}.securityContext.procMount"


def _baseline_seccomp(pod: Pod, _: dict[str, Any]) -> Iterator[str]:
    contexts = [("spec.securityContext", pod.get("securityContext") or {})]
    contexts += [(f"{w}.securityContext", _security(c)) for w, c in _containers(pod)]
    for where, context in contexts:
        if (context.get("seccompProfile") or {}).get("type") == "Unconfined":
            yield f"Seccomp: {where}.seccompProfile.type Unconfined"


def _sysctls(pod: Pod, _: dict[str, Any]) -> Iterator[str]:
    for sysctl in (pod.get("securityContext") or {}).get("sysctls") or []:
        if sysctl.get("name") not in _SAFE_SYSCTLS:
            yield f"Sysctls: {sysctl.get('name')}"


# --- restricted ----------------------------------------------------------------------------


def _volume_types(pod: Pod, _: dict[str, Any]) -> Iterator[str]:
    for volume in pod.get("volumes") or []:
        if not _RESTRICTED_VOLUMES & {k for k, v in volume.items() if v is not None}:
            yield f"Volume Types: volume {volume.get('name')}"


def _privilege_escalation(pod: Pod, _: dict[str, Any]) -> Iterator[str]:
    if _windows(pod):
        return
    for where, c in _containers(pod):
        if _security(c).get("allowPrivilegeEscalation") is not False:
            yield f"Privilege Escalation: {where}.securityContext.allowPrivilegeEscalation"


def _non_root(pod: Pod, _: dict[str, Any]) -> Iterator[str]:
    pod_level = (pod.get("securityContext") or {}).get("runAsNonRoot")
    if pod_level is False:
        yield "Running as Non-root: spec.securityContext.runAsNonRoot false"
    for where, c in _containers(pod):
        value = _security(c).get("runAsNonRoot")
        if value is False or (value is None and pod_level is not True):
            yield f"Running as Non-root: {where}.securityContext.runAsNonRoot"


def _non_root_user(pod: Pod, _: dict[str, Any]) -> Iterator[str]:
    if (pod.get("securityContext") or {}).get("runAsUser") == 0:
        yield "Running as Non-root user: spec.securityContext.runAsUser 0"
    for where, c in _containers(pod):
        if _security(c).get("runAsUser") == 0:
            yield f"Running as Non-root user: {where}.securityContext.runAsUser 0"


def _restricted_seccomp(pod: Pod, _: dict[str, Any]) -> Iterator[str]:
    if _windows(pod):
        return
    allowed = ("RuntimeDefault", "Localhost")
    pod_level = ((pod.get("securityContext") or {}).get("seccompProfile") or {}).get("type")
    if pod_level is not None and pod_level not in allowed:
        yield f"Seccomp: spec.securityContext.seccompProfile.type {pod_level}"
    for where, c in _containers(pod):
        kind = (_security(c).get("seccompProfile") or {}).get("type")
        if kind not in allowed and not (kind is None and pod_level in allowed):
            yield f"Seccomp: {where}.securityContext.seccompProfile.type {kind}"


def _restricted_capabilities(pod: Pod, _: dict[str, Any]) -> Iterator[str]:
    if _windows(pod):
        return
    for where, c in _containers(pod):
        capabilities = _security(c).get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            yield f"Capabilities: {where} does not drop ALL"
        if set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}:
            yield f"Capabilities: {where} adds more than NET_BIND_SERVICE"


_BASELINE: tuple[Control, ...] = (
    _host_process,
    _host_namespaces,
    _privileged,
    _baseline_capabilities,
    _host_path,
    _host_ports,
    _app_armor,
    _se_linux,
    _proc_mount,
    _baseline_seccomp,
    _sysctls,
)
_RESTRICTED: tuple[Control, ...] = (
    *_BASELINE,
    _volume_types,
    _privilege_escalation,
    _non_root,
    _non_root_user,
    _restricted_seccomp,
    _restricted_capabilities,
)


def violations(pod: Pod, level: str, metadata: dict[str, Any] | None = None) -> list[str]:
    """What in pod spec ``pod`` breaks Pod Security level ``level`` (empty: it passes)."""
    if level not in LEVELS:
        raise ValueError(f"no Pod Security level {level!r}; the levels are {LEVELS}")
    controls = {"privileged": (), "baseline": _BASELINE, "restricted": _RESTRICTED}[level]
    return [problem for control in controls for problem in control(pod, metadata or {})]
