"""Run a packed CWL document with cwltool's Python API.

One function, :func:`run_cwl`, used two ways: inside a job process of the fast worker
(the tool object loaded once per process revision and inherited on fork), or as
``python -m cwlpkg.runner REQUEST.json`` in a process group of its own when a stock
Prefect worker runs the flow. Either way the outcome names the failing step.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import hashlib
import io
import json
import logging
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.naming import TOOL_LINE
from cwlpkg.sandbox import SandboxPolicy, lock_home, make_tool

__all__ = [
    "ContainerOptions",
    "CwlOutcome",
    "document_path",
    "load_tool",
    "remove_containers",
    "run_cwl",
]

# cwltool reports each finished job/step as "[job convert] completed permanentFail".
_COMPLETED = re.compile(r"^\[(job|step|workflow) ?([^\]]*)\] completed (\w+)")
# "<cache>/packages/<revision>.cwl:1:94: " before a line of a cwltool message or inside
# it ("Error collecting output for parameter 'x': <here>Did not find output file ..."): a
# place in the engine's packed copy, meaningless to the package's author (and an engine path).
_SOURCE_LOCATION = re.compile(r"(?<!\S)\S+\.cwl:\d+:\d+: ?")
# "[job convert] Job error:" heads cwltool's report of a failed job; the reason (a glob
# that matched nothing, an exit code, a failed expression) is on the lines after it.
_JOB_ERROR = re.compile(r"^\[(?:job|step|workflow) ?[^\]]*\] (?:Job error|Exception)[^:\n]*:\s*")


@dataclass
class CwlOutcome:
    """What a cwltool run produced: status, CWL outputs and a message for users."""

    status: str
    outputs: dict[str, Any] = field(default_factory=dict)
    message: str = ""

    @property
    def success(self) -> bool:
        return self.status == "success"


def document_path(workflow: dict[str, Any], revision: str, cache_dir: Path) -> Path:
    """Write ``workflow`` once to ``cache_dir/<revision>.cwl`` and return its path."""
    key = revision or hashlib.sha256(json.dumps(workflow, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir / f"{key}.cwl"
    if not path.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(workflow))
        os.replace(tmp, path)
    return path


@functools.lru_cache(maxsize=64)
def _load_from_file(uri: str) -> Any:
    from cwltool.context import LoadingContext
    from cwltool.load_tool import load_tool as cwl_load_tool

    context = LoadingContext()
    context.do_update = True
    # Tools whose jobs obey the run's sandbox policy (cwlpkg.sandbox); none: cwltool's.
    context.construct_tool_object = make_tool
    return cwl_load_tool(uri, context)


def load_tool(workflow: dict[str, Any], entrypoint: str, revision: str, cache_dir: Path) -> Any:
    """The validated cwltool process object for ``entrypoint`` in ``workflow``.

    Cached per revision (a digest of the packed document): a warm process loads and
    validates each process version once, and job processes forked from it inherit it.
    """
    path = document_path(workflow, revision, cache_dir)
    uri = path.as_uri() + (f"#{entrypoint}" if "$graph" in workflow else "")
    return _load_from_file(uri)


def _reason(message: str) -> str:
    """cwltool's error ``message`` on one line, without the ``[job x] Job error:`` head
    (at most 500 characters): "Error collecting output for parameter 'results': Did not
    find output file with glob pattern: ['*-resize.png']."."""
    text = " ".join(line.strip() for line in message.splitlines() if line.strip())
    head = _JOB_ERROR.match(text)
    return (text[head.end() :] if head and head.end() < len(text) else text)[:500]


class _CwltoolLogRelay(logging.Handler):
    """Forward cwltool's log records to the job's logger and remember failed steps."""

    def __init__(
        self,
        target: logging.Logger | logging.LoggerAdapter,
        on_step: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(logging.INFO)
        self.target = target
        self.on_step = on_step
        self.failed: list[str] = []
        self.errors: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        match = _COMPLETED.match(message)
        if match and match.group(3) != "success" and match.group(1) in ("job", "step"):
            name = match.group(2).strip()
            if name and name not in self.failed:
                self.failed.append(name)
        elif match and match.group(1) == "step" and self.on_step is not None:
            with contextlib.suppress(Exception):  # progress must never break a run
                self.on_step()
        message = _SOURCE_LOCATION.sub("", message)
        if record.levelno >= logging.ERROR:
            self.errors.append(_reason(message))
        self.target.log(record.levelno, "cwltool: %s", message)


@dataclass
class ContainerOptions:
    """How tools with a DockerRequirement run.

    Attributes:
        enabled: run them in containers (else on the host, where the package allows).
        podman: cwltool's podman mode; otherwise its docker mode, which also drives a
            podman service through ``DOCKER_HOST``.
        pull: pull images the engine does not hold.
        network: ``--net`` of containers with network access; ``None``: the default.
    """

    enabled: bool = False
    podman: bool = False
    pull: bool = True
    network: str | None = None

    @property
    def client(self) -> str:
        return "podman" if self.podman else "docker"


def _runtime_context(
    outdir: Path, workdir: Path, containers: ContainerOptions, sandbox: SandboxPolicy | None
) -> Any:
    from cwltool.context import RuntimeContext

    context = RuntimeContext()
    context.outdir = str(outdir)
    context.basedir = str(workdir)
    context.tmpdir_prefix = str(workdir / "tmp" / "t")
    context.tmp_outdir_prefix = str(workdir / "tmp" / "o")
    context.stagedir = str(workdir / "tmp" / "stage")
    context.use_container = containers.enabled
    context.podman = containers.podman
    context.pull_image = containers.pull
    context.custom_net = containers.network
    # Podman 4.3's docker API reports exit code 0 for a `--rm` container that failed:
    # keep containers, remove them by their cidfiles once the run is over.
    context.rm_container = False
    context.cidfile_dir = str(workdir / "tmp" / "cid")
    context.move_outputs = "move"
    context.rm_tmpdir = True
    context.oapip_sandbox = sandbox
    if sandbox is not None and sandbox.mode == "containers":
        image = sandbox.default_image
        context.find_default_container = lambda _tool: image
        context.custom_net = sandbox.network  # for tools that declare NetworkAccess
    return context


def run_cwl(
    workflow: dict[str, Any],
    entrypoint: str,
    job_order: dict[str, Any],
    workdir: Path,
    *,
    revision: str = "",
    cache_dir: Path | None = None,
    use_container: bool = False,
    podman: bool = False,
    pull_images: bool = True,
    network: str | None = None,
    sandbox: SandboxPolicy | None = None,
    logger: logging.Logger | logging.LoggerAdapter | None = None,
    on_step: Callable[[], None] | None = None,
) -> CwlOutcome:
    """Run ``entrypoint`` of ``workflow`` on ``job_order``; outputs go to ``workdir/outputs``.

    ``use_container``, ``podman``, ``pull_images`` and ``network`` are the fields of
    :class:`ContainerOptions`; ``sandbox`` confines the tools (:mod:`cwlpkg.sandbox`;
    ``containers`` implies ``use_container``). Never raises for a failing tool: the
    outcome's ``message`` names the failed steps.
    """
    from cwltool.errors import WorkflowException
    from cwltool.executors import SingleJobExecutor

    log = logger or logging.getLogger("oapip.cwl")
    outdir = workdir / "outputs"
    if sandbox is not None and sandbox.mode == "containers":
        use_container = True
    containers = ContainerOptions(use_container, podman, pull_images, network)
    for folder in (outdir, workdir / "tmp", workdir / "tmp" / "cid"):
        folder.mkdir(parents=True, exist_ok=True)
    off = sandbox is not None and sandbox.mode == "off" and sandbox.changes_user
    if off and workdir.parent.name == "jobs":  # <OAPIP_HOME>/jobs/<job id>
        lock_home(workdir.parent.parent, workdir.parent)
    relay = _CwltoolLogRelay(log, on_step)
    cwl_logger = logging.getLogger("cwltool")
    cwl_logger.addHandler(relay)
    cwl_logger.propagate = False
    cwl_logger.setLevel(logging.INFO)
    pump = _OutputPump(log)
    try:
        tool = load_tool(workflow, entrypoint, revision, cache_dir or workdir)
        context = _runtime_context(outdir, workdir, containers, sandbox)
        context.default_stdout = context.default_stderr = pump.writer
        outputs, status = SingleJobExecutor()(tool, job_order, context, logger=cwl_logger)
    except WorkflowException as exc:
        status, outputs, error = "permanentFail", {}, str(exc)
    else:
        error = f"workflow ended {status}"
    finally:
        cwl_logger.removeHandler(relay)
        tail = pump.close()
        if containers.enabled:
            remove_containers(workdir, containers.client, log)
    if status != "success":
        return CwlOutcome(status, message=_failure_message(relay, tail, error))
    return CwlOutcome("success", outputs=outputs or {})


def remove_containers(
    workdir: Path,
    client: str = "docker",
    log: logging.Logger | logging.LoggerAdapter | None = None,
) -> None:
    """Remove (killing if need be) every container a run in ``workdir`` started.

    cwltool writes each container's id to a cidfile in ``workdir/tmp/cid``; a run's
    containers are removed when it ends and, by whoever killed it, when it is killed
    (a killed docker client leaves its container running).
    """
    log = log or logging.getLogger("oapip.cwl")
    cidfiles = list((workdir / "tmp" / "cid").glob("*.cid"))
    ids = [cid for cid in (path.read_text().strip() for path in cidfiles) if cid]
    if not ids:
        return
    try:
        done = subprocess.run(
            [client, "rm", "--force", *ids], capture_output=True, text=True, check=False
        )
    except OSError as exc:
        log.warning("could not remove containers %s: %s", ids, exc)
        return
    if done.returncode != 0:
        log.warning("could not remove containers %s: %s", ids, done.stderr.strip()[-300:])
        return
    for path in cidfiles:
        path.unlink(missing_ok=True)


_DOC_URI = re.compile(r"file://\S+?\.cwl#(main/)?")
_NOISE = ("Output is missing expected field", "completed permanentFail")


def _failure_message(relay: _CwltoolLogRelay, tail: list[str], fallback: str) -> str:
    """Name the failed steps, the first real error and the end of the tools' stderr."""
    detail = next((e for e in relay.errors if e and not e.startswith("[") or "not found" in e), "")
    if not detail:
        detail = next((e for e in relay.errors if not any(n in e for n in _NOISE)), "")
    parts = [
        f"step {', '.join(relay.failed)} failed" if relay.failed else (fallback or "cwltool failed")
    ]
    if detail:
        parts.append(detail.rstrip("."))
    if tail:
        parts.append("stderr: " + " | ".join(tail[-5:]))
    return _DOC_URI.sub("", _SOURCE_LOCATION.sub("", ": ".join(parts)))[:2000]


class _KeptOpenWriter(io.FileIO):
    """The pipe's write end, which cwltool may "close" after every job.

    cwltool closes the default stdout/stderr it was given once a job ends; the next
    step of a workflow would then write to a closed file. Only the pump closes it.
    """

    def close(self) -> None:
        """Ignore cwltool's close; see :meth:`close_for_real`."""

    def close_for_real(self) -> None:
        super().close()


class _OutputPump:
    """A pipe the tools write stdout/stderr to; each line goes to the job's logger."""

    def __init__(self, log: logging.Logger | logging.LoggerAdapter) -> None:
        read_fd, write_fd = os.pipe()
        self.writer = _KeptOpenWriter(write_fd, "wb")
        self.tail: collections.deque[str] = collections.deque(maxlen=20)
        self._log = log
        self._thread = threading.Thread(target=self._pump, args=(read_fd,), daemon=True)
        self._thread.start()

    def _pump(self, read_fd: int) -> None:
        with os.fdopen(read_fd, "rb") as reader:
            for raw in reader:
                line = raw.decode(errors="replace").rstrip()
                if line:
                    self.tail.append(line[:500])
                    self._log.info("%s%s", TOOL_LINE, line)

    def close(self) -> list[str]:
        self.writer.close_for_real()
        # Tools are done; a leftover background process holding the pipe must not hang us.
        self._thread.join(timeout=2)
        return list(self.tail)


def main(argv: list[str] | None = None) -> int:
    """Subprocess entry point: run the request in REQUEST.json, write the outcome next to it."""
    parser = argparse.ArgumentParser(prog="python -m cwlpkg.runner")
    parser.add_argument("request", type=Path)
    args = parser.parse_args(argv)
    request = json.loads(args.request.read_text())
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")
    outcome = run_cwl(
        request["workflow"],
        request["entrypoint"],
        request["job_order"],
        Path(request["workdir"]),
        revision=request.get("revision", ""),
        cache_dir=Path(request["cache_dir"]) if request.get("cache_dir") else None,
        use_container=request.get("use_container", False),
        podman=request.get("podman", False),
        pull_images=request.get("pull_images", True),
        network=request.get("network"),
        sandbox=SandboxPolicy(**request["sandbox"]) if request.get("sandbox") else None,
        logger=logging.getLogger("oapip.cwl"),
    )
    result_path = args.request.with_name("outcome.json")
    tmp = result_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(outcome)))
    os.replace(tmp, result_path)
    return 0 if outcome.success else 1


if __name__ == "__main__":
    raise SystemExit(main())
