"""``docs/walkthrough.ipynb`` runs green, cell by cell, against the embedded stack.

The notebook reads where the engine, the package and the image are from the environment
(its first cell); here they are the session's engine and the loopback file server (the
EOEPCA ``convert-url`` package from ``tests.reference``, a tiny PNG), and its kernel is
this interpreter's (ipykernel), driven by nbclient.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import FileServer

NOTEBOOK = Path(__file__).resolve().parents[2] / "docs" / "walkthrough.ipynb"


def test_the_walkthrough_notebook_runs_green(
    api: str,
    app_packages: Path,
    file_server: FileServer,
    png_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OAPIP_WALKTHROUGH_API", api)
    monkeypatch.setenv("OAPIP_WALKTHROUGH_PACKAGE", f"{file_server.url}/convert-url-app.cwl")
    monkeypatch.setenv("OAPIP_WALKTHROUGH_IMAGE", png_url)
    monkeypatch.setenv("OAPIP_WALKTHROUGH_TIMEOUT_S", "120")
    notebook = nbformat.read(NOTEBOOK, as_version=4)

    NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()  # raises CellExecutionError, with the cell and its traceback, on a failure

    printed = [
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    ]
    text = "".join(printed)
    assert "Part 2 among them" in text
    assert "successful 100%" in text
    assert "logo-resize.png: " in text and "bytes of image/png" in text
    assert "process: 204" in text
