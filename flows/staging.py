"""Stage-in and stage-out of one job's data.

Stage-in turns the remote File/Directory locations of a CWL job order (``http(s)://`` or
``s3://``; single, optional or in arrays) into local files and folders: a File is
downloaded; a Directory is an ``s3://`` prefix (downloaded as it is) or a STAC Item,
Catalog or Collection (staged as a folder with its assets and a self-contained
``catalog.json``, see ``flows.stac``). Stage-out uploads every File/Directory output to
the result store below ``<prefix>/<jobID>/<output id>/`` and writes the OGC results
document. Every failure is a ``StagingError`` whose message names the input or output
and the URL; none carries a credential.
"""

from __future__ import annotations

import functools
import math
import mimetypes
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import requests

from blocks.result_stores import result_storage
from blocks.s3 import S3Source, concurrently, s3_credentials
from blocks.storage import LocalResultStorage, ResultStorage
from core import http
from core.exceptions import StagingError
from core.naming import result_file_url, results_key
from core.retry import Backoff, retry
from core.settings import Settings
from cwlpkg.locations import REMOTE_SCHEMES, input_files_problem
from flows.stac import is_stac_folder, publish_stac, stage_stac

__all__ = [
    "Fetcher",
    "fetcher_from_settings",
    "result_links",
    "result_storage",
    "stage_in_job_order",
    "stage_out_outputs",
]

_CHUNK = 1024 * 1024  # bytes read per write while downloading over HTTP


class _Transient(Exception):
    """A download attempt failed for a reason that may pass (5xx, lost connection)."""


@dataclass
class Fetcher:
    """Reads remote locations: ``http(s)`` through the outbound guard, with retries and
    backoff; ``s3`` via the stage-in block (whose client retries on its own). Nothing
    else: a ``file:`` or any other location is refused without being looked at.

    Attributes:
        s3: the stage-in S3 endpoint and keys.
        attempts: HTTP attempts per download before giving up on transient errors.
        backoff_s: first wait between HTTP attempts, seconds (doubled each time).
        guard: where HTTP requests may go (``core.http``); every redirect is checked too.
    """

    s3: S3Source
    attempts: int = 4
    backoff_s: float = 0.5
    guard: http.Guard = field(default_factory=http.Guard)

    @functools.cached_property
    def _session(self) -> requests.Session:
        return http.guarded_session(self.guard)

    def _http(self, url: str, use: Callable[[requests.Response], Any]) -> Any:
        """``use(response)`` of a GET of ``url``; a 5xx answer, a lost connection or a
        name that does not resolve is tried again (``attempts`` in all), anything else
        fails at once."""

        def get() -> Any:
            try:
                with self._session.get(url, stream=True, timeout=(5, 60)) as response:
                    if response.status_code in (404, 410):
                        raise StagingError(f"{url} does not exist (HTTP {response.status_code})")
                    if response.status_code >= 500:
                        raise _Transient(f"HTTP {response.status_code}")
                    response.raise_for_status()
                    return use(response)
            except http.AddressRefused as exc:  # exc.url is host:port, maybe a redirect's
                host, port = http.Guard.host_and_port(url)
                hop = "" if exc.url == f"{host}:{port}" else " (it redirected there)"
                raise StagingError(f"cannot fetch {url}: {exc}{hop}") from None
            except http.UnknownHost as exc:
                raise _Transient(str(exc)) from exc
            except requests.TooManyRedirects as exc:
                raise StagingError(
                    f"cannot fetch {url}: more than {http.MAX_REDIRECTS} redirects"
                ) from exc
            except requests.HTTPError as exc:
                raise StagingError(f"cannot fetch {url}: {exc}") from exc
            except requests.RequestException as exc:
                raise _Transient(str(exc)) from exc

        backoff = Backoff(
            first_s=self.backoff_s, factor=2.0, max_s=math.inf, attempts=self.attempts
        )
        try:
            return retry(get, backoff=backoff, retryable=lambda exc: isinstance(exc, _Transient))
        except _Transient as exc:
            raise StagingError(
                f"cannot fetch {url} after {self.attempts} attempts: {exc}"
            ) from None

    def download(self, url: str, target: Path) -> None:
        """Download ``url`` (http(s) or s3) to the file ``target``."""
        if _scheme(url) == "s3":
            self.s3.download(url, target)
            return
        target.parent.mkdir(parents=True, exist_ok=True)

        def save(response: requests.Response) -> None:
            with target.open("wb") as out:
                for chunk in response.iter_content(_CHUNK):
                    out.write(chunk)

        self._http(url, save)

    def download_all(self, pairs: list[tuple[str, Path]]) -> None:
        """Download every ``(url, target)`` pair, several at once."""
        concurrently(self.download, pairs, self.s3.concurrency)

    def read_text(self, url: str) -> str:
        """The document at ``url`` as text."""
        if _scheme(url) == "s3":
            return self.s3.read_text(url)
        return self._http(url, lambda response: response.text)


def _scheme(url: str) -> str:
    """The scheme of a location the fetcher reads; ``StagingError`` for one it does not."""
    scheme = urlparse(url).scheme.lower()
    if scheme not in REMOTE_SCHEMES:
        raise StagingError(f"{url!r} is not an http(s):// or s3:// URL")
    return scheme


def fetcher_from_settings(settings: Settings) -> Fetcher:
    """The stage-in fetcher with the ``STAGEIN_S3_*`` endpoint and keys and the outbound
    guard of ``settings``."""
    credentials = s3_credentials(
        endpoint=settings.stagein.endpoint,
        access_key=settings.stagein.access_key,
        secret_key=settings.stagein.secret_key,
        region=settings.stagein.region,
        attempts=settings.transfer.attempts,
    )
    source = S3Source(
        credentials=credentials,
        chunk_mib=settings.transfer.chunk_mib,
        concurrency=settings.transfer.concurrency,
    )
    return Fetcher(
        source,
        attempts=settings.transfer.attempts,
        backoff_s=settings.transfer.backoff_s,
        guard=http.Guard.from_settings(settings),
    )


# --- stage-in ---------------------------------------------------------------------------


def _name_of(url: str, default: str) -> str:
    return Path(unquote(urlparse(url).path.rstrip("/"))).name or default


def _stage_location(value: dict[str, Any], folder: Path, fetcher: Fetcher) -> dict[str, Any]:
    location = value.get("location")
    if location is None:
        return value  # a literal (`contents`, or a listing of literals): nothing to fetch
    scheme = _scheme(str(location))
    if value["class"] == "File":
        target = folder / _name_of(location, "input")
        fetcher.download(location, target)
        return {**value, "location": target.as_uri()}
    target = folder / "staged"
    if scheme == "s3" and not location.endswith(".json"):
        fetcher.s3.download_folder(location, target)
    else:
        stage_stac(location, target, read_text=fetcher.read_text, download_all=fetcher.download_all)
    staged = {k: v for k, v in value.items() if k not in ("listing", "basename")}
    return {**staged, "location": target.as_uri()}


def _stage_value(value: Any, folder: Path, fetcher: Fetcher) -> Any:
    if isinstance(value, list):
        return [_stage_value(v, folder / str(i), fetcher) for i, v in enumerate(value)]
    if isinstance(value, dict) and value.get("class") in ("File", "Directory"):
        return _stage_location(value, folder, fetcher)
    return value


def stage_in_job_order(job_order: dict[str, Any], folder: Path, fetcher: Fetcher) -> dict[str, Any]:
    """Stage every remote File/Directory of ``job_order`` below ``folder``; return the
    local job order. A failure names the input and the URL.

    Only ``http(s)://`` and ``s3://`` locations are read (the gateway refused anything
    else already; this is the second line): never a path of the engine's host, whether
    it exists or not.
    """
    staged: dict[str, Any] = {}
    for input_id, value in job_order.items():
        try:
            problem = input_files_problem(value)
            if problem:
                raise StagingError(problem)
            staged[input_id] = _stage_value(value, folder / input_id, fetcher)
        except StagingError as exc:
            raise StagingError(f"input {input_id!r}: {exc.detail}") from exc
        except OSError as exc:
            raise StagingError(f"input {input_id!r}: cannot write the staged copy: {exc}") from exc
    return staged


# --- stage-out --------------------------------------------------------------------------


def _file_result(path: Path, url: str) -> dict[str, Any]:
    media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return {"href": url, "type": media_type}


def _local_path(cwl_object: dict[str, Any]) -> Path:
    location = cwl_object.get("path") or unquote(urlparse(cwl_object["location"]).path)
    return Path(location)


def result_links(
    storage: ResultStorage, *, prefix: str, job_id: str, jobs_url: str
) -> Callable[[str], str]:
    """The URL the results document gives an object of ``job_id``'s results, by key.

    The store's own URL (``s3://``) for a store clients reach themselves; for the local
    store, the gateway's URL of the file below ``jobs_url`` (``core.naming``), never a
    path of the engine's host.
    """
    if not isinstance(storage, LocalResultStorage):
        return storage.url_for
    root = results_key(prefix, job_id)
    return lambda key: result_file_url(jobs_url, job_id, key.removeprefix(root))


def stage_out_outputs(
    outputs: dict[str, Any],
    storage: ResultStorage,
    *,
    prefix: str,
    job_id: str,
    on_progress: Callable[[str], None] | None = None,
    link: Callable[[str], str] | None = None,
) -> dict[str, Any]:
    """Upload the CWL ``outputs`` and return the OGC results document.

    A File becomes ``{href, type}``. A Directory holding a STAC ``catalog.json`` becomes
    the published STAC root (Catalog or Collection) with every href pointing at the
    uploaded objects, plus ``href`` (its document's URL, so it is also an OGC link); any
    other Directory becomes a link to the uploaded folder with ``files`` naming each
    file in it. Other values are returned as they are. ``link`` gives the URL of a
    stored key (:func:`result_links`; default: the store's own URL).
    """
    link = link or storage.url_for
    results: dict[str, Any] = {}
    for output_id, value in outputs.items():
        if value is None:
            continue  # an optional output not produced is left out (results have no null)
        if on_progress:
            on_progress(output_id)
        try:
            results[output_id] = _stage_out_value(value, storage, link, prefix, job_id, output_id)
        except StagingError as exc:
            raise StagingError(f"output {output_id!r}: {exc.detail}") from exc
        except OSError as exc:
            raise StagingError(f"output {output_id!r}: cannot read the output: {exc}") from exc
    return results


def _stage_out_value(
    value: Any,
    storage: ResultStorage,
    link: Callable[[str], str],
    prefix: str,
    job_id: str,
    output_id: str,
) -> Any:
    if isinstance(value, list):
        return [
            _stage_out_value(v, storage, link, prefix, job_id, f"{output_id}/{i}")
            for i, v in enumerate(value)
        ]
    if not isinstance(value, dict) or value.get("class") not in ("File", "Directory"):
        return value
    path = _local_path(value)
    key = results_key(prefix, job_id, output_id)
    if value["class"] == "File":
        storage.upload_from_path(path, f"{key}/{path.name}")
        return _file_result(path, link(f"{key}/{path.name}"))
    if is_stac_folder(path):
        return publish_stac(path, storage, key, link=link)
    storage.upload_from_folder(path, key)
    files = sorted(p for p in path.rglob("*") if p.is_file())
    return {
        "href": link(key) + "/",
        "type": "application/x-directory",
        "title": output_id,
        "files": [_file_result(p, link(f"{key}/{p.relative_to(path).as_posix()}")) for p in files],
    }
