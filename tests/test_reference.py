"""The reference folders: found through the setting, fetched when absent, else skipped.

GitHub is never reached here: the fetch is exercised with a stand-in download that
serves the files of the reference folder itself (so these tests need it, as CI has it).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests import reference
from tests.ogc_schemas import SCHEMA_FILES


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


@pytest.mark.parametrize("kind", [reference.APP_PACKAGES, reference.OGC_SCHEMAS])
def test_a_missing_folder_is_fetched_into_the_cache_once(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = reference.app_packages() if kind == reference.APP_PACKAGES else reference.ogc_schemas()
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


def test_without_the_folder_or_the_network_the_reason_names_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def offline(url: str) -> bytes:
        raise OSError("Name or service not known")

    monkeypatch.setattr(reference, "_download", offline)

    reason = reference.locate(reference.APP_PACKAGES, tmp_path / "empty", tmp_path / "cache")

    assert isinstance(reason, str)
    assert f"set {reference.SETTING} to the folder" in reason
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
