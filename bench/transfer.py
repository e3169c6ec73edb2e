"""Transfer benchmark: stage-in and stage-out against raw boto3, same endpoint, same run.

    python -m bench --only transfer [--transfer-mib 200] [--rounds 3] [--s3-endpoint URL]

Starts a ``moto_server`` on a free loopback port (unless ``--s3-endpoint`` names one),
writes a file of ``--transfer-mib`` MiB of random bytes, and times, median of
``--rounds`` (engine and raw alternate within each round):

* stage-in: ``flows.staging.stage_in_job_order`` (what the ``stage-in`` task runs) of a
  ``File`` input ``s3://bench/input.bin``, against ``boto3``'s ``download_file`` of the
  same object with its default transfer settings;
* stage-out: ``flows.staging.stage_out_outputs`` (what the ``stage-out`` task runs) of a
  ``File`` output, against ``boto3``'s ``upload_file`` of the same file.

The ratio is engine throughput over raw throughput (1.0: as fast as boto3 alone).
"""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import boto3
import requests
from botocore.config import Config

_MIB = 1024 * 1024
_BUCKET = "bench"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_moto(home: Path) -> tuple[str, subprocess.Popen]:
    moto = Path(sys.executable).with_name("moto_server")
    if not moto.exists():
        raise SystemExit("moto_server is not installed: run `./dev bench` (installs test extras)")
    port = _free_port()
    with (home / "moto.log").open("wb") as log:
        process = subprocess.Popen(
            [str(moto), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=5)
            return url, process
        except requests.RequestException:
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"moto_server did not answer on {url}")


def _paired(
    raw: Callable[[], None], engine: Callable[[], None], rounds: int
) -> tuple[float, float]:
    """Median seconds of ``raw`` and of ``engine``, run in alternating order each round so
    that a change of load on the machine hits both alike."""
    times: dict[Callable[[], None], list[float]] = {raw: [], engine: []}
    for round_ in range(rounds):
        for action in (raw, engine) if round_ % 2 == 0 else (engine, raw):
            t0 = time.perf_counter()
            action()
            times[action].append(time.perf_counter() - t0)
    return statistics.median(times[raw]), statistics.median(times[engine])


def run(size_mib: int, rounds: int, endpoint: str | None) -> list[tuple[str, str, str, str]]:
    """Measure; return table rows (measurement, engine, raw boto3, ratio)."""
    from core.settings import Settings
    from flows.staging import (
        fetcher_from_settings,
        result_storage,
        stage_in_job_order,
        stage_out_outputs,
    )

    home = Path(tempfile.mkdtemp(prefix="oapip-bench-transfer-"))
    process = None
    try:
        if endpoint is None:
            endpoint, process = _start_moto(home)
        keys = {"access_key": "bench", "secret_key": "bench"}
        settings = Settings(
            home=home,
            s3_endpoint=endpoint,
            s3_access_key=keys["access_key"],
            s3_secret_key=keys["secret_key"],
            s3_bucket=_BUCKET,
            stagein_s3_endpoint=endpoint,
            stagein_s3_access_key=keys["access_key"],
            stagein_s3_secret_key=keys["secret_key"],
        )
        raw = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=keys["access_key"],
            aws_secret_access_key=keys["secret_key"],
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}),
        )
        raw.create_bucket(Bucket=_BUCKET)
        source = home / "input.bin"
        with source.open("wb") as out:
            for _ in range(size_mib):
                out.write(os.urandom(_MIB))
        raw.upload_file(str(source), _BUCKET, "input.bin")
        mb = size_mib * _MIB / 1e6
        print(
            f"transfer: {size_mib} MiB, {rounds} rounds, endpoint {endpoint}, "
            f"chunk {settings.transfer.chunk_mib} MiB x {settings.transfer.concurrency}",
            flush=True,
        )

        target = home / "raw-download.bin"
        fetcher = fetcher_from_settings(settings)
        storage = result_storage(settings, user=None)
        # Like the raw client above, the engine's clients exist before the clock starts.
        fetcher.s3.client.list_buckets()
        storage.check()
        staged = home / "staged"
        order = {"data": {"class": "File", "location": f"s3://{_BUCKET}/input.bin"}}
        outputs = {"result": {"class": "File", "location": source.as_uri()}}

        def stage_in() -> None:
            shutil.rmtree(staged, ignore_errors=True)
            stage_in_job_order(order, staged, fetcher)

        def stage_out() -> None:
            stage_out_outputs(outputs, storage, prefix=settings.results.prefix, job_id="bench")

        raw_in, engine_in = _paired(
            lambda: raw.download_file(_BUCKET, "input.bin", str(target)), stage_in, rounds
        )
        assert (staged / "data" / "input.bin").stat().st_size == size_mib * _MIB
        raw_out, engine_out = _paired(
            lambda: raw.upload_file(str(source), _BUCKET, "raw.bin"), stage_out, rounds
        )
        rows = []
        for what, engine_s, raw_s in (
            (f"stage-in, {size_mib} MiB s3 File input", engine_in, raw_in),
            (f"stage-out, {size_mib} MiB File output to s3", engine_out, raw_out),
        ):
            rows.append(
                (
                    f"{what}, median of {rounds}",
                    f"{engine_s:.2f} s, {mb / engine_s:.0f} MB/s",
                    f"boto3 default {raw_s:.2f} s, {mb / raw_s:.0f} MB/s",
                    f"ratio {raw_s / engine_s:.2f}",
                )
            )
            print(f"  {' | '.join(rows[-1])}", flush=True)
        return rows
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=10)
        shutil.rmtree(home, ignore_errors=True)
