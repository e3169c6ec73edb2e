"""The reference folders: found through the setting, fetched when absent, else skipped.

GitHub is never reached here: the fetch is exercised with a stand-in download that
serves the files of the reference folder itself (so these tests need it, as CI has it).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urljoin, urlparse

import pytest

from tests import reference
from tests.ogc_schemas import SCHEMA_FILES
from tests.wps_schemas import MAIN


def _stand_in_github(kind: str, folder: Path) -> dict[str, bytes]:
    """URL -> body, as GitHub would answer for every file ``SOURCES[kind]`` lists."""
    answers = {}
    for source in reference.SOURCES[kind]:
        for path, repo_path in source.files.items():
            answers[source.url(repo_path)] = (folder / path).read_bytes()
        for path, (page, heading) in (source.heredocs or {}).items():
            body = (folder / path).read_text()
            block = f"{heading}\n```bash\ncurl -d @- <<EOF | jq\n{body}EOF\n```\n"
            answers[source.url(page)] = answers.get(source.url(page), b"") + block.encode()
    return answers


_FOLDERS = {
    reference.APP_PACKAGES: reference.app_packages,
    reference.EOAP_PATTERNS: reference.eoap_patterns,
    reference.OGC_SCHEMAS: reference.ogc_schemas,
    reference.WPS_SCHEMAS: reference.wps_schemas,
}


@pytest.mark.parametrize("kind", list(_FOLDERS))
def test_a_missing_folder_is_fetched_into_the_cache_once(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _FOLDERS[kind]()
    answers = _stand_in_github(kind, folder)
    asked: list[str] = []
    monkeypatch.setattr(reference, "_download", lambda url: asked.append(url) or answers[url])

    fetched = reference.locate(kind, tmp_path / "empty", tmp_path / "cache")

    assert fetched == tmp_path / "cache" / kind
    assert sorted(asked) == sorted(set(answers))  # each page once, nothing else
    for source in reference.SOURCES[kind]:
        for path in source.files:
            assert (fetched / path).read_bytes() == (folder / path).read_bytes(), path
        for path in source.heredocs or {}:
            assert json.loads((fetched / path).read_text()) == json.loads(
                (folder / path).read_text()
            )
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [kind]  # no staging left
    asked.clear()
    assert reference.locate(kind, tmp_path / "empty", tmp_path / "cache") == fetched
    assert asked == []


def test_the_folder_under_the_setting_comes_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(reference.SETTING, str(tmp_path))
    assert reference.reference_dir() == tmp_path
    monkeypatch.delenv(reference.SETTING)
    assert reference.reference_dir() == reference.ROOT.parent / "shared"
    folder = reference.ogc_schemas()
    assert reference.locate(reference.OGC_SCHEMAS, folder.parent, tmp_path / "cache") == folder
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("kind", list(_FOLDERS))
def test_without_the_folder_or_the_network_the_reason_names_the_setting(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def offline(url: str) -> bytes:
        raise OSError("Name or service not known")

    monkeypatch.setattr(reference, "_download", offline)

    reason = reference.locate(kind, tmp_path / "empty", tmp_path / "cache")

    assert isinstance(reason, str)
    assert f"set {reference.SETTING} to the folder" in reason
    assert reference.LAYOUT[kind] in reason  # what to put there
    assert "Name or service not known" in reason
    assert list((tmp_path / "cache").iterdir()) == []  # nothing half-fetched is kept


def test_the_fetch_list_holds_every_schema_the_validator_can_reach() -> None:
    """Every file a ``$ref`` chain from ``SCHEMA_FILES`` names (remote ones aside)."""
    root = reference.ogc_schemas()
    sources = reference.SOURCES[reference.OGC_SCHEMAS]
    listed = {(root / path).resolve() for source in sources for path in source.files}
    todo, reached = [root / path for path in SCHEMA_FILES.values()], set()
    while todo:
        path = todo.pop().resolve()
        if path not in reached:
            reached.add(path)
            # Read as text: one reachable file (cql2-definitions.yaml) is not YAML PyYAML reads.
            refs = _REF.findall(path.read_text(encoding="utf-8"))
            todo.extend(path.parent / ref for ref in refs if ref and "://" not in ref)
    assert reached <= listed, sorted(str(p.relative_to(root)) for p in reached - listed)


# The file part of a ``$ref`` (YAML or JSON spelling): ``$ref: '../x.yaml#/a'`` -> ``../x.yaml``.
# (A property *named* ``$ref``, its schema on the lines below, gives an empty match.)
_REF = re.compile(r"""["']?\$ref["']?[ \t]*:[ \t]*["']?([^"'#\s]*)""")


_XSD_REF = re.compile(r"""<(?:\w+:)?(?:include|import)\b[^>]*?schemaLocation=["']([^"']+)["']""")


def test_the_fetch_list_holds_every_wps_schema_the_validator_reaches() -> None:
    """Every OGC file an include or import chain from the two WPS schemas names (the W3C
    ones come from the xmlschema package)."""
    root = reference.wps_schemas()
    listed = {path for source in reference.SOURCES[reference.WPS_SCHEMAS] for path in source.files}
    todo = [f"http://{path}" for path in MAIN.values()]
    reached: set[str] = set()
    while todo:
        url = todo.pop()
        parsed = urlparse(url)
        if url in reached or parsed.netloc != "schemas.opengis.net":
            continue
        reached.add(url)
        text = (root / parsed.netloc / parsed.path.lstrip("/")).read_text(encoding="utf-8")
        todo.extend(urljoin(url, location) for location in _XSD_REF.findall(text))
    paths = {url.removeprefix("http://") for url in reached}
    assert paths <= listed, sorted(paths - listed)
