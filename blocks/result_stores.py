"""Which result stores hold a user's job results, and removing one job's results.

:func:`result_storage` is the one place the store a job writes to is chosen (the shared
bucket, the user's workspace bucket, or the local disk); stage-out uses it.
:func:`job_stores` lists every store a job of a user may have written to (in workspace
mode with fallback, the workspace and the shared one), so that deleting or expiring a
job removes its results wherever they went: :func:`remove_job_results` (one job, a
DELETE) and :func:`remove_results_of_jobs` (many jobs of one user, housekeeping).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from urllib.parse import urlparse

from blocks.s3 import S3ResultStorage, s3_credentials
from blocks.storage import LocalResultStorage, ResultStorage, storage_from_url
from blocks.workspace import WorkspaceApi
from core.exceptions import StagingError
from core.naming import results_key
from core.settings import Settings

__all__ = [
    "discard_partial_results",
    "job_stores",
    "remove_job_results",
    "remove_results_of_jobs",
    "result_storage",
    "where",
]


def _shared_storage(settings: Settings) -> ResultStorage:
    """The site's own store: ``settings.results_url`` (``s3://bucket`` with the ``S3_*``
    endpoint and keys, or a ``file://`` folder)."""
    url = settings.results_url
    parsed = urlparse(url)
    if parsed.scheme != "s3":
        return storage_from_url(url)
    return S3ResultStorage(
        bucket=parsed.netloc,
        credentials=s3_credentials(
            endpoint=settings.results.s3_endpoint,
            access_key=settings.results.s3_access_key,
            secret_key=settings.results.s3_secret_key,
            region=settings.results.s3_region,
            attempts=settings.transfer.attempts,
        ),
        chunk_mib=settings.transfer.chunk_mib,
        concurrency=settings.transfer.concurrency,
    )


def _workspace_storage(settings: Settings, user: str | None) -> ResultStorage:
    """``user``'s workspace bucket with the keys the Workspace API gives (``StagingError``
    when the lookup fails)."""
    if not user:
        raise StagingError("the job has no user, so it has no workspace")
    api = WorkspaceApi(
        url=settings.workspace.api_url,
        prefix=settings.workspace.prefix,
        token=settings.workspace.api_token,
    )
    found = api.lookup(user)
    return S3ResultStorage(
        bucket=found.bucket,
        credentials=s3_credentials(
            endpoint=found.endpoint,
            access_key=found.access_key,
            secret_key=found.secret_key,
            region=found.region,
            attempts=settings.transfer.attempts,
        ),
        chunk_mib=settings.transfer.chunk_mib,
        concurrency=settings.transfer.concurrency,
    )


def result_storage(
    settings: Settings, *, user: str | None, log: Callable[[str], None] | None = None
) -> ResultStorage:
    """Where ``user``'s job results go (the one place the store is chosen).

    Workspace mode (``USE_WORKSPACE_API``): the user's workspace bucket with the keys the
    Workspace API gives; when that lookup fails, the shared bucket if
    ``OAPIP_WORKSPACE_FALLBACK`` is set, else ``StagingError``. Otherwise
    ``settings.results_url``: ``s3://bucket`` with the ``S3_*`` endpoint and keys, or a
    ``file://`` folder.
    """
    if settings.workspace.enabled:
        if not settings.workspace.api_url:
            raise StagingError("USE_WORKSPACE_API is set but OAPIP_WORKSPACE_API_URL is not")
        try:
            return _workspace_storage(settings, user)
        except StagingError as exc:
            if not settings.workspace.fallback:
                raise
            if log:
                log(f"{exc}; results go to the shared store instead")
    return _shared_storage(settings)


def job_stores(settings: Settings, user: str | None) -> list[ResultStorage]:
    """Every store a job of ``user`` may have written its results to: the shared store,
    and in workspace mode the user's workspace too (when the Workspace API knows it)."""
    stores = []
    if settings.workspace.enabled and settings.workspace.api_url:
        # No workspace now: results went (if anywhere) to the shared store.
        with contextlib.suppress(StagingError):
            stores.append(_workspace_storage(settings, user))
        if not settings.workspace.fallback:
            return stores
    return [*stores, _shared_storage(settings)]


def remove_job_results(settings: Settings, *, user: str | None, job_id: str) -> list[str]:
    """Remove ``job_id``'s results (``<prefix>/<jobID>/``) from every store it may have
    used; return the URLs of the folders that held objects. ``StagingError`` when a
    store cannot be reached (nothing is then known to be removed from it)."""
    folder = results_key(settings.results.prefix, job_id)
    return [
        store.url_for(folder) + "/"
        for store in job_stores(settings, user)
        if store.delete_folder(folder)
    ]


def remove_results_of_jobs(settings: Settings, *, user: str | None, job_ids: list[str]) -> int:
    """Remove the results of ``user``'s jobs ``job_ids`` from every store they may have
    used, with one look-up of the stores for all of them and S3 deletes of up to 1000
    keys a call; return how many objects there were. ``StagingError`` when a store
    cannot be reached (then none of these jobs is known to have lost its results)."""
    folders = [results_key(settings.results.prefix, job_id) for job_id in job_ids]
    return sum(store.delete_folders(folders) for store in job_stores(settings, user))


def where(store: ResultStorage, folder: str) -> str:
    """How a message names ``folder`` of ``store``: its URL, or for the local store its
    key (a path of the engine's disk is not for users)."""
    if isinstance(store, LocalResultStorage):
        return f"{folder}/ in the local result store"
    return store.url_for(folder) + "/"


def discard_partial_results(settings: Settings, stores: list[ResultStorage], *, job_id: str) -> str:
    """Remove what a job that did not succeed had uploaded to ``stores`` before it
    ended, unless the operator keeps it (``OAPIP_KEEP_FAILED_OUTPUTS``); return the
    sentence the job's message ends with (empty when nothing had been uploaded).

    A store that cannot be reached now is named as still holding its part.
    """
    folder = results_key(settings.results.prefix, job_id)
    if settings.retention.keep_failed_outputs:
        places = ", ".join(where(store, folder) for store in stores)
        return f"anything it had uploaded is kept at {places} (OAPIP_KEEP_FAILED_OUTPUTS)"
    removed, left = 0, []
    for store in stores:
        try:
            removed += store.delete_folder(folder)
        except StagingError as exc:
            left.append(f"{where(store, folder)} ({exc.detail})")
    if left:
        return f"what it had uploaded could not be removed from {', '.join(left)}"
    return f"the {removed} files it had uploaded were removed" if removed else ""
