"""Set up a Prefect server for the engine (idempotent; every start runs it).

Check the engine-wide backend, register the block types (every backend's through
:mod:`blocks.registry`), save the result-storage block, create the work pool (with the
job template its type needs) and the generic flow.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

from core.naming import FAST_POOL_TYPE, FLOW_NAME, RESULT_STORAGE_BLOCK
from core.settings import Settings

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


def kubernetes_job_template(defaults: dict[str, str | None] | None = None) -> dict[str, Any]:
    """Base job template of a ``kubernetes`` work pool: flow runs as Jobs in the engine's image.

    prefect-kubernetes' default with ``completions``/``parallelism`` moved from the pod spec
    to the Job spec (where the Kubernetes schema has them), a non-root security context
    and the engine's defaults (image, namespace, service account, resources).
    ``prefect work-pool create --base-job-template`` takes the same file. ``defaults``
    replaces the default of job variables (``image``, ``namespace``,
    ``service_account_name``); unset values keep the file's.
    """
    template = json.loads((Path(__file__).parent / "kubernetes_job_template.json").read_text())
    for name, value in (defaults or {}).items():
        if value:
            template["variables"]["properties"][name]["default"] = value
    return template


async def _setup(settings: Settings, pool_type: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
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
        storage = LocalFileSystem(basepath=str(settings.home / "prefect-results"))
        await storage.save(RESULT_STORAGE_BLOCK.split("/")[1], overwrite=True, client=client)
        if pool_type == FAST_POOL_TYPE:
            template = _FAST_TEMPLATE
        elif pool_type == "kubernetes":
            template = kubernetes_job_template(
                {
                    "image": settings.kubernetes_pool.image,
                    "namespace": settings.kubernetes_pool.namespace,
                    "service_account_name": settings.kubernetes_pool.service_account,
                }
            )
        else:
            template = await get_default_base_job_template_for_infrastructure_type(pool_type)
        with contextlib.suppress(ObjectAlreadyExists):
            await client.create_work_pool(
                WorkPoolCreate(
                    name=settings.prefect.work_pool,
                    type=pool_type,
                    base_job_template=template or {},
                )
            )
        await client.create_flow_from_name(FLOW_NAME)


def setup(settings: Settings, *, pool_type: str = FAST_POOL_TYPE) -> None:
    """Prepare the Prefect server for the engine (idempotent)."""
    asyncio.run(_setup(settings, pool_type))
