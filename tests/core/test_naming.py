"""Tags read back from a job's flow run: how its results are answered (the response
tag), and how long it keeps them (the retention tag its process's deployment gave it)."""

from __future__ import annotations

import pytest

from core.naming import (
    OWN_RETENTION_TAG,
    job_tags,
    response_of,
    response_tag,
    retention_of,
    retention_tag,
)


@pytest.mark.parametrize("response", ["raw", "document"])
def test_a_tagged_job_answers_as_its_request_asked(response: str):
    assert response_of([*job_tags("alice", "echo"), response_tag(response)]) == response


def test_an_untagged_job_answers_the_document():
    """Runs a schedule or the Prefect UI started, and runs from before every job was
    tagged (when only raw was), have no response tag: the results document."""
    assert response_of(job_tags("alice", "echo")) == "document"
    assert response_of([]) == "document"


@pytest.mark.parametrize(
    ("seconds", "tag"), [(2592000, "retention:2592000s"), (8.64, "retention:8.64s")]
)
def test_a_retention_reads_back_from_its_tag(seconds: float, tag: str):
    assert retention_tag(seconds) == tag
    tags = job_tags("alice", "echo", retention_s=seconds)
    assert OWN_RETENTION_TAG in tags and tag in tags
    assert retention_of(tags) == seconds


def test_a_job_without_a_retention_tag_has_none_of_its_own():
    """A process deployed without ``jobRetentionDays`` (and a tag someone mistyped in
    the Prefect UI) leaves its jobs to the site's retention."""
    assert retention_of(job_tags("alice", "echo")) is None
    assert retention_of(["retention:soon", "retention:-3s", "retention:nans"]) is None
    assert retention_of(["retention:60s", "retention:30s"]) == 30
