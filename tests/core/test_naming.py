"""The response tag: how a job's results are answered, read back from its flow run."""

from __future__ import annotations

import pytest

from core.naming import job_tags, response_of, response_tag


@pytest.mark.parametrize("response", ["raw", "document"])
def test_a_tagged_job_answers_as_its_request_asked(response: str):
    assert response_of([*job_tags("alice", "echo"), response_tag(response)]) == response


def test_an_untagged_job_answers_the_document():
    """Runs a schedule or the Prefect UI started, and runs from before every job was
    tagged (when only raw was), have no response tag: the results document."""
    assert response_of(job_tags("alice", "echo")) == "document"
    assert response_of([]) == "document"
