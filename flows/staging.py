"""Stage-in and stage-out of one job's data.

Stage-in turns remote File/Directory locations of a CWL job order into local files;
stage-out uploads CWL outputs to the result storage and writes the OGC results document.
"""

from __future__ import annotations

import mimetypes
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import requests

from blocks.storage import ResultStorage, results_key
from engine.exceptions import StagingError

__all__ = ["stage_in_job_order", "stage_out_outputs"]

_RETRIES = 3


def _download(url: str, target: Path, input_id: str) -> None:
    delay = 0.5
    for attempt in range(1, _RETRIES + 1):
        try:
            with requests.get(url, stream=True, timeout=(5, 60)) as response:
                if response.status_code == 404:
                    raise StagingError(f"input {input_id!r}: {url} does not exist (HTTP 404)")
                response.raise_for_status()
                target.parent.mkdir(parents=True, exist_ok=True)
                with target.open("wb") as out:
                    shutil.copyfileobj(response.raw, out)
                return
        except StagingError:
            raise
        except requests.RequestException as exc:
            if attempt == _RETRIES:
                raise StagingError(f"input {input_id!r}: cannot fetch {url}: {exc}") from exc
            time.sleep(delay)
            delay *= 2


def _stage_value(value: Any, folder: Path, input_id: str) -> Any:
    if isinstance(value, list):
        return [_stage_value(v, folder / str(i), input_id) for i, v in enumerate(value)]
    if not (isinstance(value, dict) and value.get("class") == "File"):
        return value
    location = str(value.get("location", ""))
    scheme = urlparse(location).scheme
    if scheme in ("http", "https"):
        name = Path(unquote(urlparse(location).path)).name or "input"
        target = folder / name
        _download(location, target, input_id)
        return {**value, "location": target.as_uri()}
    if scheme == "file" and not Path(unquote(urlparse(location).path)).exists():
        raise StagingError(f"input {input_id!r}: {location} does not exist")
    return value


def stage_in_job_order(job_order: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Download every remote File of ``job_order`` below ``folder``; return the local order."""
    return {key: _stage_value(value, folder / key, key) for key, value in job_order.items()}


def _file_result(path: Path, url: str) -> dict[str, Any]:
    media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return {"href": url, "type": media_type}


def _local_path(cwl_object: dict[str, Any]) -> Path:
    location = cwl_object.get("path") or unquote(urlparse(cwl_object["location"]).path)
    return Path(location)


def stage_out_outputs(
    outputs: dict[str, Any],
    storage: ResultStorage,
    *,
    prefix: str,
    job_id: str,
    on_progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Upload the CWL ``outputs`` and return the OGC results document.

    A File becomes ``{href, type}``; a Directory becomes a link to the uploaded folder
    with ``files`` naming each file in it; other values are returned as they are.
    """
    results: dict[str, Any] = {}
    for output_id, value in outputs.items():
        if on_progress:
            on_progress(output_id)
        results[output_id] = _stage_out_value(value, storage, prefix, job_id, output_id)
    return results


def _stage_out_value(
    value: Any, storage: ResultStorage, prefix: str, job_id: str, output_id: str
) -> Any:
    if isinstance(value, list):
        return [
            _stage_out_value(v, storage, prefix, job_id, f"{output_id}/{i}")
            for i, v in enumerate(value)
        ]
    if not isinstance(value, dict) or value.get("class") not in ("File", "Directory"):
        return value
    path = _local_path(value)
    key = results_key(prefix, job_id, output_id)
    try:
        if value["class"] == "File":
            return _file_result(path, storage.upload_from_path(path, f"{key}/{path.name}"))
        url = storage.upload_from_folder(path, key)
    except OSError as exc:
        raise StagingError(f"output {output_id!r}: cannot store {path}: {exc}") from exc
    files = sorted(p for p in path.rglob("*") if p.is_file())
    return {
        "href": url,
        "type": "application/x-directory",
        "title": output_id,
        "files": [
            _file_result(p, storage.url_for(f"{key}/{p.relative_to(path).as_posix()}"))
            for p in files
        ],
    }
