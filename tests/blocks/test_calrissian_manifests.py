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
from tests.pod_security import pod_spec_of, violations
from tests.support import settings_from

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
    # As the Helm chart sets the engine up: cluster roles bound in each job namespace.
    "helm-chart-roles": {
        "engine_role": "oapip-job-engine",
        "engine_account": "eoepca:oapip-worker",
        "pod_role": "oapip-job-calrissian",
        "blocked_cidrs": ["169.254.0.0/16", "10.0.0.0/8", "fd00:ec2::254/128"],
        "run_as_user": 2000,
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
    assert assert_valid(manifests) == 10


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


def _objects(tmp_path: Path, **values: Any) -> tuple[CalrissianJobSpec, list[dict[str, Any]]]:
    workflow = {"class": "CommandLineTool", "id": "main"}
    spec = CalrissianBackend(**values).job_spec(_job(workflow, "#main", "p", tmp_path))
    manifests = job_manifests(spec, workflow, "#main", {}, {"f0-in": b"data"})
    return spec, [*manifests, collector_pod_manifest(spec)]


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_engine_pods_meet_restricted_and_the_namespace_enforces_baseline(
    values: dict[str, Any], tmp_path: Path
):
    """Calrissian's pod, copy-inputs and collect pass `restricted`; the namespace makes
    the cluster enforce `baseline` on every pod in it (Calrissian's tool pods can meet no
    more: it sets only runAsUser/runAsGroup on them) and warn about `restricted`."""
    spec, objects = _objects(tmp_path, **values)
    namespace = objects[0]
    assert namespace["kind"] == "Namespace"
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
    assert labels["pod-security.kubernetes.io/warn"] == "restricted"
    assert labels["pod-security.kubernetes.io/audit"] == "restricted"
    assert labels["app.kubernetes.io/managed-by"] == "oapip"
    pods = [pod_spec_of(o) for o in objects if pod_spec_of(o)]
    assert len(pods) == 2
    for metadata, pod in pods:
        assert violations(pod, "restricted", metadata) == []
        assert pod["securityContext"]["runAsUser"] == spec.run_as_user
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert {"cpu", "memory"} <= container["resources"]["limits"].keys()
            assert {"cpu", "memory"} <= container["resources"]["requests"].keys()


def test_tools_run_under_an_account_with_no_token_and_no_rights(tmp_path: Path):
    spec, objects = _objects(tmp_path, **VALUE_SETS["helm-chart-roles"])
    job = next(o for o in objects if o["kind"] == "Job")
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    tool_account = args[args.index("--pod-serviceaccount") + 1]
    assert (
        tool_account == "calrissian-tool" != job["spec"]["template"]["spec"]["serviceAccountName"]
    )
    accounts = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ServiceAccount"}
    assert accounts[tool_account]["automountServiceAccountToken"] is False
    bound = [s["name"] for o in objects if o["kind"] == "RoleBinding" for s in o["subjects"]]
    assert tool_account not in bound and "calrissian" in bound
    collect = objects[-1]["spec"]
    assert collect["serviceAccountName"] == tool_account
    assert collect["automountServiceAccountToken"] is False


def test_the_engine_binds_its_rights_first_and_calrissian_to_the_pod_role(tmp_path: Path):
    _, objects = _objects(tmp_path, **VALUE_SETS["helm-chart-roles"])
    kinds = [o["kind"] for o in objects]
    assert kinds[:3] == ["Namespace", "RoleBinding", "NetworkPolicy"]
    engine = objects[1]
    assert engine["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "oapip-job-engine",
    }
    assert engine["subjects"] == [
        {"kind": "ServiceAccount", "name": "oapip-worker", "namespace": "eoepca"}
    ]
    calrissian = [o for o in objects if o["kind"] == "RoleBinding"][1]
    assert calrissian["roleRef"]["name"] == "oapip-job-calrissian"
    assert "Role" not in kinds  # no Role: the engine needs no pod rights of its own
    assert kinds.index("NetworkPolicy") < kinds.index("Job")


def test_job_pods_get_no_ingress_and_no_metadata_address(tmp_path: Path):
    _, objects = _objects(tmp_path, **VALUE_SETS["helm-chart-roles"])
    (policy,) = [o for o in objects if o["kind"] == "NetworkPolicy"]
    spec = policy["spec"]
    assert spec["podSelector"] == {} and spec["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in spec  # every pod of the namespace: nothing may connect to it
    dns, everywhere = spec["egress"]
    assert {p["port"] for p in dns["ports"]} == {53} and "to" not in dns
    blocks = {peer["ipBlock"]["cidr"]: peer["ipBlock"].get("except") for peer in everywhere["to"]}
    assert blocks == {
        "0.0.0.0/0": ["169.254.0.0/16", "10.0.0.0/8"],
        "::/0": ["fd00:ec2::254/128"],
    }


def test_no_secret_of_the_engine_reaches_a_job_namespace(tmp_path: Path):
    """The engine's credentials (S3, Workspace, Toil WES, Prefect) never go into a job
    namespace: no Secret object, no secret reference, no value anywhere in the objects."""
    secrets = {
        "S3_ACCESS_KEY": "s3-access-0001",
        "S3_SECRET_KEY": "s3-secret-0002",
        "STAGEIN_S3_SECRET_KEY": "stagein-secret-0003",
        "OAPIP_TOIL_WES_URL": "https://hpc.example.org/ga4gh/wes/v1/",
        "OAPIP_TOIL_WES_USER": "wes-user-0004",
        "OAPIP_TOIL_WES_PASSWORD": "wes-password-0005",
        "OAPIP_WORKSPACE_API_TOKEN": "workspace-token-0006",
        "PREFECT_API_AUTH_STRING": "admin:prefect-0007",
        "OAPIP_CALRISSIAN_ENGINE_ROLE": "oapip-job-engine",
        "OAPIP_CALRISSIAN_ENGINE_ACCOUNT": "eoepca:oapip-worker",
    }
    backend = CalrissianBackend.from_settings(settings_from(secrets))
    workflow = {"class": "CommandLineTool", "id": "main"}
    spec = backend.job_spec(_job(workflow, "#main", "p", tmp_path))
    objects = [*job_manifests(spec, workflow, "#main", {}), collector_pod_manifest(spec)]
    text = json.dumps(objects)
    for name, value in secrets.items():
        if "-000" in value:
            assert value not in text, name
    assert "Secret" not in {o["kind"] for o in objects}
    assert "secretKeyRef" not in text and "envFrom" not in text
