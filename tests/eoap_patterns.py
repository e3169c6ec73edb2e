"""The eoap application-package patterns 1-12 (``tests.reference.eoap_patterns``).

Each pattern is a CWL workflow; its parameter file is the ``params = {...}`` cell of the
pattern's notebook (what the notebook writes to ``.params.yaml`` for cwltool, minus the
stage-out settings it adds). Pattern 12 imports eoap/schemas' ``ogc.yaml`` and
``string_format.yaml`` from ``main``: :func:`schema_documents` are those files, by the
URL the package names them with.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import cwlpkg as cwl

__all__ = ["NUMBERS", "SCHEMAS_MAIN", "package_text", "params", "schema_documents"]

NUMBERS = range(1, 13)
SCHEMAS_MAIN = "https://raw.githubusercontent.com/eoap/schemas/main/"


def package_text(folder: Path, number: int) -> str:
    return (folder / f"pattern-{number}.cwl").read_text()


def params(folder: Path, number: int) -> dict[str, Any]:
    """The inputs of pattern ``number`` as its notebook's ``params`` cell writes them."""
    notebook = json.loads((folder / f"pattern-{number}.ipynb").read_text())
    for cell in notebook["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "code" and source.startswith("params = "):
            literal = source.removeprefix("params = ").split("\nadditional_params")[0]
            return ast.literal_eval(literal.strip())
    raise LookupError(f"pattern-{number}.ipynb has no `params = {{...}}` cell")


def schema_documents(folder: Path) -> dict[str, Any]:
    """URL (as pattern 12 imports it) -> parsed eoap/schemas document."""
    return {
        SCHEMAS_MAIN + path.name: cwl.parse_yaml(path.read_text())
        for path in sorted((folder / "schemas").glob("*.yaml"))
    }
