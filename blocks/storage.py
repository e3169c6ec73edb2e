"""Where job results are stored, addressed by URL.

The storage blocks follow Prefect's object-storage method names
(``upload_from_path``, ``upload_from_folder``, ``write_path``); each returns the URL of
what it stored. ``LocalResultStorage`` is here; ``S3ResultStorage`` is in ``blocks.s3``.
:func:`core.naming.results_key` is the one place the key layout ``<prefix>/<jobID>/...``
is computed.
"""

from __future__ import annotations

import shutil
from abc import ABC, abstractmethod
from pathlib import Path
from urllib.parse import urlparse

from prefect.blocks.core import Block
from pydantic import Field

__all__ = ["LocalResultStorage", "ResultStorage", "storage_from_url"]


class ResultStorage(Block, ABC):
    """An object store results are uploaded to."""

    @abstractmethod
    def url_for(self, key: str) -> str:
        """Public URL of ``key`` (``file://`` or ``s3://``)."""

    @abstractmethod
    def upload_from_path(self, from_path: Path, to_path: str) -> str:
        """Store one file at key ``to_path``; return its URL."""

    @abstractmethod
    def write_path(self, path: str, content: bytes) -> str:
        """Store ``content`` at key ``path``; return its URL."""

    def check(self) -> None:
        """Fail (``StagingError``) when results cannot be stored; run before a job starts."""

    @abstractmethod
    def delete_folder(self, folder: str) -> int:
        """Remove every object below key ``folder``; return how many there were (0 when
        there were none: removing twice is not an error)."""

    def delete_folders(self, folders: list[str]) -> int:
        """Remove every object below each key of ``folders`` (many jobs' results at once);
        return how many there were. A store that can delete many objects in one call
        overrides this to do so."""
        return sum(self.delete_folder(folder) for folder in folders)

    def upload_from_folder(self, from_folder: Path, to_folder: str) -> str:
        """Store every file under ``from_folder`` below key ``to_folder``; return its URL."""
        for path in sorted(p for p in from_folder.rglob("*") if p.is_file()):
            self.upload_from_path(path, f"{to_folder}/{path.relative_to(from_folder).as_posix()}")
        return self.url_for(to_folder) + "/"


class LocalResultStorage(ResultStorage):
    """Results in a folder of the local disk: the embedded default.

    Example:
        ```python
        from pathlib import Path
        from blocks.storage import LocalResultStorage
        storage = LocalResultStorage.load("results")
        url = storage.upload_from_path(Path("out.tif"), "processing-results/JOB/out.tif")
        ```
    """

    _block_type_name = "Local result storage"
    _block_type_slug = "local-result-storage"

    basepath: Path = Field(
        description="Folder results are copied into.", examples=["/srv/oapip/results"]
    )

    def path_for(self, key: str) -> Path:
        """Where ``key`` is on the disk; ``ValueError`` for a key that leaves the folder
        (``..``, an absolute path, a symbolic link pointing out)."""
        path = (self.basepath / key).resolve()
        if not path.is_relative_to(self.basepath.resolve()):
            raise ValueError(f"key {key!r} leaves the storage folder")
        return path

    def url_for(self, key: str) -> str:
        return self.path_for(key).as_uri()

    def upload_from_path(self, from_path: Path, to_path: str) -> str:
        target = self.path_for(to_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(from_path, target)
        return target.as_uri()

    def write_path(self, path: str, content: bytes) -> str:
        target = self.path_for(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        return target.as_uri()

    def delete_folder(self, folder: str) -> int:
        root = self.path_for(folder)
        if root == self.basepath.resolve():
            raise ValueError("refusing to delete the whole storage folder")
        if not root.is_dir():
            return 0
        count = sum(1 for p in root.rglob("*") if p.is_file())
        shutil.rmtree(root)
        return count


def storage_from_url(url: str) -> ResultStorage:
    """The storage block for a ``file:///folder`` results URL.

    ``s3://`` stores need credentials: ``blocks.result_stores.result_storage`` builds them.
    """
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return LocalResultStorage(basepath=Path(parsed.path))
    raise ValueError(f"unsupported results URL {url!r}: use file:///folder")
