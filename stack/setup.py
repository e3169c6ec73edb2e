"""Set up a Prefect server for the engine (idempotent; every start runs it).

Check the engine-wide backend, register the block types (every backend's through
:mod:`blocks.registry`), save the result-storage block, create the work pool (with the
job template its type needs) and the generic flow.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from core.naming import FAST_POOL_TYPE, FLOW_NAME, RESULT_STORAGE_BLOCK
from core.settings import Settings
from core.settings.table import secret_names

__all__ = ["kubernetes_job_template", "setup"]

# The fast worker needs no per-run infrastructure settings; Prefect still wants a template.
_FAST_TEMPLATE = {
    "job_configuration": {"env": "{{ env }}"},
    "variables": {
        "type": "object",
        "properties": {
            "env": {
                "type": "object",
                "title": "Environment",
                "default": {},
                "description": "Reserved; the fast worker runs jobs in its own environment.",
            }
        },
    },
}


def kubernetes_job_template(settings: Settings | None = None) -> dict[str, Any]:
    """Base job template of a ``kubernetes`` work pool: flow runs as Jobs in the engine's image.

    prefect-kubernetes' default with ``completions``/``parallelism`` moved from the pod spec
    to the Job spec (where the Kubernetes schema has them), the Pod Security ``restricted``
    profile, a read-only root with volumes for what is written, and resource limits.
    ``prefect work-pool create --base-job-template`` takes the file as it is. With
    ``settings`` (``OAPIP_JOB_*``), the image, namespace and service account are its, and
    each Job gets the engine's settings: the ConfigMap's keys (``envFrom``), every secret
    setting from the Secret by key (the Job object holds references, never values), and
    the shared data volume at ``<OAPIP_HOME>/data``.
    """
    template = json.loads((Path(__file__).parent / "kubernetes_job_template.json").read_text())
    if settings is None:
        return template
    pool = settings.kubernetes_pool
    defaults = {"image": pool.image, "namespace": pool.namespace}
    defaults["service_account_name"] = pool.service_account
    for name, value in defaults.items():
        if value:
            template["variables"]["properties"][name]["default"] = value
    pod = template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    if pool.config_map:
        container["envFrom"] = [{"configMapRef": {"name": pool.config_map}}]
    if pool.secret:
        # prefect-kubernetes puts the pool's `env` variable before these entries.
        container["env"] = [
            {
                "name": name,
                "valueFrom": {"secretKeyRef": {"name": pool.secret, "key": name, "optional": True}},
            }
            for name in [*secret_names(), "PREFECT_API_AUTH_STRING"]
        ]
    if pool.data_claim:
        pod["volumes"].append(
            {"name": "data", "persistentVolumeClaim": {"claimName": pool.data_claim}}
        )
        container["volumeMounts"].append({"name": "data", "mountPath": str(settings.home / "data")})
    return template


async def _setup(settings: Settings, pool_type: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
    from prefect.exceptions import ObjectAlreadyExists
    from prefect.filesystems import LocalFileSystem
    from prefect.workers.utilities import get_default_base_job_template_for_infrastructure_type

    from blocks import registry
    from blocks.package import ApplicationPackage
    from blocks.storage import LocalResultStorage

    if settings.execution.engine not in registry.names(settings):
        raise ValueError(
            f"OAPIP_EXECUTION_ENGINE={settings.execution.engine!r} is not an execution "
            f"backend; the backends are {', '.join(registry.names(settings))}"
        )
    async with get_client() as client:
        for block_class in (
            ApplicationPackage,
            *registry.block_types(settings),
            LocalResultStorage,
            LocalFileSystem,
        ):
            await block_class.register_type_and_schema(client=client)
        results = settings.prefect.results_dir or settings.home / "prefect-results"
        storage = LocalFileSystem(basepath=str(results))
        await storage.save(RESULT_STORAGE_BLOCK.split("/")[1], overwrite=True, client=client)
        if pool_type == FAST_POOL_TYPE:
            template = _FAST_TEMPLATE
        elif pool_type == "kubernetes":
            template = kubernetes_job_template(settings)
        else:
            template = await get_default_base_job_template_for_infrastructure_type(pool_type)
        try:
            await client.create_work_pool(
                WorkPoolCreate(
                    name=settings.prefect.work_pool,
                    type=pool_type,
                    base_job_template=template or {},
                )
            )
        except ObjectAlreadyExists:
            if pool_type == "kubernetes":  # the Jobs follow the settings (a chart upgrade)
                await client.update_work_pool(
                    settings.prefect.work_pool, WorkPoolUpdate(base_job_template=template)
                )
        await client.create_flow_from_name(FLOW_NAME)


def setup(settings: Settings, *, pool_type: str = FAST_POOL_TYPE) -> None:
    """Prepare the Prefect server for the engine (idempotent)."""
    asyncio.run(_setup(settings, pool_type))
