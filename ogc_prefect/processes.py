"""Processes: a deployed process is a Prefect deployment plus its package block document.

Deploy saves the package (packed CWL + OGC description) as an application-package block
document and creates the deployment ``<process id>@<user>`` of the flow ``ogc-execute``
that names it; replace saves the new package and updates the deployment (its schedules
stay); undeploy deletes both.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from typing import Any

from prefect.client.schemas.actions import DeploymentUpdate
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterTags,
    FlowFilter,
    FlowFilterName,
)
from prefect.client.schemas.responses import DeploymentResponse
from prefect.exceptions import ObjectNotFound

import cwlpkg as cwl
from blocks.package import ApplicationPackage
from core.exceptions import DuplicatedProcess, InvalidInput, InvalidParameter, NoSuchProcess
from core.naming import (
    ENTRYPOINT,
    FLOW_NAME,
    PACKAGE_BLOCK_TYPE,
    PROCESS_ID,
    TAG,
    deployment_name,
    package_block_name,
    user_tag,
)
from ogc_prefect.client import PrefectApi
from ogc_prefect.mapping import DeployedPackage, ProcessRecord, deployment_fields
from ogc_prefect.quotas import Quotas

__all__ = ["Processes"]

# How old a cached process a submit may still use while it is read again behind: a
# process undeployed meanwhile fails the job when its run is created (the outbox's drainer).
_STALE_S = 30.0


class Processes:
    """Deploy, read, replace and undeploy a user's processes."""

    def __init__(self, api: PrefectApi) -> None:
        self.api = api

    async def get_process(
        self, user: str, process_id: str, *, max_age_s: float = 0
    ) -> ProcessRecord:
        """``user``'s process ``process_id``; ``max_age_s`` seconds allows a cached answer.

        ``NoSuchProcess`` when it is not deployed.
        """
        if not PROCESS_ID.match(process_id):
            # Could never have been deployed; Prefect would choke on some of these names.
            raise NoSuchProcess(f"no process {process_id[:100]!r} is deployed for user {user!r}")
        key = (user, process_id)
        cached = self.api.processes.get(key)
        if cached and time.monotonic() - cached[0] <= max_age_s:
            return cached[1]
        if cached and max_age_s and time.monotonic() - cached[0] <= _STALE_S:
            # A burst of submits must not all wait on a busy Prefect: one refresh, behind.
            self.api.refresh_once(key, self._read(user, process_id))
            return cached[1]
        return await self._read(user, process_id)

    async def _read(self, user: str, process_id: str) -> ProcessRecord:
        key = (user, process_id)
        try:
            deployment = await self.api.call(
                self.api.client.read_deployment_by_name,
                f"{FLOW_NAME}/{deployment_name(user, process_id)}",
            )
        except ObjectNotFound:
            self.forget(user, process_id)
            raise NoSuchProcess(
                f"no process {process_id!r} is deployed for user {user!r}"
            ) from None
        record = await self._record(deployment)
        self.api.processes[key] = (time.monotonic(), record)
        return record

    def forget(self, user: str, process_id: str) -> None:
        """Drop the cached record of ``user``'s process (it was replaced or undeployed)."""
        self.api.processes.pop((user, process_id), None)

    async def list_processes(self, user: str) -> list[ProcessRecord]:
        """``user``'s processes, by id."""
        deployments = await self.api.call(
            self.api.client.read_deployments,
            flow_filter=FlowFilter(name=FlowFilterName(any_=[FLOW_NAME])),
            deployment_filter=DeploymentFilter(
                tags=DeploymentFilterTags(all_=[TAG, user_tag(user)])
            ),
        )
        records = [await self._record(d) for d in deployments]
        return sorted(records, key=lambda r: r.process_id)

    async def deploy(self, user: str, package: DeployedPackage) -> ProcessRecord:
        """Create the process: package block + deployment. ``DuplicatedProcess`` if the
        id exists."""
        pid = package.process_id
        try:
            await self.get_process(user, pid)
        except NoSuchProcess:
            pass
        else:
            raise DuplicatedProcess(
                f"process {pid!r} is already deployed; replace it with PUT "
                f"/processes/{pid} or undeploy it first"
            )
        await Quotas(self.api).check_deploy(user)
        async with self.api.writes:
            await self._save_package(user, package)
            await self.api.call(
                self.api.client.create_deployment,
                flow_id=await self.api.flow_id(),
                name=deployment_name(user, pid),
                entrypoint=ENTRYPOINT,
                work_pool_name=self.api.settings.prefect.work_pool,
                enforce_parameter_schema=False,
                **deployment_fields(user, package),
            )
        return await self.get_process(user, pid)

    async def replace(self, user: str, process_id: str, package: DeployedPackage) -> None:
        """Replace the package of ``user``'s process ``process_id`` with ``package``.

        The deployment keeps its schedules; those whose inputs the new package no longer
        accepts are paused.
        """
        record = await self.get_process(user, process_id)
        if package.process_id != process_id:
            raise InvalidParameter(
                f"the package describes process {package.process_id!r}, not {process_id!r}; "
                f"select the workflow with ?w={process_id} or deploy it as a new process"
            )
        async with self.api.writes:
            await self._save_package(user, package)
            update = DeploymentUpdate(**deployment_fields(user, package))
            # No `schedules` in the update: Prefect keeps the deployment's schedules, drops
            # their upcoming runs and creates them again with the new revision.
            await self.api.call(self.api.client.update_deployment, record.deployment_id, update)
        self.forget(user, process_id)
        await self._pause_invalid_schedules(record.deployment_id, package.description)

    async def undeploy(self, user: str, process_id: str) -> None:
        """Delete the process's deployment (with its schedules and upcoming runs) and
        its package."""
        record = await self.get_process(user, process_id)
        async with self.api.writes:
            await self.api.call(self.api.client.delete_deployment, record.deployment_id)
            with contextlib.suppress(ObjectNotFound):
                document = await self.api.client.read_block_document_by_name(
                    record.package_name, PACKAGE_BLOCK_TYPE
                )
                await self.api.client.delete_block_document(document.id)
        self.forget(user, process_id)

    async def package_source(self, user: str, process_id: str) -> dict[str, Any]:
        """The package as it was deployed (the packed CWL for packages deployed without
        their source)."""
        record = await self.get_process(user, process_id)
        package = await self._package(record.package_name, record.revision)
        return package.source.get("document") or package.workflow

    async def _package(self, name: str, revision: str) -> ApplicationPackage:
        key = (name, revision)
        if key not in self.api.packages:
            document = await self.api.call(
                self.api.client.read_block_document_by_name, name, PACKAGE_BLOCK_TYPE
            )
            self.api.packages[key] = ApplicationPackage._from_block_document(document)
        return self.api.packages[key]

    async def _record(self, deployment: DeploymentResponse) -> ProcessRecord:
        params = deployment.parameters or {}
        package = await self._package(params["package"], params.get("revision", ""))
        return ProcessRecord(
            process_id=package.process_id,
            owner=package.owner,
            deployment_id=deployment.id,
            revision=params.get("revision", ""),
            package_name=params["package"],
            description=package.description,
        )

    async def _save_package(self, user: str, package: DeployedPackage) -> None:
        block = ApplicationPackage(
            process_id=package.process_id,
            owner=user,
            revision=package.revision,
            entrypoint=package.entrypoint,
            workflow=package.workflow,
            description=package.description,
            source=package.source,
            execution_engine=package.execution_engine,
        )
        await block.save(
            package_block_name(user, package.process_id), overwrite=True, client=self.api.client
        )

    async def _pause_invalid_schedules(
        self, deployment_id: uuid.UUID, description: dict[str, Any]
    ) -> None:
        """Pause the active schedules whose inputs the replaced process no longer accepts."""
        schedules = await self.api.call(self.api.client.read_deployment_schedules, deployment_id)
        for schedule in schedules:
            if not schedule.active:
                continue
            parameters = schedule.parameters or {}
            try:
                cwl.validate_inputs(description, parameters.get("inputs", {}))
            except InvalidInput:
                async with self.api.writes:
                    await self.api.call(
                        self.api.client.update_deployment_schedule,
                        deployment_id,
                        schedule.id,
                        active=False,
                        parameters=parameters,
                    )
