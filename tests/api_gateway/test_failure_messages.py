"""A failed job's status message carries cwltool's own reason for the failing step."""

from __future__ import annotations

from tests.cwlpkg.test_runner import GLOB_MISMATCH_CWL
from tests.support import deploy_cwl, execute_async, wait_for_status


def test_a_glob_that_matched_nothing_is_the_jobs_message(api: str) -> None:
    deploy_cwl(api, GLOB_MISMATCH_CWL)

    created = execute_async(api, "resize", {})
    assert created.status_code == 201, created.text
    final = wait_for_status(created.headers["Location"], timeout=120)

    assert final["status"] == "failed", final
    message = final["message"]
    assert "step convert failed" in message, message
    assert "Did not find output file with glob pattern: ['*-resize.png']" in message, message
