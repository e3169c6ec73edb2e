"""The one generic execution flow every deployed process runs: stage-in → execute → stage-out.

Each OGC job is a run of :func:`execute_process` created from the process's deployment;
the flow-run id is the job id. The flow returns the OGC results document, which Prefect
persists as the flow's result.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
from pathlib import Path
from typing import Any

from prefect import Flow, flow, get_run_logger, task
from prefect.artifacts import (
    create_link_artifact,
    create_progress_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import FlowRun
from prefect.logging.loggers import flow_run_logger
from prefect.runtime import flow_run as current_flow_run
from prefect.states import State

import cwlpkg as cwl
from blocks.backend import CwlJob, ExecutionBackend
from blocks.package import ApplicationPackage
from blocks.registry import backend_for
from blocks.storage import ResultStorage
from core.exceptions import ToolFailed
from core.naming import FLOW_NAME, job_id_of, jobs_path, process_of, results_key, user_of
from core.ogc import clean_message
from core.secrets import Redactor
from core.settings import get_settings
from flows.callbacks import Notifier, status_document
from flows.lifecycle import failed_stage_out
from flows.staging import (
    fetcher_from_settings,
    result_links,
    result_storage,
    stage_in_job_order,
    stage_out_outputs,
)

__all__ = [
    "execute_process",
    "job_user",
    "load_package",
    "remember_package",
]

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


class _StepProgress:
    """Progress within ``execute``, as a Prefect progress artifact.

    The gateway derives the coarse figure from the flow's task runs (stage-in, execute,
    stage-out); for multi-step workflows this refines the execute phase by completed
    workflow steps, at most one update a second. A single tool gets one artifact, at
    100 %, when it is done (``finish``), so every job's run shows its progress in the UI.
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
        self._write(percent, description)

    def finish(self) -> None:
        """The backend is done: show 100 % (one write, unless the last update said so)."""
        if self.total >= 2 and self.done >= self.total and self._id is not None:
            return
        self.done = self.total
        self._write(
            100.0,
            f"{self.total} of {self.total} workflow steps done" if self.total else "tool done",
        )

    def _write(self, percent: float, description: str) -> None:
        if self._id is None:
            self._id = create_progress_artifact(progress=percent, description=description)
        else:
            update_progress_artifact(self._id, progress=percent, description=description)


# Tasks take the package by name and revision, not the package itself: Prefect walks
# every task argument (and shows it in the UI), and a packed CWL is large.


def job_user() -> str | None:
    """The user who submitted this job: the flow run's ``user:<name>`` tag (set by the
    gateway on every job)."""
    return user_of(current_flow_run.tags or [])


@task(name="stage-in", cache_policy=NO_CACHE, persist_result=False)
def stage_in(package: str, revision: str, inputs: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """Turn OGC inputs into a CWL job order with local copies of remote files."""
    app = load_package(package, revision)
    order = cwl.job_order(app.workflow, app.entrypoint, inputs)
    return stage_in_job_order(order, workdir / "inputs", fetcher_from_settings(get_settings()))


@task(name="execute", cache_policy=NO_CACHE, persist_result=False)
def execute(
    backend: ExecutionBackend, package: str, revision: str, job_order: dict[str, Any], workdir: Path
) -> dict[str, Any]:
    """Run the package on the backend; fail with the backend's message if it fails."""
    app = load_package(package, revision)
    progress = _StepProgress(cwl.step_count(app.workflow, app.entrypoint))
    job = CwlJob(
        # The OGC jobID (the run's job tag): namespaces, WES tags and labels name it.
        job_id=job_id_of(current_flow_run.tags, current_flow_run.id),
        process_id=app.process_id,
        workflow=app.workflow,
        entrypoint=app.entrypoint,
        job_order=job_order,
        workdir=workdir,
        revision=app.revision,
        logger=get_run_logger(),
        on_step=progress.step_completed,
    )
    run = backend.submit(job)
    if run.run_url:
        # Where the backend shows the run (a WES run): linked from the flow run.
        create_link_artifact(
            link=run.run_url, link_text=f"backend run {run.run_id}", description="Backend run"
        )
    try:
        outcome = run.wait_for_completion()
    except BaseException:
        run.cancel()
        raise
    if not outcome.success:
        raise ToolFailed(outcome.message or "the application package failed")
    progress.finish()
    return run.fetch_result()


@task(name="stage-out", cache_policy=NO_CACHE, persist_result=False)
def stage_out(
    storage: ResultStorage, outputs: dict[str, Any], job_id: str, jobs_url: str
) -> dict[str, Any]:
    """Upload outputs and build the OGC results document (whose links to the local store
    are the gateway's URLs below ``jobs_url``)."""
    prefix = get_settings().results.prefix
    link = result_links(storage, prefix=prefix, job_id=job_id, jobs_url=jobs_url)
    return stage_out_outputs(outputs, storage, prefix=prefix, job_id=job_id, link=link)


# Callbacks of the jobs running in this process, by flow-run id: the flow body starts
# them, the state hooks (which run after the final state is recorded) finish them.
_notifiers: dict[str, Notifier] = {}


def _final_callback(flow: Flow, flow_run: FlowRun, state: State) -> None:
    """State hook: call the subscriber back with the job's final outcome."""
    subscriber = (flow_run.parameters or {}).get("subscriber")
    notifier = _notifiers.pop(job_id_of(flow_run.tags, flow_run.id), None)
    if not subscriber:
        return
    if notifier is None:  # the flow failed before it started the callbacks
        notifier = Notifier(subscriber, flow_run_logger(flow_run, flow), get_settings())
    if state.is_completed():
        notifier.finish("successUri", notifier.results or {}, "success")
        return
    redact = Redactor.from_settings(get_settings())
    document = status_document(
        job_id=job_id_of(flow_run.tags, flow_run.id),
        process_id=process_of(flow_run.tags),
        status="failed",
        message=redact(clean_message(state.message)) or "job failed",
        jobs_url=flow_run.parameters.get("jobs_url", ""),
        created=flow_run.created,
        started=flow_run.start_time,
        finished=dt.datetime.now(dt.UTC),
    )
    notifier.finish("failedUri", document, "failure")


@flow(
    name=FLOW_NAME,
    persist_result=True,
    result_serializer="json",
    validate_parameters=False,
    log_prints=False,
    on_completion=[_final_callback],
    on_failure=[_final_callback],
    on_crashed=[_final_callback],
)
def execute_process(
    inputs: dict[str, Any],
    package: str,
    revision: str = "",
    outputs: dict[str, Any] | None = None,
    subscriber: dict[str, Any] | None = None,
    jobs_url: str = "",
) -> dict[str, Any]:
    """Run the deployed application package ``package`` on ``inputs``.

    Args:
        inputs: OGC execute inputs, already validated against the process description.
        package: name of the process's ApplicationPackage block document.
        revision: the package revision the deployment was made with (a cache key).
        outputs: the execute request's ``outputs`` selection; unset means all outputs.
        subscriber: the execute request's ``subscriber`` (callback URIs), if any.
        jobs_url: the gateway's job list URL, for the links of callback documents and of
            results in the local store (unset, as for a run started in the Prefect UI:
            ``OAPIP_PUBLIC_URL`` and the user's path, or that path alone).
    """
    settings = get_settings()
    job_id = job_id_of(current_flow_run.tags, current_flow_run.id)
    jobs_url = jobs_url or f"{(settings.public_url or '').rstrip('/')}{jobs_path(job_user())}"
    workdir = settings.job_dir(job_id)
    app = load_package(package, revision)
    # Before anything runs: an unknown workspace or bucket fails the job at once.
    storage = result_storage(settings, user=job_user(), log=get_run_logger().warning)
    storage.check()
    notifier = None
    if subscriber:
        notifier = _notifiers[job_id] = Notifier(subscriber, get_run_logger(), settings)
        notifier.in_progress(
            status_document(
                job_id=job_id,
                process_id=app.process_id,
                status="running",
                message="job running",
                jobs_url=jobs_url,
                started=dt.datetime.now(dt.UTC),
                progress=0,
            )
        )
    try:
        job_order = stage_in(package, revision, inputs, workdir)
        backend = backend_for(app.execution_engine, settings)
        cwl_outputs = execute(backend, package, revision, job_order, workdir)
        if outputs:
            cwl_outputs = {k: v for k, v in cwl_outputs.items() if k in outputs}
        try:
            results = stage_out(storage, cwl_outputs, job_id, jobs_url)
        except Exception as exc:
            raise failed_stage_out(exc, settings, storage, job_id) from exc
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    create_link_artifact(
        link=storage.url_for(results_key(settings.results.prefix, job_id)) + "/",
        link_text="results",
        description=f"Results of {app.process_id}",
    )
    if notifier is not None:
        notifier.results = results
    return results
