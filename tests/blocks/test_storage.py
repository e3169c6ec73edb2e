"""Local result storage: the key layout, URLs it returns, keys that try to leave it."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import pytest

from blocks.storage import LocalResultStorage, storage_from_url
from core.naming import results_key


def test_results_key_layout():
    assert results_key("processing-results", "JOB") == "processing-results/JOB"
    assert results_key("/processing-results/", "JOB", "out", "a.tif") == (
        "processing-results/JOB/out/a.tif"
    )
    assert results_key("p", "JOB", "/dir/", "") == "p/JOB/dir"


def test_upload_file_and_folder(tmp_path: Path):
    storage = LocalResultStorage(basepath=tmp_path / "store")
    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)
    (source / "a.txt").write_text("a")
    (source / "sub" / "b.txt").write_text("b")

    url = storage.upload_from_path(source / "a.txt", "p/JOB/one/a.txt")
    assert urlparse(url).scheme == "file"
    assert Path(urlparse(url).path).read_text() == "a"

    folder = storage.upload_from_folder(source, "p/JOB/all")
    assert folder.endswith("/")
    root = Path(urlparse(folder).path)
    assert (root / "a.txt").read_text() == "a"
    assert (root / "sub" / "b.txt").read_text() == "b"
    assert storage.url_for("p/JOB/all/sub/b.txt") == (root / "sub" / "b.txt").as_uri()


@pytest.mark.parametrize("key", ["../outside.txt", "p/../../outside.txt", "/etc/passwd"])
def test_keys_cannot_leave_the_storage_folder(tmp_path: Path, key: str):
    storage = LocalResultStorage(basepath=tmp_path / "store")
    source = tmp_path / "a.txt"
    source.write_text("a")
    with pytest.raises(ValueError):
        storage.upload_from_path(source, key)
    assert not (tmp_path / "outside.txt").exists()


def test_storage_from_a_file_url(tmp_path: Path):
    storage = storage_from_url((tmp_path / "results").as_uri())
    assert isinstance(storage, LocalResultStorage)
    assert storage.basepath == tmp_path / "results"


def test_write_path_stores_bytes(tmp_path: Path):
    storage = LocalResultStorage(basepath=tmp_path / "store")
    url = storage.write_path("p/JOB/catalog.json", b"{}")
    assert Path(urlparse(url).path).read_bytes() == b"{}"
    with pytest.raises(ValueError):
        storage.write_path("../outside.json", b"{}")
