"""What a user reads when S3 fails: each cause named, no path of the engine shown.

Real moto servers over HTTP: the session's stage-in and stage-out servers (which accept
any keys), and one started here with moto's authentication on, which refuses every key
it did not issue (it issued none): the "wrong credentials" case.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from pydantic import SecretStr

from blocks.result_stores import result_storage
from blocks.s3 import S3Source, s3_credentials
from core.exceptions import StagingError
from core.settings import ResultSettings, Settings
from flows.staging import Fetcher, stage_in_job_order
from tests.conftest import free_port
from tests.s3_server import S3Server, stop
from tests.support import poll


@pytest.fixture(scope="module")
def strict_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A moto server that checks signatures (``INITIAL_NO_AUTH_ACTION_COUNT=0``)."""
    port = free_port()
    log = tmp_path_factory.mktemp("strict-moto") / "moto.log"
    moto = Path(sys.executable).with_name("moto_server")
    with log.open("ab") as out:
        process = subprocess.Popen(
            [str(moto), "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=out,
            env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "0"},
        )

    def answers() -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{port}/", timeout=5) is not None
        except requests.RequestException:
            return False

    try:
        poll(answers, timeout=30, what="the strict moto server")
        yield S3Server(f"http://127.0.0.1:{port}", "AKIAWRONGKEY", "wrong", process=process)
    finally:
        stop(process)


def _source(server: S3Server) -> S3Source:
    credentials = s3_credentials(
        endpoint=server.endpoint,
        access_key=SecretStr(server.access_key),
        secret_key=SecretStr(server.secret_key),
        region=server.region,
        attempts=2,
    )
    return S3Source(credentials=credentials)


def _stage_in_message(server: S3Server, url: str, folder: Path) -> str:
    fetcher = Fetcher(_source(server), attempts=2, backoff_s=0.05)
    with pytest.raises(StagingError) as raised:
        stage_in_job_order({"scene": {"class": "File", "location": url}}, folder, fetcher)
    return raised.value.detail


CASES = {
    "missing bucket": "bucket 'no-such-bucket-{tag}' does not exist",
    "wrong credentials": "refused the access key or secret key",
    "refused endpoint": "unreachable after retries",
    "missing object": "does not exist (no such object in bucket",
}


@pytest.mark.parametrize("case", list(CASES))
def test_stage_in_names_the_cause(
    case: str, tmp_path: Path, stagein_s3: S3Server, strict_s3: S3Server
):
    tag = uuid.uuid4().hex[:8]
    bucket = stagein_s3.create_bucket(f"in-{tag}")
    server, url = {
        "missing bucket": (stagein_s3, f"s3://no-such-bucket-{tag}/input.bin"),
        "wrong credentials": (strict_s3, f"s3://{bucket}/input.bin"),
        "refused endpoint": (
            S3Server(f"http://127.0.0.1:{free_port()}", "k", "s"),
            f"s3://{bucket}/input.bin",
        ),
        "missing object": (stagein_s3, f"s3://{bucket}/input.bin"),
    }[case]
    message = _stage_in_message(server, url, tmp_path)
    assert CASES[case].format(tag=tag) in message, message
    assert "input 'scene'" in message and url in message
    # No other cause is named, and nothing of the engine's disk is shown.
    others = [CASES[c].format(tag=tag) for c in CASES if c != case]
    assert not [o for o in others if o in message], message
    assert str(tmp_path) not in message and "/tmp" not in message, message


@pytest.mark.parametrize("case", ["missing bucket", "wrong credentials", "refused endpoint"])
def test_stage_out_names_the_cause(case: str, stageout_s3: S3Server, strict_s3: S3Server):
    server = {
        "missing bucket": stageout_s3,
        "wrong credentials": strict_s3,
        "refused endpoint": S3Server(f"http://127.0.0.1:{free_port()}", "k", "s"),
    }[case]
    bucket = f"no-such-bucket-{uuid.uuid4().hex[:8]}" if case == "missing bucket" else "eoepca"
    settings = Settings(
        results=ResultSettings(
            s3_endpoint=server.endpoint,
            s3_access_key=server.access_key,
            s3_secret_key=server.secret_key,
            s3_bucket=bucket,
        ),
    )
    settings.transfer.attempts = 2
    with pytest.raises(StagingError) as raised:
        result_storage(settings, user="alice").check()
    expected = CASES[case].format(tag=bucket.removeprefix("no-such-bucket-"))
    assert expected in raised.value.detail, raised.value.detail
