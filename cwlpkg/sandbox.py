"""Confine the tools of a package: ``OAPIP_SANDBOX`` (``off`` | ``containers``).

cwltool builds each CommandLineTool's job from the tool object; :func:`make_tool` gives
it tools whose job runners apply a :class:`SandboxPolicy` that the runner puts on the
runtime context:

* ``containers`` — every tool runs in a container (a tool without DockerRequirement in
  ``OAPIP_DEFAULT_IMAGE``; a package that needs one and has none is refused at deploy,
  :func:`tools_without_image`), as the sandbox user, with no capabilities, no new
  privileges, a read-only root, inputs read-only (cwltool's own mounts), a pids limit, a
  file-size limit, memory and CPU from its ResourceRequirement within the site's maxima,
  and network ``none`` unless it declares NetworkAccess (then ``OAPIP_SANDBOX_NETWORK``,
  a bridge from which nothing bound to the host's loopback can be reached). The
  engine's socket is never mounted: cwltool mounts inputs, outputs and tmp only.
* ``off`` — tools run on the host as the sandbox user, without capabilities or new
  privileges, under CPU-time, process, file-size and address-space limits
  (``prlimit`` + ``setpriv``), with cwltool's scrubbed environment (HOME, TMPDIR, PATH
  and what the tool itself sets): they cannot read ``/proc/<pid>/environ`` of the
  engine's processes (other user, full capabilities), nor the engine's files, whose
  folders :func:`lock_home` keeps to the engine's user.

Only a root engine can change users; an engine that runs as another user already runs
its tools as that user, and ``off`` then only adds the limits.
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "SandboxPolicy",
    "container_flags",
    "host_prefix",
    "lock_home",
    "make_tool",
    "open_job_dir",
    "tools_without_image",
]

MIB = 1024 * 1024
_OPEN_FILES = 8192  # podman's default_ulimits here (infrastructure.containers.podman)
# Prefixes of variables a tool never gets, whatever its package asks to preserve.
_ENGINE_VARIABLES = ("PREFECT_", "OAPIP_", "AWS_", "S3_", "STAGEIN_", "DOCKER_", "CONTAINERS_")


@dataclass(frozen=True)
class SandboxPolicy:
    """What confines one run's tools (from ``OAPIP_SANDBOX*`` and the site maxima).

    Attributes:
        mode: ``off`` (host, unprivileged user, rlimits) or ``containers``.
        uid: user and group tools run as.
        default_image: image of tools without DockerRequirement (``containers``).
        network: ``--net`` of containers whose tool declares NetworkAccess.
        max_pids: processes one tool may run at once.
        max_ram_mib: memory of one tool at most, MiB (``off``: its address space).
        max_cores: CPUs of one container at most.
        max_cpu_s: CPU time of one host tool, seconds (``off``).
        max_file_mib: largest file a tool may write, MiB.
    """

    mode: Literal["off", "containers"] = "off"
    uid: int = 65534
    default_image: str | None = None
    network: str = "bridge"
    max_pids: int = 256
    max_ram_mib: int = 1024
    max_cores: float = 2
    max_cpu_s: int = 3600
    max_file_mib: int = 4096

    @property
    def changes_user(self) -> bool:
        """True when the engine may switch users (it runs as root)."""
        return os.geteuid() == 0


def container_flags(
    runtime: list[str], policy: SandboxPolicy, *, ram_mib: float | None, cores: float | None
) -> list[str]:
    """cwltool's ``docker run`` arguments with the sandbox's put in.

    ``ram_mib`` and ``cores`` are what the tool's ResourceRequirement asks for (``None``:
    nothing), clamped to the site maxima; the user cwltool chose and any ``--net`` of its
    are replaced.
    """
    kept = [arg for arg in runtime if not arg.startswith(("--user=", "--memory=", "--cpus="))]
    # A tool that declared NetworkAccess gets the sandbox's network, whatever cwltool chose.
    kept = [
        arg if not arg.startswith("--net=") or arg == "--net=none" else f"--net={policy.network}"
        for arg in kept
    ]
    memory = min(ram_mib or policy.max_ram_mib, policy.max_ram_mib)
    cpus = min(cores or policy.max_cores, policy.max_cores)
    file_bytes = policy.max_file_mib * MIB
    return [
        *kept[:2],  # docker run
        f"--user={policy.uid}:{policy.uid}",
        "--cap-drop=all",
        "--security-opt=no-new-privileges",
        f"--pids-limit={policy.max_pids}",
        f"--memory={math.ceil(memory)}m",
        f"--memory-swap={math.ceil(memory)}m",
        f"--cpus={cpus:g}",
        f"--ulimit=fsize={file_bytes}:{file_bytes}",
        # One --ulimit drops the engine's default_ulimits: runc then fails to raise these.
        f"--ulimit=nofile={_OPEN_FILES}:{_OPEN_FILES}",
        f"--ulimit=nproc={_OPEN_FILES}:{_OPEN_FILES}",
        *kept[2:],
    ]


def host_prefix(policy: SandboxPolicy) -> list[str]:
    """The command put before a host tool's own: limits, then the sandbox user."""
    limits = [
        "prlimit",
        f"--cpu={policy.max_cpu_s}",
        f"--nproc={policy.max_pids}",
        f"--fsize={policy.max_file_mib * MIB}",
        f"--as={policy.max_ram_mib * MIB * 4}",  # address space, not RAM: runtimes reserve
        "--",
    ]
    if not policy.changes_user:
        return limits
    return [
        *limits,
        "setpriv",
        f"--reuid={policy.uid}",
        f"--regid={policy.uid}",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--no-new-privs",
        "--",
    ]


def open_job_dir(path: Path, policy: SandboxPolicy) -> None:
    """Give the sandbox user ``path`` (a job's work folder) and a way to it.

    Every folder above gets search permission for others (no listing); the folder itself
    and what is in it become the sandbox user's.
    """
    if not policy.changes_user:
        return
    for parent in reversed(path.resolve().parents):
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)
    for folder, dirs, files in os.walk(path):
        os.chown(folder, policy.uid, policy.uid)
        for name in dirs + files:
            os.chown(os.path.join(folder, name), policy.uid, policy.uid, follow_symlinks=False)


def lock_home(home: Path, jobs: Path) -> None:
    """Keep the engine's own files in ``home`` from the sandbox user.

    ``home`` and the ``jobs`` folder in it are searchable (tools reach their own work
    folder), nothing else in ``home`` is: results, Prefect's database and credentials,
    the package cache and logs stay the engine's user's.
    """
    for entry in home.iterdir():
        if entry.resolve() == jobs.resolve() or entry.is_symlink():
            continue
        mode = stat.S_IMODE(entry.lstat().st_mode)
        if mode & 0o077:
            entry.chmod(mode & 0o700)
    for folder in (home, jobs):
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o711)


def _scrubbed(env: MutableMapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if not k.startswith(_ENGINE_VARIABLES)}


def _requested(builder: Any, key: str, resource: str) -> float | None:
    """What the tool's ResourceRequirement asks for (``None``: it asks nothing)."""
    request, _ = builder.get_requirement("ResourceRequirement")
    if not request or not any(k in request for k in (f"{key}Min", f"{key}Max")):
        return None
    return float(builder.resources[resource])


def _sandboxed_runner(runner: type, policy: SandboxPolicy) -> type:
    """A subclass of cwltool's job runner ``runner`` that applies ``policy``."""
    from cwltool.docker import DockerCommandLineJob

    if issubclass(runner, DockerCommandLineJob):
        if policy.mode != "containers":
            return runner  # off: containers as the operator's engine settings make them

        class ContainerJob(runner):  # type: ignore[misc, valid-type]
            def create_runtime(
                self, env: MutableMapping[str, str], runtimeContext: Any
            ) -> tuple[list[str], str | None]:
                runtime, cidfile = super().create_runtime(env, runtimeContext)
                for folder in (self.outdir, self.tmpdir):  # writable mounts
                    os.chown(folder, policy.uid, policy.uid)
                    for sub, dirs, files in os.walk(folder):
                        for name in dirs + files:
                            os.chown(
                                os.path.join(sub, name),
                                policy.uid,
                                policy.uid,
                                follow_symlinks=False,
                            )
                ram = _requested(self.builder, "ram", "ram")
                cores = _requested(self.builder, "cores", "cores")
                return container_flags(runtime, policy, ram_mib=ram, cores=cores), cidfile

            def docker_monitor(self, *args: Any, **kwargs: Any) -> None:
                """Nothing: cwltool's monitor polls for the cidfile once a second (a 1 s
                floor on every tool) to log peak memory, which the sandbox limits anyway."""

        return ContainerJob

    class HostJob(runner):  # type: ignore[misc, valid-type]
        def _execute(
            self,
            runtime: list[str],
            env: MutableMapping[str, str],
            runtimeContext: Any,
            monitor_function: Any = None,
        ) -> None:
            open_job_dir(Path(self.outdir), policy)
            open_job_dir(Path(self.tmpdir), policy)
            super()._execute(
                [*host_prefix(policy), *runtime], _scrubbed(env), runtimeContext, monitor_function
            )

    return HostJob


def make_tool(toolpath_object: Any, loading_context: Any) -> Any:
    """cwltool's ``construct_tool_object``: CommandLineTools whose jobs obey the sandbox
    policy of the run (``runtimeContext.oapip_sandbox``; none: cwltool's own jobs)."""
    from cwltool import command_line_tool
    from cwltool.workflow import default_make_tool

    if not (isinstance(toolpath_object, dict) or hasattr(toolpath_object, "get")):
        return default_make_tool(toolpath_object, loading_context)
    if toolpath_object.get("class") != "CommandLineTool":
        return default_make_tool(toolpath_object, loading_context)

    class SandboxedTool(command_line_tool.CommandLineTool):
        def make_job_runner(self, runtimeContext: Any) -> type:
            policy: SandboxPolicy | None = getattr(runtimeContext, "oapip_sandbox", None)
            runner = super().make_job_runner(runtimeContext)
            return runner if policy is None else _sandboxed_runner(runner, policy)

    return SandboxedTool(toolpath_object, loading_context)


def _tools(node: Any, inherited: bool = False) -> Iterator[tuple[dict[str, Any], bool]]:
    """Every CommandLineTool with whether a process around it names an image."""
    if isinstance(node, list):
        for item in node:
            yield from _tools(item, inherited)
    elif isinstance(node, dict):
        if node.get("class") in ("Workflow", "CommandLineTool"):
            inherited = inherited or _has_docker(node)
        if node.get("class") == "CommandLineTool":
            yield node, inherited
        for value in node.values():
            if isinstance(value, list | dict):
                yield from _tools(value, inherited)


def _has_docker(tool: dict[str, Any]) -> bool:
    for key in ("requirements", "hints"):
        entries = tool.get(key) or []
        if isinstance(entries, dict):
            if "DockerRequirement" in entries:
                return True
            continue
        if any(isinstance(e, dict) and e.get("class") == "DockerRequirement" for e in entries):
            return True
    return False


def tools_without_image(document: dict[str, Any]) -> list[str]:
    """Ids of the CommandLineTools in ``document`` that name no container image (neither
    they nor a workflow around them has a DockerRequirement)."""
    return [
        str(tool.get("id", "?")).rsplit("#", 1)[-1]
        for tool, has_image in _tools(document)
        if not has_image
    ]
