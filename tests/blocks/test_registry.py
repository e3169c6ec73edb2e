"""The backend registry: built-ins found by name, a site's own added by a module, runs
left behind by a dead job process stopped through the backend that recorded them.

The acceptance test starts a stack whose only difference is ``OAPIP_BACKEND_MODULES``
naming :mod:`tests.blocks.plugin_backend`, a backend no file of the engine knows, and
runs a job on it through the OGC API.
"""

from __future__ import annotations

import json
import logging
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from blocks import registry
from blocks.backend import CwlJob, ExecutionBackend, recorded_runs
from blocks.toil_wes import ToilWesBackend
from core.exceptions import BackendError
from core.settings import ExecutionSettings, Settings
from tests.blocks.plugin_backend import ENGINE, PluginBackend
from tests.conftest import Engine, _running_engine
from tests.support import (
    ECHO_CWL,
    HTTP_TIMEOUT_S,
    LogLines,
    assert_ogc_exception,
    cwl_job,
    execute_async,
    result_bytes,
    wait_for_status,
)

PLUGIN_MODULE = "tests.blocks.plugin_backend"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings naming the plugin module, with nothing else configured."""
    return Settings(
        home=tmp_path / "home", execution=ExecutionSettings(backend_modules=[PLUGIN_MODULE])
    )


@pytest.fixture
def job_log() -> Iterator[tuple[logging.Logger, LogLines]]:
    lines = LogLines()
    logger = logging.getLogger(f"test.registry.{random.randint(0, 10**9)}")
    logger.addHandler(lines)
    PluginBackend.stopped.clear()
    yield logger, lines


def _job(workdir: Path, job_id: str = "job-1") -> CwlJob:
    return cwl_job(ECHO_CWL, {"message": "hi"}, workdir, job_id=job_id)


# --- finding and building backends ---------------------------------------------------


def test_built_ins_are_entry_points_imported_only_when_named():
    """In a fresh process: the package and the registry import no backend; naming one
    imports that one only."""
    script = """
import json, sys
import blocks
from blocks import registry
from core.settings import Settings
imported = lambda: sorted(m for m in sys.modules if m in (
    "blocks.cwltool", "blocks.toil_wes", "blocks.calrissian"))
settings = Settings()
seen = {"names": registry.names(settings), "before": imported()}
registry.backend_for("cwltool", settings)
seen["after"] = imported()
print(json.dumps(seen))
"""
    env = {k: v for k, v in os.environ.items() if k not in ("OAPIP_BACKEND_MODULES",)}
    env["OAPIP_EXECUTION_ENGINE"] = "cwltool"
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen == {
        "names": ["calrissian", "cwltool", "toil"],
        "before": [],
        "after": ["blocks.cwltool"],
    }


def test_a_site_module_adds_its_backend(settings: Settings):
    assert registry.names(settings) == ["calrissian", "cwltool", ENGINE, "toil"]
    assert [c.__name__ for c in registry.block_types(settings)] == [
        "CalrissianBackend",
        "CwltoolBackend",
        "PluginBackend",
        "ToilWesBackend",
    ]
    assert isinstance(registry.backend_for(ENGINE, settings), PluginBackend)


def test_backends_are_built_from_settings(settings: Settings):
    engine_wide = settings.model_copy(
        update={"execution": settings.execution.model_copy(update={"engine": ENGINE})}
    )
    assert isinstance(registry.backend_for(None, engine_wide), PluginBackend)
    cwltool = registry.backend_for("cwltool", settings)
    assert cwltool.engine == "cwltool"
    assert cwltool.model_dump()["cache_dir"] == settings.home / "packages"


def test_unknown_and_unconfigured_engines_are_refused(settings: Settings):
    with pytest.raises(BackendError, match="unknown execution engine 'htcondor'"):
        registry.backend_for("htcondor", settings)
    with pytest.raises(BackendError, match="runs on `toil`, but no Toil WES endpoint"):
        registry.backend_for("toil", settings)
    assert registry.unavailable_reason("toil", settings) == (
        "no Toil WES endpoint is configured (OAPIP_TOIL_WES_URL)"
    )
    assert registry.unavailable_reason(ENGINE, settings) is None


def _backend_class(engine: str) -> type[ExecutionBackend]:
    slug = f"test-{random.randint(0, 10**9)}-backend"
    namespace = {"engine": engine, "_block_type_slug": slug, "submit": lambda self, job: None}
    return type(f"Backend{random.randint(0, 10**9)}", (ExecutionBackend,), namespace)


@pytest.mark.parametrize("engine", [ENGINE, "cwltool", "site/backend", ""])
def test_a_name_is_taken_once_and_never_looks_like_a_saved_block(engine: str):
    with pytest.raises(ValueError):
        registry.register(_backend_class(engine))


def test_registering_the_same_class_again_changes_nothing(settings: Settings):
    assert registry.register(PluginBackend) is PluginBackend
    assert registry.names(settings).count(ENGINE) == 1


def test_a_backend_is_recorded_by_the_name_it_is_built_by_again():
    backend = PluginBackend()
    assert backend.reference == ENGINE
    # As Prefect leaves a backend loaded from a saved document.
    backend._block_document_name, backend._is_anonymous = "custom", False
    assert backend.reference == "test-plugin-backend/custom"


# --- stopping what a dead job process left running ------------------------------------


def test_a_recorded_run_is_stopped_by_its_backend(
    settings: Settings, tmp_path: Path, job_log: tuple[logging.Logger, LogLines]
):
    logger, lines = job_log
    job = _job(tmp_path / "job")
    registry.backend_for(ENGINE, settings).submit(job)  # the job process dies here
    (record,) = recorded_runs(job.workdir)
    assert (record.backend, record.handle) == (ENGINE, {"job_id": "job-1"})

    stopped = registry.stop_recorded_runs(job.workdir, settings, logger)

    assert stopped == [f"{ENGINE} run plugin-job-1"]
    assert PluginBackend.stopped == [{"job_id": "job-1"}]
    assert not recorded_runs(job.workdir)
    assert "stopping the test plugin run of job job-1" in lines.lines
    assert f"stopped {ENGINE} run plugin-job-1, which the job process left running" in lines.lines
    assert registry.stop_recorded_runs(job.workdir, settings, logger) == []


def test_a_run_that_ended_is_not_stopped(
    settings: Settings, tmp_path: Path, job_log: tuple[logging.Logger, LogLines]
):
    logger, _ = job_log
    job = _job(tmp_path / "job")
    run = registry.backend_for(ENGINE, settings).submit(job)
    assert run.wait_for_completion().success

    assert registry.stop_recorded_runs(job.workdir, settings, logger) == []
    assert PluginBackend.stopped == []


def test_a_run_that_cannot_be_stopped_stays_recorded(
    settings: Settings, tmp_path: Path, job_log: tuple[logging.Logger, LogLines]
):
    logger, lines = job_log
    job = _job(tmp_path / "job")
    # Recorded by a Toil backend built from settings; these settings have no WES endpoint.
    toil = ToilWesBackend(url="https://hpc.example.org/ga4gh/wes/v1/")
    toil.record_run(job, "run-7", {"run_id": "run-7"})

    assert registry.stop_recorded_runs(job.workdir, settings, logger) == []

    assert [r.run_id for r in recorded_runs(job.workdir)] == ["run-7"]
    assert any(
        line.startswith("could not stop toil run run-7:") and "OAPIP_TOIL_WES_URL" in line
        for line in lines.lines
    ), lines.lines


def test_an_unreadable_record_is_left_out(tmp_path: Path):
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "broken.json").write_text('{"backend": "toil"')
    assert recorded_runs(tmp_path) == []
    assert recorded_runs(tmp_path / "no-such-job") == []


# --- the acceptance test: a job on a backend only the tests know ----------------------


@pytest.fixture(scope="module")
def plugin_engine(tmp_path_factory: pytest.TempPathFactory, tool_bin: Path) -> Iterator[Engine]:
    """The embedded stack with one more setting: the module of the tests' backend."""
    with _running_engine(
        "plugin",
        tmp_path_factory.mktemp("oapip-home-plugin"),
        tool_bin,
        extra_env={"OAPIP_BACKEND_MODULES": json.dumps([PLUGIN_MODULE])},
    ) as running:
        yield running


def _deploy_on(api: str, engine: str) -> requests.Response:
    return requests.post(
        f"{api}/processes",
        data=json.dumps({"executionUnit": {"value": ECHO_CWL}, "executionEngine": engine}),
        headers={"Content-Type": "application/ogcapppkg+json"},
        timeout=HTTP_TIMEOUT_S,
    )


def _run_echo(api: str, message: str) -> tuple[str, str]:
    """Run the deployed echo process; its job id and the text of its output file."""
    created = execute_async(api, "echo", {"message": message})
    assert created.status_code == 201, created.text
    final = wait_for_status(created.headers["Location"], timeout=120)
    assert final["status"] == "successful", final
    job_id = created.json()["jobID"]
    results = requests.get(f"{api}/jobs/{job_id}/results", timeout=HTTP_TIMEOUT_S).json()
    return job_id, result_bytes(results["said"]["href"]).decode()


def test_a_job_runs_on_a_backend_only_the_tests_know(plugin_engine: Engine):
    api = plugin_engine.api("plugin-user")
    deployed = _deploy_on(api, ENGINE)
    assert deployed.status_code == 201, deployed.text

    job_id, said = _run_echo(api, "hello plugin")

    # Not echo's output: the test backend's, for this job and these inputs.
    assert (
        said
        == f'made by the test plugin backend: job {job_id} with {{"message": "hello plugin"}}\n'
    )
    assert not (plugin_engine.home / "jobs" / job_id).exists()  # nothing left recorded


def test_a_saved_document_of_the_tests_backend_runs_a_job(plugin_engine: Engine):
    from prefect.settings import temporary_settings

    with temporary_settings(updates=plugin_engine.prefect_settings()):
        PluginBackend(greeting="hello from a saved block").save("custom", overwrite=True)
    api = plugin_engine.api("plugin-saved")
    deployed = _deploy_on(api, "test-plugin-backend/custom")
    assert deployed.status_code == 201, deployed.text

    job_id, said = _run_echo(api, "hi")

    assert said == f'hello from a saved block: job {job_id} with {{"message": "hi"}}\n'


def test_deploy_lists_the_tests_backend_among_the_engines(plugin_engine: Engine):
    body = assert_ogc_exception(_deploy_on(plugin_engine.api("plugin-user"), "htcondor"), 400)
    assert f"executionEngine must be one of calrissian, cwltool, {ENGINE}, toil" in body["detail"]
