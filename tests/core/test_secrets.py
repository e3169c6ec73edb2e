"""Secret masking and the security settings, without a running engine."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydantic import Field, SecretStr

from core.secrets import (
    ELIDED,
    MASK,
    Redactor,
    install_log_redaction,
    redact,
    secret_values,
    without_traceback,
)
from core.settings import ExecutionSettings, OidcSettings, OutboundSettings, Settings


class _WithSecrets(Settings):
    """Settings as they are once backends add secret fields (S3, WES)."""

    s3_secret_key: SecretStr | None = Field(default=None, description="test")
    wes_password: SecretStr | None = Field(default=None, description="test")


def test_every_secret_setting_is_found():
    settings = _WithSecrets(s3_secret_key="s3-top-secret", wes_password="wes-pass-123")
    assert secret_values(settings) == ["s3-top-secret", "wes-pass-123"]
    assert secret_values(_WithSecrets()) == []


def test_redact_masks_every_occurrence():
    text = "endpoint http://key:s3-top-secret@host failed (s3-top-secret)"
    assert redact(text, ["s3-top-secret"]) == f"endpoint http://key:{MASK}@host failed ({MASK})"


def test_log_records_and_tracebacks_are_masked(caplog: pytest.LogCaptureFixture):
    factory = logging.getLogRecordFactory()
    try:
        install_log_redaction(_WithSecrets(wes_password="wes-pass-123"))
        logger = logging.getLogger("oapip.test-secrets")
        with caplog.at_level(logging.INFO, logger="oapip.test-secrets"):
            logger.info("calling WES with %s", "wes-pass-123")
            try:
                raise RuntimeError("login wes-pass-123 refused")
            except RuntimeError:
                logger.exception("failed")
        text = caplog.text
    finally:
        logging.setLogRecordFactory(factory)
    assert "wes-pass-123" not in text
    assert text.count(MASK) >= 2, text


@pytest.mark.parametrize("algorithms", [["none"], ["HS256"], ["RS256", "hs512"], []])
def test_symmetric_or_no_algorithms_are_refused(algorithms: list[str]):
    with pytest.raises(ValueError):
        OidcSettings(algorithms=algorithms)


def test_allowed_networks_must_be_networks():
    with pytest.raises(ValueError):
        OutboundSettings(allowed_networks=["not-a-network"])
    assert OutboundSettings(allowed_networks=["10.0.0.0/8"]).allowed_networks


def test_resource_maxima_refuse_numbers_not_expressions():
    from api_gateway.packages import check_resources
    from core.exceptions import InvalidPackage

    settings = Settings(execution=ExecutionSettings(max_job_ram_mib=1024, max_job_cores=2))
    fine = {"requirements": [{"class": "ResourceRequirement", "ramMin": 512, "coresMin": 2}]}
    check_resources(fine, settings)
    check_resources({"hints": {"ResourceRequirement": {"ramMin": "$(inputs.n * 2)"}}}, settings)
    nested = {"$graph": [{"hints": {"ResourceRequirement": {"ramMin": 4096, "coresMin": 8}}}]}
    with pytest.raises(InvalidPackage) as refused:
        check_resources(nested, settings)
    assert "ramMin 4096 MiB" in refused.value.detail and "coresMin 8" in refused.value.detail


def test_the_redactor_elides_engine_paths_drops_tracebacks_and_masks_secrets(tmp_path):
    settings = _WithSecrets(home=tmp_path / "home", wes_password="wes-pass-123")
    redact = Redactor.from_settings(settings)
    repo = str(Path(__file__).resolve().parents[2])
    assert str(tmp_path / "home") in redact.paths and repo in redact.paths
    text = (
        f"[job main] {tmp_path}/home/jobs/j1/tmp/o1$ echo wes-pass-123\n"
        f"{tmp_path}/home-other stays, {repo}/core/http.py does not\n"
        "Traceback (most recent call last):\n"
        f'  File "{repo}/flows/execution.py", line 1'
    )
    assert redact(text) == (
        f"[job main] {ELIDED}/jobs/j1/tmp/o1$ echo {MASK}\n"
        f"{tmp_path}/home-other stays, {ELIDED}/core/http.py does not"
    )
    assert redact.secrets_only(f"{tmp_path}/home wes-pass-123") == f"{tmp_path}/home {MASK}"
    assert without_traceback("no traceback here") == "no traceback here"
