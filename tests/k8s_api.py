"""An emulated Kubernetes API server on loopback, for the Calrissian backend's tests.

No Kubernetes API server can be installed on these machines (docs/architecture.md §6), so this test
double speaks the real API's HTTP — JSON objects, Status errors, list and ``?watch=true``
streams sent chunked, ``pods/{name}/log`` with ``follow`` — over HTTPS for what the
backend and Calrissian use: namespaces, serviceaccounts, configmaps,
persistentvolumeclaims, pods, roles, rolebindings, networkpolicies and batch/v1 jobs. It
is a stand-in, and the tests that use it say so in their names (``*_emulated``).

Pod Security admission is enforced as the API server does it: a pod (Calrissian's tool
pods included) that breaks the level of its namespace's
``pod-security.kubernetes.io/enforce`` label is refused with 403 (tests/pod_security.py).

It also plays kubelet and Job controller: a Job gets one Pod; a Pod "runs":

* containers whose image is one of ``local_images`` (Calrissian's) as local processes in a
  private mount namespace where the pod's volumes, ConfigMaps and service-account token are
  bind-mounted at their paths, as a kubelet would (so ``calrissian`` runs from its own
  virtualenv with in-cluster configuration pointing here);
* every other container with podman (``podman run --pull=never``); an image podman does
  not hold leaves the pod waiting in ``ErrImagePull``/``ImagePullBackOff``, and a node
  selector the emulated node's labels do not satisfy leaves it unschedulable.

RBAC and NetworkPolicies are not enforced; volumes are folders under the double's root. A
local container's mount points (``/calrissian``, ``/etc/oapip``) are created, empty, on
the host once; what is mounted on them is only visible inside that container's mount
namespace.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import http.server
import ipaddress
import json
import os
import secrets
import shlex
import shutil
import signal
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from tests.pod_security import violations

__all__ = ["CALRISSIAN_IMAGE", "ApiError", "EmulatedKubernetes", "calrissian_bin"]

CALRISSIAN_IMAGE = "terradue/calrissian:0.18.1"
"""The image the tests name for Calrissian: its containers run from Calrissian's venv."""
_ROOT = Path(__file__).resolve().parents[1]

# (API prefix, plural) -> kind; cluster-scoped resources have no namespace segment.
_KINDS = {
    "namespaces": ("v1", "Namespace"),
    "serviceaccounts": ("v1", "ServiceAccount"),
    "configmaps": ("v1", "ConfigMap"),
    "persistentvolumeclaims": ("v1", "PersistentVolumeClaim"),
    "pods": ("v1", "Pod"),
    "roles": ("rbac.authorization.k8s.io/v1", "Role"),
    "rolebindings": ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    "jobs": ("batch/v1", "Job"),
    "networkpolicies": ("networking.k8s.io/v1", "NetworkPolicy"),
}
_SA_DIR = "/run/secrets/kubernetes.io/serviceaccount"


@pytest.fixture(scope="session")
def calrissian_bin() -> Path:
    """``bin`` of Calrissian's own virtualenv (``infrastructure/calrissian/install.sh``)."""
    venv = _ROOT / ".calrissian-venv"
    subprocess.run(
        [str(_ROOT / "infrastructure/calrissian/install.sh"), str(venv)], check=True, timeout=900
    )
    return venv / "bin"


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def status(self) -> dict[str, Any]:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }


@dataclass
class _RunningPod:
    """What runs for one pod: its process (local or ``podman run``) and its log file."""

    log: Path
    process: subprocess.Popen[bytes] | None = None
    container: str | None = None  # podman container name
    done: threading.Event = field(default_factory=threading.Event)


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that is its own CA, and its key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "emulated-kubernetes")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "ca.crt", folder / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class EmulatedKubernetes:
    """The emulated API server, its object store, and the runtime of its pods.

    Args:
        root: folder for certificates, volumes, ConfigMap files and pod logs.
        local_images: images whose containers run as local processes.
        local_path: folders put first on ``PATH`` of those processes (Calrissian's venv).
        podman_env: environment for ``podman`` (``PodmanService.environment()``); unset:
            every non-local pod fails to pull its image.
        node_labels: labels of the one emulated node (node selectors are matched against).
    """

    def __init__(
        self,
        root: Path,
        *,
        local_images: set[str],
        local_path: list[Path],
        podman_env: dict[str, str] | None = None,
        node_labels: dict[str, str] | None = None,
    ) -> None:
        self.root = root
        self.local_images = local_images
        self.local_path = local_path
        self.podman_env = podman_env
        self.node_labels = node_labels or {}
        self.token = secrets.token_hex(16)
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.events: list[tuple[int, str, str, str, dict[str, Any]]] = []
        self.requests: list[tuple[str, str]] = []
        self.refused_pods: list[tuple[str, list[str]]] = []
        self._version = 0
        self._changed = threading.Condition()
        self._running: dict[tuple[str, str], _RunningPod] = {}
        self._server: http.server.ThreadingHTTPServer | None = None
        self.ca_file, self._key_file = _self_signed(self._mkdir(root / "tls"))

    # --- server ------------------------------------------------------------------------

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> None:
        handler = type("Handler", (_Handler,), {"api": self})
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.ca_file, self._key_file)
        self._server = _TlsServer(("127.0.0.1", 0), handler)
        self._server.context = context
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        for key in list(self._running):
            self._stop_pod(*key)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def diagnostics(self) -> str:
        """Every pod's status and log tail, for a failing test's output."""
        lines = []
        for folder in sorted((self.root / "pods").glob("*/*")):
            log = (folder / "log").read_text(errors="replace") if (folder / "log").exists() else ""
            lines.append(f"--- pod {folder.parent.name}/{folder.name} log:\n{log[-3000:]}")
        for (plural, ns, name), obj in sorted(self.objects.items()):
            if plural == "pods":
                lines.append(f"--- pod {ns}/{name}: {json.dumps(obj['status'])[:1500]}")
        lines += [f"{method} {path}" for method, path in self.requests[-60:]]
        return "\n".join(lines)

    def kubeconfig(self, path: Path) -> Path:
        """Write a kubeconfig for this server (bearer token, its CA) to ``path``."""
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {
                            "name": "emulated",
                            "cluster": {
                                "server": self.url,
                                "certificate-authority": str(self.ca_file),
                            },
                        }
                    ],
                    "users": [{"name": "engine", "user": {"token": self.token}}],
                    "contexts": [
                        {"name": "emulated", "context": {"cluster": "emulated", "user": "engine"}}
                    ],
                    "current-context": "emulated",
                }
            )
        )
        return path

    # --- store -------------------------------------------------------------------------

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((plural, namespace, name))

    def list(self, plural: str, namespace: str | None = None) -> list[dict[str, Any]]:
        return [
            obj
            for (p, ns, _), obj in sorted(self.objects.items())
            if p == plural and (namespace is None or ns == namespace)
        ]

    def _record(self, kind: str, plural: str, ns: str, obj: dict[str, Any]) -> dict[str, Any]:
        with self._changed:
            self._version += 1
            obj["metadata"]["resourceVersion"] = str(self._version)
            self.events.append((self._version, kind, plural, ns, json.loads(json.dumps(obj))))
            self._changed.notify_all()
        return obj

    def create(self, plural: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        meta = body.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
        name = meta.get("name")
        if not name:
            raise ApiError(422, "Invalid", f"{plural}: metadata.name is required")
        if plural != "namespaces":
            ns_obj = self.get("namespaces", "", namespace)
            if ns_obj is None or ns_obj["status"]["phase"] == "Terminating":
                raise ApiError(404, "NotFound", f'namespaces "{namespace}" not found')
            meta["namespace"] = namespace
            if plural == "pods":
                self._admit(ns_obj, body)
        key = (plural, namespace if plural != "namespaces" else "", name)
        if key in self.objects:
            raise ApiError(409, "AlreadyExists", f'{plural} "{name}" already exists')
        api_version, kind = _KINDS[plural]
        body["apiVersion"], body["kind"] = api_version, kind
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=_now())
        body.setdefault("status", {})
        if plural == "namespaces":
            body["status"] = {"phase": "Active"}
        elif plural == "persistentvolumeclaims":
            self._mkdir(self._claim_dir(namespace, name))
            body["status"] = {"phase": "Bound", "accessModes": body["spec"]["accessModes"]}
        elif plural == "pods":
            body["status"] = {"phase": "Pending", "conditions": []}
        elif plural == "jobs":
            body["status"] = {"active": 1, "startTime": _now()}
        self.objects[key] = body
        self._record("ADDED", plural, key[1], body)
        if plural == "pods":
            threading.Thread(target=self._run_pod, args=(namespace, name), daemon=True).start()
        elif plural == "jobs":
            self._start_job(namespace, body)
        return body

    def _admit(self, namespace: dict[str, Any], pod: dict[str, Any]) -> None:
        """Pod Security admission: refuse a pod that breaks its namespace's enforced level."""
        labels = namespace["metadata"].get("labels") or {}
        level = labels.get("pod-security.kubernetes.io/enforce", "privileged")
        problems = violations(pod["spec"], level, pod["metadata"])
        if problems:
            self.refused_pods.append((pod["metadata"]["name"], problems))
            raise ApiError(
                403,
                "Forbidden",
                f'pods "{pod["metadata"]["name"]}" is forbidden: violates PodSecurity '
                f'"{level}:latest": {"; ".join(problems)}',
            )

    def update(
        self, plural: str, namespace: str, name: str, change: Callable[[dict], None]
    ) -> None:
        obj = self.get(plural, namespace, name)
        if obj is None:
            return
        change(obj)
        self._record("MODIFIED", plural, namespace, obj)

    def delete(self, plural: str, namespace: str, name: str) -> dict[str, Any]:
        key = (plural, namespace if plural != "namespaces" else "", name)
        obj = self.objects.get(key)
        if obj is None:
            raise ApiError(404, "NotFound", f'{plural} "{name}" not found')
        if plural == "namespaces":
            obj["status"]["phase"] = "Terminating"
            for other in [k for k in self.objects if k[1] == name and k[0] != "namespaces"]:
                with contextlib.suppress(ApiError):
                    self.delete(other[0], name, other[2])
        elif plural == "jobs":
            for pod in self.list("pods", namespace):
                if pod["metadata"].get("labels", {}).get("job-name") == name:
                    with contextlib.suppress(ApiError):
                        self.delete("pods", namespace, pod["metadata"]["name"])
        elif plural == "pods":
            self._stop_pod(namespace, name)
        del self.objects[key]
        self._record("DELETED", plural, key[1], obj)
        return obj

    def wait_for(self, predicate: Callable[[], bool], timeout_s: float) -> bool:
        """Wait until ``predicate()`` holds after some change, or ``timeout_s`` passes."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True

    def watch(
        self, plural: str, namespace: str | None, since: int | None, timeout_s: float
    ) -> Iterator[tuple[str, dict[str, Any]] | None]:
        """Events after ``since`` (unset: the current objects as ADDED, then new events).

        Yields ``None`` when nothing happened for a second (the caller checks its client).
        """
        deadline = time.monotonic() + timeout_s
        with self._changed:
            if since is None:
                current = [
                    ("ADDED", json.loads(json.dumps(o))) for o in self.list(plural, namespace)
                ]
                since = self._version
            else:
                current = []
        yield from current
        while time.monotonic() < deadline:
            with self._changed:
                fresh = [e for e in self.events if e[0] > since]
                if not fresh:
                    self._changed.wait(min(1.0, max(0.0, deadline - time.monotonic())))
                    fresh = [e for e in self.events if e[0] > since]
            if not fresh:
                yield None
                continue
            since = fresh[-1][0]
            for _, kind, p, ns, obj in fresh:
                if p == plural and (namespace is None or ns == namespace):
                    yield kind, obj

    # --- job controller ----------------------------------------------------------------

    def _start_job(self, namespace: str, job: dict[str, Any]) -> None:
        name = job["metadata"]["name"]
        template = json.loads(json.dumps(job["spec"]["template"]))
        labels = {
            **template.get("metadata", {}).get("labels", {}),
            "job-name": name,
            "batch.kubernetes.io/job-name": name,
            "controller-uid": job["metadata"]["uid"],
        }
        pod = {
            "metadata": {
                "generateName": f"{name}-",
                "labels": labels,
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": name,
                        "uid": job["metadata"]["uid"],
                        "controller": True,
                    }
                ],
            },
            "spec": template["spec"],
        }
        self.create("pods", namespace, pod)

    def _job_pod_ended(self, namespace: str, pod: dict[str, Any]) -> None:
        job_name = pod["metadata"].get("labels", {}).get("job-name")
        if not job_name:
            return
        succeeded = pod["status"]["phase"] == "Succeeded"

        def finish(job: dict[str, Any]) -> None:
            status = job["status"]
            status.pop("active", None)
            status["succeeded" if succeeded else "failed"] = 1
            status["completionTime" if succeeded else "failedTime"] = _now()
            condition = {"type": "Complete", "status": "True", "lastTransitionTime": _now()}
            if not succeeded:
                condition.update(
                    type="Failed",
                    reason="BackoffLimitExceeded",
                    message="Job has reached the specified backoff limit",
                )
            status["conditions"] = [condition]

        self.update("jobs", namespace, job_name, finish)

    # --- kubelet -----------------------------------------------------------------------

    @staticmethod
    def _mkdir(path: Path) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _claim_dir(self, namespace: str, claim: str) -> Path:
        return self.root / "volumes" / namespace / claim

    def _pod_dir(self, namespace: str, pod: str) -> Path:
        return self.root / "pods" / namespace / pod

    def log_path(self, namespace: str, pod: str) -> Path:
        return self._pod_dir(namespace, pod) / "log"

    def _set_status(self, namespace: str, name: str, **status: Any) -> None:
        self.update("pods", namespace, name, lambda pod: pod["status"].update(status))

    def _container_status(self, container: dict[str, Any], state: dict[str, Any]) -> dict:
        return {
            "name": container["name"],
            "image": container["image"],
            "imageID": "",
            "ready": "running" in state,
            "restartCount": 0,
            "started": "running" in state,
            "state": state,
        }

    def _run_pod(self, namespace: str, name: str) -> None:
        pod = self.get("pods", namespace, name)
        if pod is None:
            return
        spec = pod["spec"]
        selector = spec.get("nodeSelector") or {}
        if any(self.node_labels.get(k) != v for k, v in selector.items()):
            self._set_status(
                namespace,
                name,
                conditions=[
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "lastTransitionTime": _now(),
                        "message": "0/1 nodes are available: 1 node(s) didn't match Pod's node "
                        "affinity/selector.",
                    }
                ],
            )
            return
        containers = [*spec.get("initContainers", []), *spec["containers"]]
        missing = [c for c in containers if not self._image_present(c["image"])]
        if missing:
            container = missing[0]
            for reason in ("ErrImagePull", "ImagePullBackOff"):
                waiting = {
                    "waiting": {
                        "reason": reason,
                        "message": f'Back-off pulling image "{container["image"]}"',
                    }
                }
                self._set_status(
                    namespace,
                    name,
                    conditions=[{"type": "PodScheduled", "status": "True"}],
                    containerStatuses=[self._container_status(container, waiting)],
                )
                time.sleep(0.2)
            return
        folder = self._mkdir(self._pod_dir(namespace, name))
        running = _RunningPod(log=folder / "log")
        running.log.touch()
        self._running[(namespace, name)] = running
        self._set_status(
            namespace,
            name,
            conditions=[{"type": "PodScheduled", "status": "True"}],
            podIP="127.0.0.1",
            startTime=_now(),
        )
        exit_code, started = 0, _now()
        try:
            for container in spec.get("initContainers", []):
                exit_code = self._run_container(namespace, pod, container, running)
                if exit_code != 0:
                    break
            if exit_code == 0:
                main = spec["containers"][0]
                started = _now()
                self._set_status(
                    namespace,
                    name,
                    phase="Running",
                    containerStatuses=[
                        self._container_status(main, {"running": {"startedAt": started}})
                    ],
                )
                exit_code = self._run_container(namespace, pod, main, running)
        finally:
            running.done.set()
        if self.get("pods", namespace, name) is None:
            return  # deleted while it ran
        main = spec["containers"][0]
        terminated = {
            "terminated": {
                "exitCode": exit_code,
                "reason": "Completed" if exit_code == 0 else "Error",
                "startedAt": started,
                "finishedAt": _now(),
            }
        }
        self._set_status(
            namespace,
            name,
            phase="Succeeded" if exit_code == 0 else "Failed",
            containerStatuses=[self._container_status(main, terminated)],
        )
        self._job_pod_ended(namespace, self.get("pods", namespace, name) or pod)

    def _image_present(self, image: str) -> bool:
        if image in self.local_images:
            return True
        if self.podman_env is None:
            return False
        done = subprocess.run(
            ["podman", "image", "exists", image], env={**os.environ, **self.podman_env}, check=False
        )
        return done.returncode == 0

    def _mounts(
        self, namespace: str, pod: dict[str, Any], container: dict[str, Any]
    ) -> list[tuple[Path, str, bool]]:
        """(host folder, mount path, read-only) of each of the container's volume mounts."""
        name = pod["metadata"]["name"]
        volumes = {v["name"]: v for v in pod["spec"].get("volumes", [])}
        mounts = []
        for mount in container.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            if "persistentVolumeClaim" in volume:
                source = self._claim_dir(namespace, volume["persistentVolumeClaim"]["claimName"])
            elif "configMap" in volume:
                source = self._config_map_dir(namespace, name, volume)
            elif "emptyDir" in volume:
                source = self._mkdir(self._pod_dir(namespace, name) / "empty" / volume["name"])
            else:
                raise ApiError(422, "Invalid", f"volume type of {volume['name']} not emulated")
            if mount.get("subPath"):
                source = self._mkdir(source / mount["subPath"])
            mounts.append((source, mount["mountPath"], bool(mount.get("readOnly"))))
        return mounts

    def _config_map_dir(self, namespace: str, pod: str, volume: dict[str, Any]) -> Path:
        folder = self._mkdir(self._pod_dir(namespace, pod) / "configmaps" / volume["name"])
        config_map = self.get("configmaps", namespace, volume["configMap"]["name"]) or {}
        for key, value in (config_map.get("data") or {}).items():
            (folder / key).write_text(value)
        for key, value in (config_map.get("binaryData") or {}).items():
            (folder / key).write_bytes(base64.b64decode(value))
        return folder

    def _env(self, pod: dict[str, Any], container: dict[str, Any]) -> dict[str, str]:
        env = {}
        for item in container.get("env", []):
            if "value" in item:
                env[item["name"]] = item["value"]
            elif "fieldRef" in item.get("valueFrom", {}):
                path = item["valueFrom"]["fieldRef"]["fieldPath"]
                env[item["name"]] = pod["metadata"][path.split(".", 1)[1]]
        return env

    def _run_container(
        self, namespace: str, pod: dict[str, Any], container: dict[str, Any], running: _RunningPod
    ) -> int:
        argv = [*container.get("command", []), *container.get("args", [])]
        mounts = self._mounts(namespace, pod, container)
        env = self._env(pod, container)
        with running.log.open("ab") as log:
            if container["image"] in self.local_images:
                process = self._start_local(namespace, pod, container, argv, mounts, env, log)
            else:
                process = self._start_podman(
                    namespace, pod, container, argv, mounts, env, log, running
                )
            running.process = process
            return process.wait()

    def _start_local(
        self,
        namespace: str,
        pod: dict[str, Any],
        container: dict[str, Any],
        argv: list[str],
        mounts: list[tuple[Path, str, bool]],
        env: dict[str, str],
        log: Any,
    ) -> subprocess.Popen[bytes]:
        """The container as a local process, its volumes bind-mounted in a mount namespace."""
        account = self._mkdir(self._pod_dir(namespace, pod["metadata"]["name"]) / "serviceaccount")
        (account / "token").write_text(self.token)
        (account / "namespace").write_text(namespace)
        shutil.copy(self.ca_file, account / "ca.crt")
        steps = [
            "mount -t tmpfs tmpfs /run",
            f"mkdir -p {_SA_DIR}",
            f"mount --bind {shlex.quote(str(account))} {_SA_DIR}",
        ]
        for source, target, read_only in mounts:
            # Mount points at the container's paths; created empty on the host, once.
            Path(target).mkdir(parents=True, exist_ok=True)
            steps.append(f"mount --bind {shlex.quote(str(source))} {shlex.quote(target)}")
            if read_only:
                steps.append(f"mount -o remount,bind,ro {shlex.quote(target)}")
        workdir = container.get("workingDir", "/")
        steps.append(f"mkdir -p {shlex.quote(workdir)} && cd {shlex.quote(workdir)}")
        steps.append("exec " + " ".join(shlex.quote(a) for a in argv))
        path = ":".join([*(str(p) for p in self.local_path), os.environ.get("PATH", "")])
        return subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", " && ".join(steps)],
            env={
                "PATH": path,
                "HOME": env.get("HOME", "/root"),
                "KUBERNETES_SERVICE_HOST": "127.0.0.1",
                "KUBERNETES_SERVICE_PORT": str(self.port),
                **env,
            },
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def _start_podman(
        self,
        namespace: str,
        pod: dict[str, Any],
        container: dict[str, Any],
        argv: list[str],
        mounts: list[tuple[Path, str, bool]],
        env: dict[str, str],
        log: Any,
        running: _RunningPod,
    ) -> subprocess.Popen[bytes]:
        assert self.podman_env is not None
        name = f"k8s-{namespace}-{pod['metadata']['name']}-{container['name']}"[:120]
        running.container = name
        command = ["podman", "run", "--rm", "--pull=never", "--name", name, "--network", "host"]
        for source, target, read_only in mounts:
            command += ["-v", f"{source}:{target}{':ro' if read_only else ''}"]
        for key, value in env.items():
            command += ["-e", f"{key}={value}"]
        if container.get("workingDir"):
            command += ["-w", container["workingDir"]]
        if container.get("command"):
            command += ["--entrypoint", container["command"][0]]
            argv = argv[1:]
        command += [container["image"], *argv]
        return subprocess.Popen(
            command,
            env={**os.environ, **self.podman_env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def _stop_pod(self, namespace: str, name: str) -> None:
        running = self._running.pop((namespace, name), None)
        if running is None:
            return
        if running.container and self.podman_env is not None:
            self._remove_container(running.container)
        if running.process is not None and running.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(running.process.pid, signal.SIGTERM)
            try:
                running.process.wait(5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(running.process.pid, signal.SIGKILL)
                running.process.wait()
        if running.container and self.podman_env is not None:
            # A `podman rm` that ran while `podman run` was still creating the container
            # missed it: remove it again now that the client is gone, until it is.
            self._remove_container(running.container)
        running.done.set()

    def _remove_container(self, name: str, timeout_s: float = 60.0) -> None:
        env = {**os.environ, **self.podman_env}
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            subprocess.run(
                ["podman", "rm", "-f", "-t", "2", name],
                env=env,
                capture_output=True,
                check=False,
                timeout=60,
            )
            left = subprocess.run(
                ["podman", "ps", "-a", "--filter", f"name=^{name}$", "--format", "{{.Names}}"],
                env=env,
                capture_output=True,
                text=True,
                check=False,
                timeout=60,
            )
            if left.returncode == 0 and not left.stdout.strip():
                return
            time.sleep(0.5)


class _TlsServer(http.server.ThreadingHTTPServer):
    """HTTPS with the TLS handshake in each connection's thread, not in the accept loop."""

    daemon_threads = True
    context: ssl.SSLContext

    def finish_request(self, request: Any, client_address: Any) -> None:
        try:
            request = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        super().finish_request(request, client_address)


def _matches(obj: dict[str, Any], query: dict[str, list[str]]) -> bool:
    for clause in (query.get("fieldSelector", [""])[0]).split(","):
        if clause:
            key, _, value = clause.partition("=")
            if key == "metadata.name" and obj["metadata"]["name"] != value.lstrip("="):
                return False
    labels = obj["metadata"].get("labels") or {}
    for clause in (query.get("labelSelector", [""])[0]).split(","):
        if clause:
            key, _, value = clause.partition("=")
            if labels.get(key) != value.lstrip("="):
                return False
    return True


class _Handler(http.server.BaseHTTPRequestHandler):
    """Routes: /api/v1/..., /apis/<group>/<version>/... (namespaced and cluster-scoped)."""

    api: EmulatedKubernetes
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    # --- plumbing ----------------------------------------------------------------------

    def _send(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _start_chunked(self, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _end_chunked(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
        self.close_connection = True

    def _route(self) -> tuple[str, str | None, str | None, str | None, dict[str, list[str]]]:
        """(plural, namespace, name, subresource, query) of the request path."""
        url = urlparse(self.path)
        parts = [p for p in url.path.split("/") if p]
        parts = parts[2:] if parts[0] == "api" else parts[3:]  # drop api/v1 or apis/g/v
        namespace = None
        if parts[:1] == ["namespaces"] and len(parts) >= 3:
            namespace, parts = parts[1], parts[2:]
        elif parts[:1] == ["namespaces"]:
            return (
                "namespaces",
                None,
                parts[1] if len(parts) > 1 else None,
                None,
                parse_qs(url.query),
            )
        plural = parts[0]
        name = parts[1] if len(parts) > 1 else None
        sub = parts[2] if len(parts) > 2 else None
        return plural, namespace, name, sub, parse_qs(url.query)

    def _authorised(self) -> bool:
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() == "bearer" and token == self.api.token:  # the scheme is case-blind
            return True
        self._send(401, ApiError(401, "Unauthorized", "Unauthorized").status())
        return False

    def _handle(self, method: str) -> None:
        self.api.requests.append((method, self.path))
        if not self._authorised():
            return
        try:
            plural, namespace, name, sub, query = self._route()
            if plural not in _KINDS:
                raise ApiError(404, "NotFound", f"the server could not find {plural}")
            ns = namespace or ""
            if method == "POST":
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                self._send(201, self.api.create(plural, ns, body))
            elif method == "DELETE":
                length = int(self.headers.get("Content-Length", 0))
                self.rfile.read(length)
                self._send(200, self.api.delete(plural, ns, name or ""))
            elif name is None and query.get("watch", ["false"])[0].lower() in ("true", "1"):
                self._watch(plural, namespace, query)
            elif name is None:
                _, kind = _KINDS[plural]
                items = [o for o in self.api.list(plural, namespace) if _matches(o, query)]
                self._send(
                    200,
                    {
                        "kind": f"{kind}List",
                        "apiVersion": _KINDS[plural][0],
                        "metadata": {"resourceVersion": str(self.api._version)},
                        "items": items,
                    },
                )
            elif sub == "log":
                self._log(ns, name, query)
            else:
                obj = self.api.get(plural, ns if plural != "namespaces" else "", name)
                if obj is None:
                    raise ApiError(404, "NotFound", f'{plural} "{name}" not found')
                self._send(200, obj)
        except ApiError as exc:
            self._send(exc.code, exc.status())

    def do_GET(self) -> None:  # noqa: N802
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._handle("DELETE")

    # --- streams -----------------------------------------------------------------------

    def _watch(self, plural: str, namespace: str | None, query: dict[str, list[str]]) -> None:
        since = query.get("resourceVersion", [None])[0]
        timeout = float(query.get("timeoutSeconds", ["1800"])[0])
        self._start_chunked("application/json")
        try:
            for event in self.api.watch(plural, namespace, int(since) if since else None, timeout):
                if event is None:
                    continue
                kind, obj = event
                if _matches(obj, query):
                    self._chunk(json.dumps({"type": kind, "object": obj}).encode() + b"\n")
            self._end_chunked()
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.close_connection = True

    def _log(self, namespace: str, name: str, query: dict[str, list[str]]) -> None:
        if self.api.get("pods", namespace, name) is None:
            raise ApiError(404, "NotFound", f'pods "{name}" not found')
        path = self.api.log_path(namespace, name)
        running = self.api._running.get((namespace, name))
        if query.get("follow", ["false"])[0].lower() not in ("true", "1"):
            data = path.read_bytes() if path.exists() else b""
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self._start_chunked("text/plain")
        try:
            offset = 0
            while True:
                finished = running is None or running.done.is_set()
                data = path.read_bytes()[offset:] if path.exists() else b""
                if data:
                    self._chunk(data)
                    offset += len(data)
                elif finished:
                    break
                else:
                    time.sleep(0.1)
            self._end_chunked()
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.close_connection = True
