"""Removing one job's results from every store it may have used (real moto S3)."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import pytest

from blocks.result_stores import (
    discard_partial_results,
    job_stores,
    remove_job_results,
    remove_results_of_jobs,
)
from blocks.s3 import S3ResultStorage
from blocks.storage import LocalResultStorage
from core.retention import expires_at, purge_at
from core.settings import (
    ResultSettings,
    RetentionSettings,
    Settings,
    WorkspaceSettings,
)
from tests.s3_server import S3Server, WorkspaceApiStandIn


def test_a_local_folder_is_removed_once(tmp_path: Path):
    store = LocalResultStorage(basepath=tmp_path)
    store.write_path("processing-results/JOB/out/a.txt", b"a")
    store.write_path("processing-results/JOB/out/b/c.txt", b"c")
    store.write_path("processing-results/OTHER/out/a.txt", b"a")
    assert store.delete_folder("processing-results/JOB") == 2
    assert store.delete_folder("processing-results/JOB") == 0
    assert (tmp_path / "processing-results/OTHER/out/a.txt").exists()
    with pytest.raises(ValueError):
        store.delete_folder("")
    with pytest.raises(ValueError):
        store.delete_folder("../elsewhere")


def _settings(stageout: S3Server, api: WorkspaceApiStandIn | None = None, **keep: bool) -> Settings:
    workspace = (
        WorkspaceSettings(enabled=True, api_url=api.url, fallback=True)
        if api
        else WorkspaceSettings()
    )
    return Settings(
        results=ResultSettings(
            s3_endpoint=stageout.endpoint,
            s3_access_key=stageout.access_key,
            s3_secret_key=stageout.secret_key,
        ),
        workspace=workspace,
        retention=RetentionSettings(**keep),
    )


def test_a_job_is_removed_from_its_workspace_and_the_shared_bucket(
    stageout_s3: S3Server, workspace_api: WorkspaceApiStandIn, monkeypatch: pytest.MonkeyPatch
):
    user = f"ws{uuid.uuid4().hex[:6]}"
    bucket = workspace_api.register(user, stageout_s3)
    settings = _settings(stageout_s3, workspace_api)
    job = uuid.uuid4().hex
    # Five objects in batches of two: more than one DeleteObjects call.
    monkeypatch.setattr("blocks.s3._DELETE_BATCH", 2)
    for i in range(5):
        stageout_s3.put(bucket, f"processing-results/{job}/out/{i}.txt", b"x")
    stageout_s3.put("eoepca", f"processing-results/{job}/out/fallback.txt", b"x")
    stageout_s3.put("eoepca", f"processing-results/{job}-not/out/keep.txt", b"x")

    stores = job_stores(settings, user)
    assert [s.bucket for s in stores if isinstance(s, S3ResultStorage)] == [bucket, "eoepca"]
    removed = remove_job_results(settings, user=user, job_id=job)
    assert removed == [
        f"s3://{bucket}/processing-results/{job}/",
        f"s3://eoepca/processing-results/{job}/",
    ]
    assert stageout_s3.keys(bucket, f"processing-results/{job}/") == []
    assert stageout_s3.keys("eoepca", f"processing-results/{job}") == [
        f"processing-results/{job}-not/out/keep.txt"
    ]


def test_many_jobs_lose_their_results_in_shared_delete_calls(
    stageout_s3: S3Server, monkeypatch: pytest.MonkeyPatch
):
    """Housekeeping removes a page of jobs at once: the keys of several jobs go in one
    DeleteObjects call, and a call never takes more than its batch."""
    settings = _settings(stageout_s3)
    jobs = [uuid.uuid4().hex for _ in range(3)]
    calls: list[int] = []
    store = job_stores(settings, "alice")[0]
    delete_objects = store.client.delete_objects

    def counted(**kwargs):
        calls.append(len(kwargs["Delete"]["Objects"]))
        return delete_objects(**kwargs)

    monkeypatch.setattr(store.client, "delete_objects", counted)
    monkeypatch.setattr("blocks.s3._DELETE_BATCH", 4)
    for job, files in zip(jobs, (1, 2, 3), strict=True):
        for i in range(files):
            stageout_s3.put("eoepca", f"processing-results/{job}/out/{i}.txt", b"x")
    stageout_s3.put("eoepca", f"processing-results/{jobs[0]}-not/out/keep.txt", b"x")

    assert remove_results_of_jobs(settings, user="alice", job_ids=jobs) == 6
    assert calls == [4, 2]
    for job in jobs:
        assert stageout_s3.keys("eoepca", f"processing-results/{job}/") == []
    assert stageout_s3.keys("eoepca", f"processing-results/{jobs[0]}-not/") == [
        f"processing-results/{jobs[0]}-not/out/keep.txt"
    ]
    assert remove_results_of_jobs(settings, user="alice", job_ids=jobs) == 0


def test_a_local_store_removes_many_jobs_folders(tmp_path: Path):
    store = LocalResultStorage(basepath=tmp_path)
    store.write_path("processing-results/A/out/a.txt", b"a")
    store.write_path("processing-results/B/out/b.txt", b"b")
    store.write_path("processing-results/C/out/c.txt", b"c")
    assert store.delete_folders(["processing-results/A", "processing-results/B"]) == 2
    assert [p.name for p in (tmp_path / "processing-results").iterdir()] == ["C"]


def test_partial_results_are_removed_or_kept_as_the_operator_says(stageout_s3: S3Server):
    job = uuid.uuid4().hex
    key = f"processing-results/{job}/first/first.txt"
    stageout_s3.put("eoepca", key, b"x")
    keep = _settings(stageout_s3, keep_failed_outputs=True)
    said = discard_partial_results(keep, job_stores(keep, "alice"), job_id=job)
    assert said.startswith(
        f"anything it had uploaded is kept at s3://eoepca/processing-results/{job}/"
    )
    assert stageout_s3.keys("eoepca", f"processing-results/{job}/") == [key]
    clean = _settings(stageout_s3)
    said = discard_partial_results(clean, job_stores(clean, "alice"), job_id=job)
    assert said == "the 1 files it had uploaded were removed"
    assert stageout_s3.keys("eoepca", f"processing-results/{job}/") == []


def test_expiry_and_purge_follow_the_policy():
    ended = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert expires_at(ended, RetentionSettings()) is None
    assert expires_at(None, RetentionSettings(retention_days=1)) is None
    policy = RetentionSettings(retention_days=0.5, purge_days=2)
    assert expires_at(ended, policy) == ended + dt.timedelta(hours=12)
    assert purge_at(ended, policy) == ended + dt.timedelta(hours=60)
    assert purge_at(ended, RetentionSettings(retention_days=1)) is None


def test_a_jobs_own_retention_applies_within_the_sites():
    """A job's own retention (its process's, seconds) replaces the site's, which bounds
    it when set; purging stays the site's time after either."""
    ended = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    policy = RetentionSettings(retention_days=1, purge_days=2)
    assert expires_at(ended, policy, 3600) == ended + dt.timedelta(hours=1)
    assert purge_at(ended, policy, 3600) == ended + dt.timedelta(hours=49)
    assert expires_at(ended, policy, 3 * 86400) == ended + dt.timedelta(days=1)  # the site's
    assert expires_at(ended, RetentionSettings(), 60) == ended + dt.timedelta(minutes=1)
    assert purge_at(ended, RetentionSettings(), 60) is None
