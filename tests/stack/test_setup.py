"""`oapip setup` against the session's real Prefect server."""

from __future__ import annotations

import random
from pathlib import Path

from stack.setup import setup
from tests.conftest import Engine
from tests.support import settings_from


def test_a_kubernetes_pool_follows_the_settings_at_each_setup(engine: Engine, tmp_path: Path):
    """The Helm chart runs setup at every start of the worker pod: an upgrade that changes
    the flow-run Jobs (image, ConfigMap) must reach the existing pool's job template."""
    from prefect.client.orchestration import get_client
    from prefect.settings import temporary_settings

    pool = f"oapip-kubernetes-{random.randint(0, 10**6)}"
    base = {"OAPIP_WORK_POOL": pool, "OAPIP_HOME": str(tmp_path)}
    with temporary_settings(updates=engine.prefect_settings()):
        setup(settings_from({**base, "OAPIP_JOB_IMAGE": "oapip:1"}), pool_type="kubernetes")
        upgraded = {**base, "OAPIP_JOB_IMAGE": "oapip:2", "OAPIP_JOB_CONFIG_MAP": "oapip-config"}
        setup(settings_from(upgraded), pool_type="kubernetes")
        with get_client(sync_client=True) as client:
            template = client.read_work_pool(pool).base_job_template
            client.delete_work_pool(pool)
    assert template["variables"]["properties"]["image"]["default"] == "oapip:2"
    pod = template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["envFrom"] == [{"configMapRef": {"name": "oapip-config"}}]
