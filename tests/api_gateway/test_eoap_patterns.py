"""The eoap application-package patterns 1-12 deploy, as their authors wrote them, and
their processes take the inputs of the patterns' parameter files.

Pattern 12 imports eoap/schemas from ``raw.githubusercontent.com``, which the tests never
reach: its two schema files (``tests.reference``) are served by the loopback file server
and the package names that server instead (the only change to it). The embedded stack
lists the loopback network in ``OAPIP_ALLOWED_NETWORKS`` for its file server; without
it the guard refuses the import (``test_an_import_goes_through_the_outbound_guard``).

Executing with the parameter files is not possible here: their items are Planetary
Computer URLs, which the engine checks (resolves) before it creates a job; the inputs
are checked against the process descriptions the engine serves instead.
"""

from __future__ import annotations

import asyncio
import json
import shutil

import pytest
import requests

import cwlpkg as cwl
from api_gateway.package_imports import resolve_imports
from core.exceptions import InvalidPackage
from core.settings import OutboundSettings, Settings
from tests import eoap_patterns, reference
from tests.conftest import Engine, FileServer
from tests.ogc_schemas import validate
from tests.support import deploy_cwl


def _served_schemas(file_server: FileServer) -> str:
    """The base URL at which the file server serves eoap/schemas' files."""
    target = file_server.root / "eoap-schemas" / "main"
    if not target.exists():
        shutil.copytree(reference.eoap_patterns() / "schemas", target)
    return f"{file_server.url}/eoap-schemas/main/"


def _package(number: int, file_server: FileServer) -> str:
    text = eoap_patterns.package_text(reference.eoap_patterns(), number)
    return text.replace(eoap_patterns.SCHEMAS_MAIN, _served_schemas(file_server))


@pytest.mark.parametrize("number", eoap_patterns.NUMBERS)
def test_every_pattern_deploys_and_takes_its_parameters(
    number: int, api: str, file_server: FileServer
) -> None:
    process_id = deploy_cwl(api, _package(number, file_server))
    assert process_id == f"pattern-{number}"

    response = requests.get(f"{api}/processes/{process_id}", timeout=30)
    assert response.status_code == 200
    description = response.json()
    validate(description, "process")
    params = eoap_patterns.params(reference.eoap_patterns(), number)
    accepted = cwl.validate_inputs(description, params)
    assert set(accepted) == set(params)


def test_pattern_12_is_stored_with_the_schemas_it_imports(
    engine: Engine, api: str, user: str, file_server: FileServer
) -> None:
    deploy_cwl(api, _package(12, file_server))

    package = requests.get(f"{api}/processes/pattern-12/package", timeout=30).json()
    assert "$import" not in json.dumps(package)
    base = _served_schemas(file_server)
    types = package["$graph"][0]["requirements"][1]["types"]
    assert f"{base}ogc.yaml#BBox" in [t["name"] for t in types]
    description = requests.get(f"{api}/processes/pattern-12", timeout=30).json()
    crs = description["inputs"]["aoi"]["schema"]["properties"]["crs"]
    assert crs == {"type": "string", "enum": ["CRS84", "CRS84h"]}

    # Self-contained: it deploys again, as it is, with no schema server to ask.
    copied = requests.post(
        f"{engine.api(user + '-copy')}/processes",
        json=package,
        headers={"Content-Type": "application/cwl+json"},
        timeout=60,
    )
    assert copied.status_code == 201, copied.text


def test_a_missing_schema_is_a_400_naming_it(api: str, file_server: FileServer) -> None:
    text = _package(12, file_server).replace("string_format.yaml", "no-such.yaml")

    response = requests.post(
        f"{api}/processes",
        data=text.encode(),
        headers={"Content-Type": "application/cwl+yaml"},
        timeout=30,
    )

    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert f"{_served_schemas(file_server)}no-such.yaml, which answered HTTP 404" in detail


def test_an_import_goes_through_the_outbound_guard(file_server: FileServer) -> None:
    text = _package(12, file_server)

    with pytest.raises(InvalidPackage, match="OAPIP_ALLOWED_NETWORKS"):
        asyncio.run(resolve_imports(text, Settings()))
    allowed = Settings(outbound=OutboundSettings(allowed_networks=["127.0.0.1/32"]))
    doc = asyncio.run(resolve_imports(text, allowed))
    assert isinstance(doc, dict) and "$import" not in json.dumps(doc)
    # A package that imports nothing is only parsed.
    text = eoap_patterns.package_text(reference.eoap_patterns(), 1)
    assert asyncio.run(resolve_imports(text, Settings())) == cwl.parse_document(text)
