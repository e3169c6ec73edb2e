"""S3 for stage-in (reading ``s3://`` inputs) and stage-out (the result store).

Both blocks hold their credentials as a nested prefect-aws ``AwsCredentials`` block and
move data with boto3's managed transfers (multipart uploads, ranged parallel downloads)
tuned by one part size and one concurrency. botocore's own retry mode retries transient
errors (connection refused, timeouts, 5xx, throttling) with backoff; what is left is
translated into ``StagingError`` in one place, :func:`s3_errors`, with a message that
names the object and never a credential.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import mimetypes
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
)
from prefect.blocks.core import Block
from prefect_aws import AwsCredentials
from prefect_aws.client_parameters import AwsClientParameters
from pydantic import Field, SecretStr

from blocks.storage import ResultStorage
from core.exceptions import StagingError

__all__ = [
    "S3ResultStorage",
    "S3Source",
    "concurrently",
    "s3_credentials",
    "s3_errors",
    "split_s3_url",
]

_MIB = 1024 * 1024
_MISSING = {"404", "NoSuchKey", "NotFound"}
_DELETE_BATCH = 1000  # keys per DeleteObjects call (the S3 maximum)


def split_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/key`` -> ``("bucket", "some/key")``."""
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise StagingError(f"{url} is not an s3://bucket/key URL")
    return parsed.netloc, parsed.path.lstrip("/")


def s3_credentials(
    *,
    endpoint: str | None,
    access_key: SecretStr | None,
    secret_key: SecretStr | None,
    region: str,
    attempts: int = 4,
) -> AwsCredentials:
    """Credentials of one S3 endpoint, with path-style addressing (MinIO) and a bounded
    retry budget of ``attempts`` calls (botocore's standard mode: exponential backoff)."""
    return AwsCredentials(
        aws_access_key_id=access_key.get_secret_value() if access_key else None,
        aws_secret_access_key=secret_key,
        region_name=region,
        aws_client_parameters=AwsClientParameters(
            endpoint_url=endpoint,
            config={
                "s3": {"addressing_style": "path"},
                "retries": {"mode": "standard", "total_max_attempts": attempts},
                "connect_timeout": 5,
                "read_timeout": 60,
                # One connection per transfer thread (botocore's default pool is 10).
                "max_pool_connections": 64,
            },
        ),
    )


@contextlib.contextmanager
def s3_errors(url: str, client: Any = None) -> Iterator[None]:
    """Translate botocore errors about ``url`` into ``StagingError`` (the one boundary).

    The message names the cause: a bucket that does not exist, keys the endpoint refuses
    (or none set), an endpoint that cannot be reached, an object that does not exist.
    A HEAD request (which downloads begin with) answers a bare 403 or 404; with
    ``client``, one listing call of the bucket then tells which of them it is.
    """
    try:
        yield
    except (ClientError, BotoCoreError, Boto3Error) as exc:
        # boto3's managed transfers wrap the botocore error that ended them.
        cause = (exc.__cause__ or exc.__context__) if isinstance(exc, Boto3Error) else exc
        cause = cause or exc
        if client is not None and _code(cause) in ("403", "404"):
            cause = _probe(client, url) or cause
        raise StagingError(_describe(url, cause)) from exc


def _code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def _probe(client: Any, url: str) -> ClientError | None:
    """The error a listing of ``url``'s bucket answers (with its code in a body), or
    None when the bucket lists: then the object itself is what is missing."""
    bucket, key = split_s3_url(url)
    try:
        client.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
    except ClientError as exc:
        return exc
    except (BotoCoreError, Boto3Error):
        return None
    return None


_KEYS_REFUSED = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken"}


def _describe(url: str, exc: BaseException) -> str:
    bucket = urlparse(url).netloc
    endpoint = ""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        if code == "NoSuchBucket":
            return f"{url}: bucket {bucket!r} does not exist"
        if code in _MISSING:
            return f"{url} does not exist (no such object in bucket {bucket!r})"
        if code in _KEYS_REFUSED:
            return f"{url}: the S3 endpoint refused the access key or secret key ({code})"
        if code in ("403", "AccessDenied", "AllAccessDisabled"):
            return f"{url}: access denied: these S3 keys may not read or write here ({code})"
        return f"{url}: S3 error {code}: {error.get('Message', exc)}"
    if isinstance(exc, NoCredentialsError):
        return f"{url}: no S3 access key and secret key are set for this endpoint"
    if isinstance(exc, EndpointConnectionError):
        endpoint = str(getattr(exc, "kwargs", {}).get("endpoint_url", ""))
        host = urlparse(endpoint)
        where = f"{host.scheme}://{host.netloc}" if host.netloc else "the S3 endpoint"
        return (
            f"{url}: S3 endpoint {where} unreachable after retries "
            "(the connection was refused or timed out)"
        )
    if isinstance(exc, BotoCoreError):
        return f"{url}: S3 endpoint unreachable after retries: {type(exc).__name__}"
    return f"{url}: S3 transfer failed: {type(exc).__name__}"


def concurrently(function: Callable[..., Any], jobs: list[tuple[Any, ...]], workers: int) -> None:
    """Run ``function(*job)`` for every job, ``workers`` at a time; re-raise the first
    failure after cancelling the jobs that have not started."""
    if len(jobs) <= 1 or workers <= 1:
        for job in jobs:
            function(*job)
        return
    with cf.ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(function, *job) for job in jobs]
        try:
            for future in cf.as_completed(futures):
                future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise


class _Transfers(Block):
    """What both S3 blocks share: credentials and transfer tuning."""

    credentials: AwsCredentials = Field(
        default_factory=AwsCredentials,
        description="Endpoint (in its client parameters), keys and region.",
    )
    chunk_mib: int = Field(
        default=16,
        ge=5,
        description="Part size of multipart uploads and ranged downloads, MiB.",
        examples=[16],
    )
    concurrency: int = Field(
        default=8,
        ge=1,
        description="Parts, or files of a folder, transferred at once.",
        examples=[8],
    )

    @property
    def client(self) -> Any:
        """A boto3 S3 client (cached per credentials by prefect-aws; thread-safe)."""
        return self.credentials.get_s3_client()

    def _transfer_config(self) -> TransferConfig:
        chunk = self.chunk_mib * _MIB
        return TransferConfig(
            multipart_threshold=chunk,
            multipart_chunksize=chunk,
            max_concurrency=self.concurrency,
            use_threads=True,
        )


class S3Source(_Transfers):
    """Where ``s3://`` job inputs are read from: the stage-in endpoint and its keys.

    Example:
        ```python
        from pathlib import Path
        from blocks.s3 import S3Source
        source = S3Source.load("stage-in")
        source.download("s3://eo-data/S2/B04.tif", Path("inputs/B04.tif"))
        ```
    """

    _block_type_name = "S3 stage-in source"
    _block_type_slug = "s3-stage-in-source"

    def download(self, url: str, target: Path) -> None:
        """Download the object at ``url`` to the file ``target``."""
        bucket, key = split_s3_url(url)
        target.parent.mkdir(parents=True, exist_ok=True)
        with s3_errors(url, self.client):
            self.client.download_file(bucket, key, str(target), Config=self._transfer_config())

    def read_text(self, url: str) -> str:
        """The object at ``url`` as UTF-8 text (a STAC document)."""
        bucket, key = split_s3_url(url)
        with s3_errors(url, self.client):
            return self.client.get_object(Bucket=bucket, Key=key)["Body"].read().decode()

    def download_folder(self, url: str, folder: Path) -> None:
        """Download every object below the prefix ``url`` into ``folder``, keeping the
        layout below the prefix. A prefix with no objects is a missing input."""
        bucket, prefix = split_s3_url(url)
        prefix = prefix.rstrip("/") + "/" if prefix else ""
        keys: list[str] = []
        with s3_errors(url):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix
            )
            keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
        keys = [k for k in keys if not k.endswith("/")]
        if not keys:
            raise StagingError(f"{url} does not exist (no objects below it)")
        root = folder.resolve()
        jobs = []
        for key in keys:
            target = (root / key[len(prefix) :]).resolve()
            if not target.is_relative_to(root):
                raise StagingError(f"{url}: object key {key!r} leaves the input folder")
            jobs.append((f"s3://{bucket}/{key}", target))
        concurrently(self.download, jobs, self.concurrency)


class S3ResultStorage(_Transfers, ResultStorage):
    """Results in an S3 bucket (AWS, MinIO, ...): the stage-out store.

    Example:
        ```python
        from pathlib import Path
        from blocks.s3 import S3ResultStorage
        storage = S3ResultStorage.load("results")
        url = storage.upload_from_path(Path("out.tif"), "processing-results/JOB/out.tif")
        ```
    """

    _block_type_name = "S3 result storage"
    _block_type_slug = "s3-result-storage"

    bucket: str = Field(description="Bucket results are uploaded to.", examples=["eoepca"])

    def url_for(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def check(self) -> None:
        """Fail with ``StagingError`` unless the bucket exists and the keys can reach it."""
        url = f"s3://{self.bucket}"
        with s3_errors(url, self.client):
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except ClientError as exc:
                # HEAD has no body: a missing bucket answers a bare 404.
                if str(exc.response.get("Error", {}).get("Code")) in _MISSING:
                    raise StagingError(f"{url}: bucket {self.bucket!r} does not exist") from exc
                raise

    def upload_from_path(self, from_path: Path, to_path: str) -> str:
        url = self.url_for(to_path)
        media_type = mimetypes.guess_type(from_path.name)[0] or "application/octet-stream"
        with s3_errors(url, self.client):
            self.client.upload_file(
                str(from_path),
                self.bucket,
                to_path,
                ExtraArgs={"ContentType": media_type},
                Config=self._transfer_config(),
            )
        return url

    def upload_from_folder(self, from_folder: Path, to_folder: str) -> str:
        files = sorted(p for p in from_folder.rglob("*") if p.is_file())
        concurrently(
            self.upload_from_path,
            [(p, f"{to_folder}/{p.relative_to(from_folder).as_posix()}") for p in files],
            self.concurrency,
        )
        return self.url_for(to_folder) + "/"

    def delete_folder(self, folder: str) -> int:
        return self.delete_folders([folder])

    def delete_folders(self, folders: list[str]) -> int:
        """One listing per folder, then ``DeleteObjects`` calls of up to 1000 keys taken
        across folders (a housekeeping page of small jobs costs one call, not one each)."""
        keys: list[str] = []
        for folder in folders:
            prefix = folder.strip("/") + "/"
            if prefix == "/":
                raise ValueError("refusing to delete the whole bucket")
            with s3_errors(self.url_for(prefix), self.client):
                pages = self.client.get_paginator("list_objects_v2").paginate(
                    Bucket=self.bucket, Prefix=prefix
                )
                keys.extend(o["Key"] for page in pages for o in page.get("Contents", []))
        with s3_errors(self.url_for(""), self.client):
            for start in range(0, len(keys), _DELETE_BATCH):
                batch = keys[start : start + _DELETE_BATCH]
                self.client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
                )
        return len(keys)

    def write_path(self, path: str, content: bytes) -> str:
        url = self.url_for(path)
        media_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
        with s3_errors(url):
            self.client.put_object(
                Bucket=self.bucket, Key=path, Body=content, ContentType=media_type
            )
        return url
