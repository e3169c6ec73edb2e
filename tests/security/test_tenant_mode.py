"""Multi-tenant mode (OIDC on) starts only with the tool sandbox (issue 14, item 1)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.settings import ExecutionSettings, OidcSettings, Settings
from core.tenancy import mode_problem


@pytest.mark.parametrize(
    "argv",
    [
        ["-m", "uvicorn", "api_gateway.main:app", "--port", "1"],
        ["-m", "worker.fast"],
        ["-m", "stack.cli", "up"],
    ],
    ids=["gateway", "worker", "oapip-up"],
)
def test_multi_tenant_mode_without_the_sandbox_exits_naming_the_setting(
    argv: list[str], tmp_path: Path
):
    env = {
        **os.environ,
        "OAPIP_HOME": str(tmp_path),
        "OAPIP_OIDC_ISSUER": "https://auth.example.org/realms/eo",
        "OAPIP_SANDBOX": "off",
    }
    done = subprocess.run(
        [sys.executable, *argv], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0
    assert "OAPIP_SANDBOX=containers" in done.stderr, done.stderr
    assert "multi-tenant mode" in done.stderr, done.stderr
    assert not (tmp_path / "run").exists()  # nothing was started


def test_single_user_mode_and_sandboxed_multi_tenant_mode_may_start():
    assert mode_problem(Settings()) is None
    oidc = OidcSettings(issuer="https://auth.example.org/realms/eo")
    assert mode_problem(Settings(oidc=oidc)) is not None
    sandboxed = ExecutionSettings(sandbox="containers")
    assert mode_problem(Settings(oidc=oidc, execution=sandboxed)) is None
