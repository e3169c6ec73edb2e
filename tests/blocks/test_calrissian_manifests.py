"""The Calrissian backend's manifests: right objects, right values, valid (Kubernetes 1.32, strict).

Pure functions, no cluster: every value set below is validated with ``kubernetes-validate``
in strict mode, which rejects unknown or misplaced fields.
"""

from __future__ import annotations

import base64
import json
import re
import tarfile
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest

import cwlpkg as cwl
from blocks.backend import CwlJob
from blocks.calrissian import CalrissianBackend
from blocks.calrissian_manifests import (
    RESULTS_MARK,
    CalrissianJobSpec,
    JobResources,
    collector_pod_manifest,
    job_manifests,
    job_resources,
    namespace_name,
    ship_local_inputs,
)
from blocks.calrissian_results import unpack_results
from tests.k8s_schema import assert_valid

JOB_ID = "0b6c5e1a-3f2d-4c1e-9a6b-2f1d0c9e8a7b"


def _packed(path: Path, workflow_id: str) -> tuple[dict[str, Any], str]:
    packed = cwl.pack(cwl.parse_document(path.read_bytes(), base_uri=path.as_uri()), workflow_id)
    return packed, cwl.entrypoint(packed)


@pytest.fixture(scope="module")
def convert_url(app_packages: Path) -> tuple[dict[str, Any], str]:
    return _packed(app_packages / "convert-url-app.cwl", "convert-url")


@pytest.fixture(scope="module")
def water_bodies(app_packages: Path) -> tuple[dict[str, Any], str]:
    return _packed(app_packages / "app-water-bodies-cloud-native.1.5.0.cwl", "water_bodies")


def _job(workflow: dict[str, Any], entrypoint: str, process_id: str, tmp_path: Path, **kw: Any):
    return CwlJob(
        job_id=JOB_ID,
        process_id=process_id,
        workflow=workflow,
        entrypoint=entrypoint,
        job_order=kw.pop("job_order", {"fn": "resize", "url": "https://x/a.png", "size": "50%"}),
        workdir=tmp_path,
    )


def _by_kind(manifests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        m["kind"] + ("/" + m["metadata"]["name"] if m["kind"] == "ConfigMap" else ""): m
        for m in manifests
    }


VALUE_SETS = {
    "site-defaults": {},
    "node-selector-and-pull-secrets": {
        "node_selector": {"k8s.provider/node-pool": "processing"},
        "image_pull_secrets": ["registry-a", "registry-b"],
        "storage_class": "longhorn",
        "job_timeout_s": 86400,
    },
    "larger-budget": {
        "default_max_ram_mib": 8192,
        "default_max_cores": 8,
        "default_volume_mib": 50 * 1024,
        "calrissian_image": "registry.example.org/calrissian:0.18.1",
        "namespace_prefix": "proc",
    },
}


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
@pytest.mark.parametrize("package", ["convert_url", "water_bodies"])
def test_every_manifest_validates_strictly(
    request: pytest.FixtureRequest, package: str, values: dict[str, Any], tmp_path: Path
):
    workflow, entrypoint = request.getfixturevalue(package)
    backend = CalrissianBackend(**values)
    job = _job(workflow, entrypoint, package.replace("_", "-"), tmp_path)
    spec = backend.job_spec(job)
    manifests = job_manifests(spec, workflow, entrypoint, job.job_order)
    manifests.append(collector_pod_manifest(spec))
    assert assert_valid(manifests) == 8


def test_shipped_inputs_validate_and_are_copied_onto_the_volume(convert_url, tmp_path: Path):
    workflow, entrypoint = convert_url
    image = tmp_path / "in put.png"
    image.write_bytes(b"\x89PNG fake")
    order = {"image": {"class": "File", "location": image.as_uri()}, "size": "50%"}
    shipped, files = ship_local_inputs(order)
    assert shipped["image"]["location"].startswith("file:///calrissian/inputs/f0-")
    assert list(files.values()) == [b"\x89PNG fake"]
    spec = CalrissianBackend().job_spec(_job(workflow, entrypoint, "convert-url", tmp_path))
    manifests = _by_kind(job_manifests(spec, workflow, entrypoint, shipped, files))
    assert_valid(manifests.values())
    data = manifests["ConfigMap/calrissian-inputs"]["binaryData"]
    assert base64.b64decode(next(iter(data.values()))) == b"\x89PNG fake"
    init = manifests["Job"]["spec"]["template"]["spec"]["initContainers"][0]
    assert "/calrissian/inputs" in init["command"][-1]


def test_too_large_local_inputs_are_refused(tmp_path: Path):
    big = tmp_path / "big.bin"
    big.write_bytes(b"0" * (1024 * 1024))
    with pytest.raises(ValueError, match="ConfigMap"):
        ship_local_inputs({"x": {"class": "File", "location": big.as_uri()}})


def test_the_job_carries_what_calrissian_needs(water_bodies, tmp_path: Path):
    workflow, entrypoint = water_bodies
    backend = CalrissianBackend(**VALUE_SETS["node-selector-and-pull-secrets"])
    job = _job(workflow, entrypoint, "water-bodies", tmp_path, job_order={"stac_items": []})
    spec = backend.job_spec(job)
    objects = _by_kind(job_manifests(spec, workflow, entrypoint, job.job_order))
    ns = spec.namespace
    assert all(m["metadata"].get("namespace", ns) == ns for m in objects.values())
    rules = objects["Role"]["rules"]
    assert {
        "resources": ["pods"],
        "verbs": ["create", "get", "list", "watch", "delete"],
    }.items() <= rules[0].items()
    assert rules[1]["resources"] == ["pods/log"] and rules[1]["verbs"] == ["get"]
    pvc = objects["PersistentVolumeClaim"]["spec"]
    assert pvc["accessModes"] == ["ReadWriteMany"]
    assert pvc["resources"]["requests"]["storage"] == "10240Mi"
    assert pvc["storageClassName"] == "longhorn"
    pod = objects["Job"]["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    assert args[args.index("--max-ram") + 1] == "1024Mi"
    assert args[args.index("--max-cores") + 1] == "2"
    assert args[-2:] == [f"/etc/oapip/workflow.cwl#{entrypoint}", "/etc/oapip/job.json"]
    for flag in ("--usage-report", "--tool-logs-basepath", "--pod-nodeselectors", "--stdout"):
        assert flag in args
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["CALRISSIAN_POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert pod["nodeSelector"] == {"k8s.provider/node-pool": "processing"}
    assert pod["imagePullSecrets"] == [{"name": "registry-a"}, {"name": "registry-b"}]
    assert objects["Job"]["spec"]["activeDeadlineSeconds"] == 86400
    config = objects["ConfigMap/calrissian-workflow"]["data"]
    assert json.loads(config["workflow.cwl"]) == workflow
    assert json.loads(config["node-selectors.yaml"]) == {"k8s.provider/node-pool": "processing"}


def test_resources_come_from_the_resource_requirements():
    tool = {
        "class": "CommandLineTool",
        "requirements": {
            "ResourceRequirement": {
                "ramMax": 3000,
                "coresMin": 3,
                "tmpdirMax": 6000,
                "outdirMax": 5000,
            }
        },
    }
    other = {
        "class": "CommandLineTool",
        "hints": [
            {
                "class": "ResourceRequirement",
                "ramMin": 512,
                "coresMax": "$(inputs.n)",
                "outdirMin": 2000,
            }
        ],
    }
    got = job_resources({"$graph": [tool, other]})
    assert got == JobResources(max_ram_mib=3000, max_cores=3, volume_mib=13000)
    assert job_resources({"class": "CommandLineTool"}) == JobResources(1024, 2, 10240)


@pytest.mark.parametrize(
    "workflow_id",
    ["convert-url", "Water_Bodies.Detection", "a" * 200, "---", "UPPER/and spaces"],
)
def test_namespace_names_are_dns_labels_and_unique_per_job(workflow_id: str):
    first = namespace_name(workflow_id, JOB_ID)
    second = namespace_name(workflow_id, JOB_ID.replace("0b6c", "1b6c"))
    for name in (first, second):
        assert len(name) <= 63 and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name), name
        assert name.endswith(JOB_ID[-12:])
    assert first != second


def test_results_come_back_with_local_locations(tmp_path: Path):
    archive = BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        data = b"image bytes"
        info = tarfile.TarInfo("results/abc/out.png")
        info.size = len(data)
        tar.addfile(info, BytesIO(data))
    outputs = {
        "converted_image": {
            "class": "File",
            "location": "file:///calrissian/results/abc/out.png",
            "path": "/calrissian/results/abc/out.png",
            "basename": "out.png",
        }
    }
    log = (
        f"{json.dumps(outputs)}\n{RESULTS_MARK}\n{base64.b64encode(archive.getvalue()).decode()}\n"
    )
    got = unpack_results(log, tmp_path)["converted_image"]
    assert Path(got["path"]).read_bytes() == b"image bytes"
    assert got["location"] == Path(got["path"]).as_uri()


def test_the_backend_spec_follows_the_site_settings(tmp_path: Path):
    spec = CalrissianBackend(default_max_ram_mib=2048).job_spec(
        _job({"class": "CommandLineTool"}, "#main", "p", tmp_path)
    )
    assert isinstance(spec, CalrissianJobSpec) and spec.resources.max_ram_mib == 2048
