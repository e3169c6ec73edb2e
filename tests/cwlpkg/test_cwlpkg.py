"""The package as callers use it (``import cwlpkg as cwl``): its public names, and the
real application packages through the whole sequence, to a cwltool run.

Descriptions are checked against the official OGC Part 1 1.0 ``process.yaml``
(``tests.ogc_schemas``). The network is blocked in this process for every test
(``tests/cwlpkg/conftest.py``); the one cwltool run is a subprocess with a stand-in
``convert.sh``.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

import cwlpkg as cwl
from tests.cwlpkg.samples import load
from tests.ogc_schemas import validate as validate_ogc

# package -> (process chosen without ?w=, version, inputs, outputs)
EXPECTED = {
    "convert-url-app.cwl": ("convert-url", "0.1.2", ["fn", "url", "size"], ["converted_image"]),
    "app-water-bodies-cloud-native.1.5.0.cwl": (
        "water_bodies",
        "1.4.1",  # the file's s:softwareVersion, whatever its name says
        ["aoi", "epsg", "stac_items", "bands"],
        ["stac_catalog"],
    ),
    "water-bodies-1.4.1-dash-id.cwl": (
        "water-bodies",
        "1.4.1",
        ["aoi", "epsg", "stac_items", "bands"],
        ["stac"],
    ),
    "wes-example-app-package.cwl": (
        "water_bodies",
        "1.1.7",
        ["aoi", "epsg", "stac_items"],
        ["stac_catalog"],
    ),
}


def without_ogc_extras(description: dict[str, Any]) -> None:
    for key in ("links", "jobControlOptions", "outputTransmission"):
        assert key not in description


def test_public_surface() -> None:
    assert sorted(cwl.__all__) == [
        "check_package_files",
        "describe",
        "entrypoint",
        "file_urls",
        "inline_imports",
        "input_schema",
        "job_order",
        "pack",
        "parse_document",
        "parse_yaml",
        "remote_imports",
        "select_workflow",
        "step_count",
        "validate_document",
        "validate_inputs",
        "workflow_ids",
    ]
    assert all(callable(getattr(cwl, name)) and getattr(cwl, name).__doc__ for name in cwl.__all__)


# --- every real package -----------------------------------------------------------


def test_every_real_package_is_expected(app_packages: Path) -> None:
    names = sorted(p.name for p in app_packages.glob("*.cwl"))
    assert names == sorted(EXPECTED), "a package was added: add it to EXPECTED"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_package_deploys_and_describes(
    name: str, app_packages: Path, capsys: pytest.CaptureFixture
) -> None:
    process_id, version, inputs, outputs = EXPECTED[name]
    doc = load(app_packages / name)

    cwl.validate_document(doc)
    assert cwl.select_workflow(doc, None) == process_id
    description = cwl.describe(doc, process_id)

    validate_ogc(description, "process")
    without_ogc_extras(description)
    assert description["id"] == process_id
    assert description["version"] == version
    assert list(description["inputs"]) == inputs
    assert list(description["outputs"]) == outputs
    schema = cwl.input_schema(description)
    Draft202012Validator.check_schema(schema)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_package_packs_with_main_entrypoint(name: str, app_packages: Path) -> None:
    doc = load(app_packages / name)
    process_id = cwl.select_workflow(doc, None)
    packed = cwl.pack(doc, process_id)

    assert json.loads(json.dumps(packed)) == packed
    assert cwl.entrypoint(packed) == "main"
    assert packed["cwlVersion"] == "v1.0"
    assert "$schemas" not in packed and "schemas" not in packed
    # A packed document deploys too (users upload `cwltool --pack` output).
    cwl.validate_document(packed)
    assert cwl.select_workflow(packed, None) == "main"
    assert (
        cwl.describe(packed, "main")["inputs"].keys()
        == cwl.describe(doc, process_id)["inputs"].keys()
    )


def test_packed_convert_url_runs_with_cwltool(tmp_path: Path, convert_url: dict[str, Any]) -> None:
    """The packed workflow runs as ``cwltool packed.cwl#main job.json`` (no container)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stand_in = bin_dir / "convert.sh"
    stand_in.write_text('#!/bin/sh\necho "$@" > converted.txt\n')
    stand_in.chmod(stand_in.stat().st_mode | stat.S_IEXEC)
    doc = convert_url
    description = cwl.describe(doc, "convert-url")
    inputs = cwl.validate_inputs(description, {"fn": {"value": "resize"}, "size": "10%"})
    packed = cwl.pack(doc, "convert-url")
    (tmp_path / "packed.cwl").write_text(json.dumps(packed))
    (tmp_path / "job.json").write_text(json.dumps(cwl.job_order(doc, "convert-url", inputs)))

    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "cwltool",
            "--no-container",
            "--outdir",
            str(tmp_path / "out"),
            f"{tmp_path / 'packed.cwl'}#{cwl.entrypoint(packed)}",
            str(tmp_path / "job.json"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
        timeout=120,
    )

    assert run.returncode == 0, run.stderr
    output = json.loads(run.stdout)["converted_image"]
    assert output["class"] == "Directory"
    converted = Path(output["path"]) / "converted.txt"
    default_url = description["inputs"]["url"]["schema"]["default"]
    assert converted.read_text() == f"resize --url {default_url} 10%\n"
