"""The Calrissian backend's lifecycle against an EMULATED Kubernetes API (tests/k8s_api.py).

There is no Kubernetes here: no API server can run on these machines. The stand-in
speaks the API's HTTP on loopback (HTTPS, chunked watch streams, pod logs); the backend
talks to it with the official client through a kubeconfig. The Job's container runs the
real ``calrissian`` 0.18.1 from its own virtualenv
(``infrastructure/calrissian/install.sh``) with in-cluster configuration pointing at the
stand-in, and the pods Calrissian creates run in the session's podman service with
locally built images.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import cwlpkg as cwl
from blocks.backend import CwlJob, recorded_runs
from blocks.calrissian import CalrissianBackend
from blocks.registry import stop_recorded_runs
from core.settings import CalrissianSettings, Settings
from infrastructure.containers.podman import PodmanService
from tests.conftest import FileServer
from tests.k8s_api import CALRISSIAN_IMAGE, ApiError, EmulatedKubernetes
from tests.support import IMAGE_TOOL_CWL, LogLines, cwl_job

NODE = {"oapip.test/pool": "processing"}


@pytest.fixture
def k8s(
    tmp_path: Path, podman: PodmanService, calrissian_bin: Path
) -> Iterator[EmulatedKubernetes]:
    api = EmulatedKubernetes(
        tmp_path / "k8s",
        local_images={CALRISSIAN_IMAGE},
        local_path=[calrissian_bin],
        podman_env=podman.environment(),
        node_labels=NODE,
    )
    api.start()
    yield api
    api.stop()
    print(api.diagnostics())


@pytest.fixture
def records() -> Iterator[LogLines]:
    handler = LogLines()
    logger = logging.getLogger(f"test.calrissian.{random.randint(0, 10**9)}")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield handler


def _backend(k8s: EmulatedKubernetes, tmp_path: Path, **settings: Any) -> CalrissianBackend:
    return CalrissianBackend(
        kubeconfig=k8s.kubeconfig(tmp_path / "kubeconfig"),
        calrissian_image=CALRISSIAN_IMAGE,
        watch_timeout_s=5,
        unschedulable_timeout_s=1,
        calrissian_args=["--debug"],
        **settings,
    )


def _job(
    doc: dict[str, Any], process_id: str, inputs: dict[str, Any], workdir: Path, records: LogLines
) -> CwlJob:
    logger = logging.getLogger(f"test.calrissian.job.{id(records)}")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(records)
    # Namespaces are named after the job id, which is a UUID in the engine.
    job_id = f"{random.randint(0, 10**9):09d}-0000-4000-8000-000000000000"
    return cwl_job(doc, inputs, workdir, logger, process_id=process_id, job_id=job_id)


def _tool(image: str, script: str, tool_id: str = "tool") -> dict[str, Any]:
    return cwl.parse_document(IMAGE_TOOL_CWL.format(id=tool_id, image=image, script=script))


def _namespaces(k8s: EmulatedKubernetes) -> list[str]:
    return [n["metadata"]["name"] for n in k8s.list("namespaces")]


def test_convert_url_runs_through_calrissian_emulated(
    app_packages: Path,
    k8s: EmulatedKubernetes,
    tmp_path: Path,
    records: LogLines,
    file_server: FileServer,
    png_url: str,
):
    doc = cwl.parse_document((app_packages / "convert-url-app.cwl").read_bytes())
    job = _job(
        doc,
        "convert-url",
        {"fn": "resize", "url": png_url, "size": "50%"},
        tmp_path / "job",
        records,
    )
    backend = _backend(k8s, tmp_path, node_selector=NODE)
    run = backend.submit(job)
    namespace = run.run_id
    assert namespace in _namespaces(k8s)

    outcome = run.wait_for_completion()

    assert outcome.success, (outcome.message, records.lines[-30:])
    result = run.fetch_result()["converted_image"]
    assert result["class"] == "Directory"
    folder = Path(result["path"])
    assert folder.is_dir() and any(p.suffix == ".png" for p in folder.rglob("*")), result
    # The tool pod Calrissian created ran (in podman) and was watched through a stream.
    watches = [path for _, path in k8s.requests if "watch=true" in path.lower()]
    assert any(f"/namespaces/{namespace}/pods" in path for path in watches)
    assert any("calrissian" in line.lower() for line in records.lines)
    assert any(line.startswith("Calrissian usage:") for line in records.lines), records.lines
    assert (job.outdir / "usage-report.json").exists()
    assert namespace not in _namespaces(k8s)  # cleaned up
    # Calrissian's own tool pods were admitted under the namespace's enforced Pod Security
    # level (the emulated API refuses a pod that breaks it), as the tools' account.
    created = [o for _, t, p, ns, o in k8s.events if (t, p, ns) == ("ADDED", "pods", namespace)]
    tools = [o for o in created if o["metadata"]["name"] != "collect" and not _job_pod(o)]
    assert tools and not k8s.refused_pods, k8s.refused_pods
    assert {o["spec"]["serviceAccountName"] for o in tools} == {"calrissian-tool"}
    (ns_object,) = [o for _, t, p, _, o in k8s.events if (t, p) == ("ADDED", "namespaces")]
    assert ns_object["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"
    added = {(p, o["metadata"]["name"]) for _, t, p, ns, o in k8s.events if ns == namespace}
    assert ("networkpolicies", "job-isolation") in added


def _job_pod(pod: dict[str, Any]) -> bool:
    return "job-name" in (pod["metadata"].get("labels") or {})


def test_a_pod_breaking_the_namespace_level_is_refused_emulated(
    k8s: EmulatedKubernetes, tmp_path: Path, records: LogLines
):
    """The emulated API enforces Pod Security admission like a real one: the check the
    test above relies on refuses a privileged pod in a job namespace."""
    tool = _tool("eoepca/convert:latest", "sleep 60", "sleeper")
    job = _job(tool, "sleeper", {}, tmp_path / "job", records)
    run = _backend(k8s, tmp_path).submit(job)
    privileged = {
        "metadata": {"name": "escape"},
        "spec": {
            "containers": [
                {"name": "c", "image": "busybox", "securityContext": {"privileged": True}}
            ],
            "volumes": [{"name": "host", "hostPath": {"path": "/"}}],
        },
    }
    with pytest.raises(ApiError, match="violates PodSecurity"):
        k8s.create("pods", run.run_id, privileged)
    run.cancel()


def test_image_pull_failure_fails_the_job_with_the_reason_emulated(
    k8s: EmulatedKubernetes, tmp_path: Path, records: LogLines
):
    job = _job(_tool("eoepca/not-here:1.0", "echo never"), "tool", {}, tmp_path / "job", records)
    run = _backend(k8s, tmp_path).submit(job)

    outcome = run.wait_for_completion()

    assert not outcome.success
    assert "ImagePullBackOff" in outcome.message or "ErrImagePull" in outcome.message
    assert "eoepca/not-here:1.0" in outcome.message
    assert run.run_id not in _namespaces(k8s)


def test_unschedulable_pod_fails_the_job_emulated(
    k8s: EmulatedKubernetes, tmp_path: Path, records: LogLines
):
    job = _job(_tool("eoepca/convert:latest", "echo hi"), "tool", {}, tmp_path / "job", records)
    run = _backend(k8s, tmp_path, node_selector={"oapip.test/pool": "gpu"}).submit(job)

    outcome = run.wait_for_completion()

    assert not outcome.success and "unschedulable" in outcome.message
    assert run.run_id not in _namespaces(k8s)


def test_failed_tool_keeps_the_namespace_when_asked_emulated(
    k8s: EmulatedKubernetes, tmp_path: Path, records: LogLines
):
    job = _job(
        _tool("eoepca/convert:latest", "echo failing >&2; exit 3"),
        "tool",
        {},
        tmp_path / "job",
        records,
    )
    run = _backend(k8s, tmp_path, keep_namespace_on_failure=True).submit(job)

    outcome = run.wait_for_completion()

    assert not outcome.success and "failed" in outcome.message
    assert "permanentFail" in outcome.message, outcome.message  # Calrissian's own words
    assert run.run_id in _namespaces(k8s)
    assert not recorded_runs(job.workdir)  # the run ended here: nobody is to delete it
    assert any("permanentFail" in line or "exit" in line.lower() for line in records.lines)
    run.cancel()
    assert run.run_id not in _namespaces(k8s)


def test_dismiss_deletes_the_job_and_the_namespace_emulated(
    k8s: EmulatedKubernetes, tmp_path: Path, records: LogLines, podman: PodmanService
):
    job = _job(
        _tool("eoepca/convert:latest", "sleep 120", "sleeper"),
        "sleeper",
        {},
        tmp_path / "job",
        records,
    )
    run = _backend(k8s, tmp_path).submit(job)
    namespace = run.run_id

    def tool_pod_running() -> bool:
        return any(
            p["status"].get("phase") == "Running" and "job-name" not in p["metadata"]["labels"]
            for p in k8s.list("pods", namespace)
        )

    assert k8s.wait_for(tool_pod_running, 120), records.lines[-20:]
    run.cancel()

    assert namespace not in _namespaces(k8s)
    assert not k8s.list("pods", namespace) and not k8s.list("jobs", namespace)
    containers = podman.podman("ps", "-a", "--format", "{{.Names}}")
    assert namespace not in containers
    assert ("DELETE", f"/apis/batch/v1/namespaces/{namespace}/jobs/calrissian") in [
        (m, p.split("?")[0]) for m, p in k8s.requests
    ]


def test_a_killed_job_process_leaves_no_namespace_behind_emulated(
    k8s: EmulatedKubernetes, tmp_path: Path, records: LogLines
):
    """The fast worker SIGKILLs a dismissed job's process, then stops the runs it recorded:
    the namespace the run recorded is deleted by a backend built from settings."""
    job = _job(
        _tool("eoepca/convert:latest", "sleep 120", "sleeper"),
        "sleeper",
        {},
        tmp_path / "job",
        records,
    )
    run = _backend(k8s, tmp_path).submit(job)
    namespace = run.run_id
    assert k8s.wait_for(lambda: bool(k8s.list("pods", namespace)), 60)
    (recorded,) = recorded_runs(job.workdir)
    assert (recorded.backend, recorded.handle) == ("calrissian", {"namespace": namespace})

    # What the worker does once the job's process is gone (it never returned from the wait).
    settings = Settings(calrissian=CalrissianSettings(kubeconfig=tmp_path / "kubeconfig"))
    log = logging.getLogger(f"test.calrissian.stop.{id(records)}")
    log.addHandler(records)
    stopped = stop_recorded_runs(job.workdir, settings, log)

    assert stopped == [f"calrissian run {namespace}"]
    assert k8s.wait_for(lambda: namespace not in _namespaces(k8s), 60), k8s.diagnostics()
    assert not recorded_runs(job.workdir)
    assert any(
        f"deleting the Calrissian job and namespace {namespace}" in line for line in records.lines
    )
