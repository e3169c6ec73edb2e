"""Reference material the tests hold the engine against, found through one setting.

Three folders of files nobody on this project wrote:

* ``app-packages/``: real EOEPCA application packages (CWL) and the request bodies of the
  EOEPCA deployment guide's walkthrough;
* ``ogcapi-processes/``: the official OGC API - Processes schemas and examples (Part 1
  1.0, Part 2 DRU), and the test package of the Part 2 ETS;
* ``eoap-patterns/``: the twelve eoap application-package patterns (CWL), the notebooks
  whose ``params`` cells are their parameter files, and the eoap/schemas files pattern
  12 imports, as they were when the patterns were written (``schemas/``);
* ``wps-schemas/``: the official XML schemas of WPS 1.0.0 and 2.0 and of the OWS Common
  versions they import (1.1.0, 2.0), laid out by URL (:data:`LAYOUT`). The W3C schemas
  they import (xlink, xml, XMLSchema) come from the ``xmlschema`` package, or from
  ``www.w3.org/`` in that folder when it has them (``tests/wps_schemas.py``).

They are looked for in ``$OAPIP_REFERENCE_DIR`` (default: ``shared/`` beside the
repository, as CI provides it). A folder missing there (or missing a file the tests
use) is fetched from its public source, at a pinned commit, into ``.reference/`` in the
repository (git-ignored) and kept for later runs. When that fails too (no network), a
test that needs the folder is skipped with a reason that names the setting::

    from tests import reference

    packages = reference.app_packages()  # a Path, or the calling test is skipped

Only the files listed below are fetched: the ones the tests read, and every schema file
the OGC validator (``tests/ogc_schemas.py``) can reach through ``$ref``
(``tests/test_reference.py`` checks that list against the schemas).
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = [
    "APP_PACKAGES",
    "CACHE",
    "EOAP_PATTERNS",
    "LAYOUT",
    "OGC_SCHEMAS",
    "ROOT",
    "SETTING",
    "SOURCES",
    "Source",
    "app_packages",
    "eoap_patterns",
    "find",
    "heredoc_json",
    "locate",
    "ogc_schemas",
    "reference_dir",
    "wps_schemas",
    "WPS_SCHEMAS",
]

SETTING = "OAPIP_REFERENCE_DIR"
ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".reference"
APP_PACKAGES = "app-packages"
EOAP_PATTERNS = "eoap-patterns"
OGC_SCHEMAS = "ogcapi-processes"
WPS_SCHEMAS = "wps-schemas"
# Per request: a machine without internet access fails fast instead of hanging the run.
TIMEOUT_S = 10


@dataclass(frozen=True)
class Source:
    """Files of one public GitHub repository at one commit.

    ``files`` maps a path in the reference folder to the path in the repository.
    ``heredocs`` (for request bodies that exist only inside a page of documentation)
    maps a path in the folder to ``(page, heading)``: the JSON written in the shell
    here-document (``<<EOF`` ... ``EOF``) of the first code block under that heading.
    """

    repo: str
    commit: str
    files: dict[str, str]
    heredocs: dict[str, tuple[str, str]] | None = None

    def url(self, path: str) -> str:
        """The raw URL of ``path`` (in the repository) at the pinned commit."""
        return f"https://raw.githubusercontent.com/{self.repo}/{self.commit}/{path}"

    def paths(self) -> list[str]:
        """Every path this source puts in the reference folder."""
        return [*self.files, *(self.heredocs or {})]


def _under(folder: str, repo_folder: str, names: str, suffix: str) -> dict[str, str]:
    """``{folder/repo_folder/name.suffix: repo_folder/name.suffix}`` for each name."""
    return {
        f"{folder}/{repo_folder}/{name}{suffix}": f"{repo_folder}/{name}{suffix}"
        for name in names.split()
    }


def _by_url(folder: str, names: str) -> dict[str, str]:
    """``{schemas.opengis.net/folder/name.xsd: <repository path>}`` for each name, from the
    copy of schemas.opengis.net in highsource/ogc-schemas."""
    return {
        f"schemas.opengis.net/{folder}/{name}.xsd": (
            f"schemas/src/main/resources-original/ogc/{folder}/{name}.xsd"
        )
        for name in names.split()
    }


_OWS = (
    "ows19115subset owsAll owsCommon owsContents owsDataIdentification owsDomainType "
    "owsExceptionReport owsGetCapabilities owsGetResourceByID owsInputOutputData owsManifest "
    "owsOperationsMetadata owsServiceIdentification owsServiceProvider"
)
_GUIDE_EXAMPLES = "scripts/processing/oapip/examples"
_PART1 = "part1-1.0__commit-81898e9"
_MASTER = "master__part1-2.0-draft_part2-dru_part3_part4"

#: Where each reference folder comes from (see the README of each folder in ``shared/``).
SOURCES: dict[str, list[Source]] = {
    APP_PACKAGES: [
        Source(
            "EOEPCA/deployment-guide",
            "445f6d2f481752eb642c889c1c7c7b90d742edb9",
            files={
                "convert-url-app.cwl": f"{_GUIDE_EXAMPLES}/convert-url-app.cwl",
                "app-water-bodies-cloud-native.1.5.0.cwl": (
                    f"{_GUIDE_EXAMPLES}/app-water-bodies-cloud-native.1.5.0.cwl"
                ),
            },
            heredocs={
                "convert-url-deploy-request.json": (
                    "docs/building-blocks/oapip-engine.md",
                    "#### Deploy Process `convert`",
                ),
                "convert-url-execute-request.json": (
                    "docs/building-blocks/oapip-engine.md",
                    "#### Execute Process `convert`",
                ),
            },
        ),
        # An older revision of the guide: the same application with Workflow id `water-bodies`.
        Source(
            "EOEPCA/deployment-guide",
            "02abcfabae17049e5731fc21446bd1ffc15b7d8e",
            files={
                "water-bodies-1.4.1-dash-id.cwl": (
                    "deploy/samples/requests/processing/water-bodies-app.cwl"
                )
            },
        ),
        Source(
            "ZOO-Project/zoo-wes-runner",
            "b6f525fcfa0cd6546f8facd2197c089f21296e4c",
            files={"wes-example-app-package.cwl": "extras/example/app-package.cwl"},
        ),
    ],
    OGC_SCHEMAS: [
        Source(
            "opengeospatial/ogcapi-processes",
            "81898e9b9c9b12be5ba6d84c9849e6a78cc64b78",
            files={
                **_under(
                    _PART1,
                    "core/openapi/schemas",
                    "additionalParameter bbox binaryInputValue confClasses descriptionType "
                    "exception execute format inlineOrRefData inputDescription inputValue "
                    "inputValueNoObject jobControlOptions jobList landingPage link metadata "
                    "output outputDescription process processList processSummary "
                    "qualifiedInputValue reference results schema statusCode statusInfo "
                    "subscriber transmissionMode",
                    ".yaml",
                ),
                **_under(
                    _PART1,
                    "core/examples/json",
                    "ConfClasses Execute JobList LandingPage ProcessDescription ProcessList "
                    "Result StatusInfo-dismissed StatusInfo",
                    ".json",
                ),
            },
        ),
        Source(
            "opengeospatial/ogcapi-processes",
            "4a4a1dce7b919f969b681cf96186e85ed3f5da1f",
            files={
                **_under(_MASTER, "openapi/schemas/common-core", "link", ".yaml"),
                **_under(_MASTER, "openapi/schemas/cql2", "cql2 cql2-definitions", ".yaml"),
                **_under(
                    _MASTER,
                    "openapi/schemas/processes-core",
                    "apis bbox bbox-def-crs binaryValue collectionValue dataAccessAPIs "
                    "dataClasses descriptionType executionUnitRequirements format "
                    "inputDescription jobControlOptions link linkBase linkBaseExtended "
                    "metadata outputDescription process processSummary qualifiedValue "
                    "schema schemaAndOccurrences value valueNoObject",
                    ".yaml",
                ),
                **_under(
                    _MASTER,
                    "openapi/schemas/processes-dru",
                    "executionUnit inputBinding ogcapppkg ogcapppkg-array outputBinding",
                    ".yaml",
                ),
            },
        ),
        Source(
            "opengeospatial/ets-ogcapi-processes10-part2",
            "b42aeab7a2de2f2fdab12bd518d831b98ee44fc8",
            files={
                "ets-ogcapi-processes10-part2/ogcapppkg.json": (
                    "src/main/resources/org/opengis/cite/testdata/ogcapppkg.json"
                )
            },
        ),
    ],
    EOAP_PATTERNS: [
        Source(
            "eoap/application-package-patterns",
            "353070bda68170e3d606c4fe9334a51856d39e80",
            files={
                **{f"pattern-{n}.cwl": f"cwl-workflow/pattern-{n}.cwl" for n in range(1, 13)},
                **{f"pattern-{n}.ipynb": f"docs/pattern-{n}.ipynb" for n in range(1, 13)},
            },
        ),
        # The schemas pattern 12 imports from `main`, as they were when it was written
        # (September 2025: CRS symbols `CRS84`, as its parameters write them).
        Source(
            "eoap/schemas",
            "ef851d5647657977d02c4b0460c4c83591a87a53",
            files={
                "schemas/ogc.yaml": "ogc.yaml",
                "schemas/string_format.yaml": "string_format.yaml",
            },
        ),
    ],
    # A verbatim 2019 copy of schemas.opengis.net (the WPS schemas last changed in 2015);
    # every file the two WPS schemas include or import, but the W3C ones.
    WPS_SCHEMAS: [
        Source(
            "highsource/ogc-schemas",
            "18ce89928006eee08ed7e5a6ce6ea016436a444b",
            files={
                **_by_url(
                    "wps/1.0.0",
                    "wpsAll wpsDescribeProcess_request wpsDescribeProcess_response "
                    "wpsExecute_request wpsExecute_response wpsGetCapabilities_request "
                    "wpsGetCapabilities_response",
                ),
                **_by_url(
                    "wps/1.0.0/common",
                    "DescriptionType ProcessBriefType ProcessVersion RequestBaseType "
                    "ResponseBaseType WSDL",
                ),
                **_by_url(
                    "wps/2.0",
                    "dataTypes processDescription processProfile wps wpsCommon "
                    "wpsDescribeProcess wpsDismiss wpsExecute wpsGetCapabilities "
                    "wpsGetResult wpsGetStatus",
                ),
                **_by_url("ows/1.1.0", _OWS),
                **_by_url("ows/2.0", _OWS + " owsAdditionalParameters"),
            },
        ),
    ],
}

#: What each folder must look like when it is put under ``$OAPIP_REFERENCE_DIR``.
LAYOUT = {
    APP_PACKAGES: "the files of the table in its README.md",
    EOAP_PATTERNS: (
        "eoap-patterns/pattern-{1..12}.cwl and .ipynb (cwl-workflow/ and docs/ of "
        "github.com/eoap/application-package-patterns at 353070b) and "
        "eoap-patterns/schemas/{ogc,string_format}.yaml (github.com/eoap/schemas at ef851d5)"
    ),
    OGC_SCHEMAS: "the files of the table in its README.md",
    WPS_SCHEMAS: (
        "wps-schemas/schemas.opengis.net/{wps/1.0.0,wps/1.0.0/common,wps/2.0,ows/1.1.0,"
        "ows/2.0}/*.xsd, copied as they are from http://schemas.opengis.net/ (or from "
        "github.com/highsource/ogc-schemas at 18ce899, folder "
        "schemas/src/main/resources-original/ogc/); optionally "
        "wps-schemas/www.w3.org/{1999/xlink.xsd,2001/xml.xsd,2001/XMLSchema.xsd,"
        "2001/datatypes.xsd}"
    ),
}


def reference_dir() -> Path:
    """The folder named by ``$OAPIP_REFERENCE_DIR``; by default ``shared/`` beside the
    repository."""
    return Path(os.environ.get(SETTING) or ROOT.parent / "shared")


def app_packages() -> Path:
    """The ``app-packages`` folder; skips the calling test when it cannot be had."""
    return _require(APP_PACKAGES)


def eoap_patterns() -> Path:
    """The ``eoap-patterns`` folder; skips the calling test when it cannot be had."""
    return _require(EOAP_PATTERNS)


def ogc_schemas() -> Path:
    """The ``ogcapi-processes`` folder; skips the calling test when it cannot be had."""
    return _require(OGC_SCHEMAS)


def wps_schemas() -> Path:
    """The ``wps-schemas`` folder; skips the calling test when it cannot be had."""
    return _require(WPS_SCHEMAS)


def find(kind: str) -> Path | None:
    """The reference folder ``kind`` (``APP_PACKAGES``, ``EOAP_PATTERNS``, ``OGC_SCHEMAS``,
    ``WPS_SCHEMAS``), or None.

    Tried once per test session: the folder under the setting, then the cache, then a
    fetch into the cache.
    """
    found = _resolve(kind)
    return found if isinstance(found, Path) else None


def _require(kind: str) -> Path:
    found = _resolve(kind)
    if isinstance(found, Path):
        return found
    pytest.skip(found)


@functools.cache
def _resolve(kind: str) -> Path | str:
    """The folder ``kind``, or why it could not be had (a skip reason)."""
    return locate(kind, reference_dir(), CACHE)


def locate(kind: str, reference: Path, cache: Path) -> Path | str:
    """``reference/kind`` if it holds every listed file, else ``cache/kind`` (fetched
    there first if it is incomplete); a reason naming the setting when neither works."""
    for folder in (reference / kind, cache / kind):
        if _complete(folder, kind):
            return folder
    try:
        return _fetch(kind, cache)
    except (OSError, ValueError, LookupError) as exc:
        first = SOURCES[kind][0]
        return (
            f"reference material {kind}/ is not in {reference} (set {SETTING} to the folder "
            f"that holds it; default: shared/ beside the repository; layout: {LAYOUT[kind]}) "
            f"and could not be fetched from github.com/{first.repo} and others: "
            f"{type(exc).__name__}: {exc}"
        )


def _complete(folder: Path, kind: str) -> bool:
    return all((folder / path).is_file() for source in SOURCES[kind] for path in source.paths())


def _fetch(kind: str, cache: Path) -> Path:
    """Download every file of ``kind`` into ``cache/kind``, all or nothing."""
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / kind
    staging = Path(tempfile.mkdtemp(prefix=f"{kind}.", dir=cache))
    try:
        for source in SOURCES[kind]:
            for path, repo_path in source.files.items():
                _write(staging / path, _download(source.url(repo_path)))
            pages: dict[str, str] = {}
            for path, (page, heading) in (source.heredocs or {}).items():
                if page not in pages:
                    pages[page] = _download(source.url(page)).decode()
                body = heredoc_json(pages[page], heading)
                _write(staging / path, (json.dumps(body, indent=2) + "\n").encode())
        if not _complete(target, kind):  # else another test run fetched it meanwhile
            shutil.rmtree(target, ignore_errors=True)  # an incomplete earlier fetch
            staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
        return response.read()


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def heredoc_json(page: str, heading: str) -> object:
    """The JSON of the first ``<<EOF`` here-document after ``heading`` in a Markdown page."""
    after = page[page.index(heading) :]
    match = re.search(r"<<EOF[^\n]*\n(.*?)\n\s*EOF\n", after, re.DOTALL)
    if match is None:
        raise ValueError(f"no here-document under {heading!r}")
    return json.loads(match.group(1))
