"""The one generic execution flow every deployed process runs: stage-in → execute → stage-out.

Each OGC job is a run of :func:`execute_process` created from the process's deployment;
the flow-run id is the job id. The flow returns the OGC results document, which Prefect
persists as the flow's result.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_link_artifact,
    create_progress_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run as current_flow_run

from blocks.backend import CwlJob, ExecutionBackend
from blocks.calrissian import CalrissianBackend
from blocks.cwltool import CwltoolBackend
from blocks.package import ApplicationPackage
from blocks.storage import ResultStorage, storage_from_url
from engine.exceptions import ToolFailed
from engine.settings import Settings, get_settings
from flows import cwl
from flows.staging import stage_in_job_order, stage_out_outputs

__all__ = ["FLOW_NAME", "execute_process", "load_package", "remember_package"]

FLOW_NAME = "ogc-execute"


_packages: dict[tuple[str, str], ApplicationPackage] = {}


def remember_package(name: str, revision: str, package: ApplicationPackage) -> None:
    """Keep ``package`` in this process so later runs of that revision need no API call."""
    _packages[(name, revision)] = package


def load_package(name: str, revision: str) -> ApplicationPackage:
    """The application package block ``name`` at ``revision`` (cached per revision)."""
    key = (name, revision)
    if key not in _packages:
        _packages[key] = ApplicationPackage.load(name, validate=False)
    return _packages[key]


def default_backend(settings: Settings) -> ExecutionBackend:
    """The engine-wide backend from settings (``OAPIP_EXECUTION_ENGINE``)."""
    if settings.execution_engine == "calrissian":
        selector = (
            {settings.node_selector_key: settings.node_selector_value or ""}
            if settings.node_selector_key
            else {}
        )
        return CalrissianBackend(
            kubeconfig=settings.kubeconfig,
            calrissian_image=settings.calrissian_image,
            storage_class=settings.calrissian_storage_class,
            keep_namespace_on_failure=settings.calrissian_keep_namespace_on_failure,
            node_selector=selector,
            image_pull_secrets=[
                s.strip() for s in settings.image_pull_secrets.split(",") if s.strip()
            ],
            default_max_ram_mib=settings.max_ram_mib,
            default_max_cores=settings.max_cores,
        )
    return CwltoolBackend(
        container_engine=settings.container_engine,
        allow_no_container=settings.allow_no_container,
        pull_images=settings.container_pull,
        network=settings.container_network,
        cache_dir=settings.home / "packages",
    )


class _StepProgress:
    """Progress within ``execute`` for multi-step workflows, as a Prefect progress artifact.

    The gateway derives the coarse figure from the flow's task runs (stage-in, execute,
    stage-out); this refines the execute phase by completed workflow steps. It writes
    nothing for single-tool packages and at most one update a second.
    """

    def __init__(self, total_steps: int) -> None:
        self.total = total_steps
        self.done = 0
        self._id: Any = None
        self._last = 0.0

    def step_completed(self) -> None:
        self.done += 1
        if self.total < 2 or (time.monotonic() - self._last < 1.0 and self.done < self.total):
            return
        self._last = time.monotonic()
        percent = 100.0 * min(self.done, self.total) / self.total
        description = f"{self.done} of {self.total} workflow steps done"
        if self._id is None:
            self._id = create_progress_artifact(progress=percent, description=description)
        else:
            update_progress_artifact(self._id, progress=percent, description=description)


# Tasks take the package by name and revision, not the package itself: Prefect walks
# every task argument (and shows it in the UI), and a packed CWL is large.


@task(name="stage-in", cache_policy=NO_CACHE, persist_result=False)
def stage_in(package: str, revision: str, inputs: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """Turn OGC inputs into a CWL job order with local copies of remote files."""
    app = load_package(package, revision)
    order = cwl.job_order(app.workflow, app.entrypoint, inputs)
    return stage_in_job_order(order, workdir / "inputs")


@task(name="execute", cache_policy=NO_CACHE, persist_result=False)
def execute(
    backend: ExecutionBackend, package: str, revision: str, job_order: dict[str, Any], workdir: Path
) -> dict[str, Any]:
    """Run the package on the backend; fail with the backend's message if it fails."""
    app = load_package(package, revision)
    job = CwlJob(
        job_id=str(current_flow_run.id),
        process_id=app.process_id,
        workflow=app.workflow,
        entrypoint=app.entrypoint,
        job_order=job_order,
        workdir=workdir,
        revision=app.revision,
        logger=get_run_logger(),
        on_step=_StepProgress(cwl.step_count(app.workflow, app.entrypoint)).step_completed,
    )
    run = backend.submit(job)
    try:
        outcome = run.wait_for_completion()
    except BaseException:
        run.cancel()
        raise
    if not outcome.success:
        raise ToolFailed(outcome.message or "the application package failed")
    return run.fetch_result()


@task(name="stage-out", cache_policy=NO_CACHE, persist_result=False)
def stage_out(storage: ResultStorage, outputs: dict[str, Any], job_id: str) -> dict[str, Any]:
    """Upload outputs and build the OGC results document."""
    return stage_out_outputs(outputs, storage, prefix=get_settings().results_prefix, job_id=job_id)


@flow(
    name=FLOW_NAME,
    persist_result=True,
    result_serializer="json",
    validate_parameters=False,
    log_prints=False,
)
def execute_process(
    inputs: dict[str, Any], package: str, revision: str = "", outputs: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Run the deployed application package ``package`` on ``inputs``.

    Args:
        inputs: OGC execute inputs, already validated against the process description.
        package: name of the process's ApplicationPackage block document.
        revision: the package revision the deployment was made with (a cache key).
        outputs: the execute request's ``outputs`` selection; unset means all outputs.
    """
    settings = get_settings()
    job_id = str(current_flow_run.id)
    workdir = settings.job_dir(job_id)
    app = load_package(package, revision)
    try:
        job_order = stage_in(package, revision, inputs, workdir)
        cwl_outputs = execute(default_backend(settings), package, revision, job_order, workdir)
        if outputs:
            cwl_outputs = {k: v for k, v in cwl_outputs.items() if k in outputs}
        results = stage_out(storage_from_url(settings.results_url), cwl_outputs, job_id)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    create_link_artifact(
        link=f"{settings.results_url.rstrip('/')}/{settings.results_prefix}/{job_id}/",
        link_text="results",
        description=f"Results of {app.process_id}",
    )
    return results
