"""Reprocessing schedules: each is a schedule of the process's Prefect deployment.

Its schedule-level parameters hold the execute request (``inputs``, ``outputs``,
``subscriber``), so it shows, and can be paused, on the deployment's page in the Prefect
UI. Prefect's scheduler creates its runs; the run's ``created_by`` names the schedule.
Prefect drops a deployment's upcoming runs on every schedule change, so each change asks
it to create them again at once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from dataclasses import replace
from typing import Any

from prefect.client.schemas.actions import DeploymentScheduleCreate
from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule
from prefect.exceptions import ObjectNotFound

from core.exceptions import NoSuchSchedule
from ogc_prefect.client import PrefectApi
from ogc_prefect.jobs import check_urls
from ogc_prefect.mapping import (
    ProcessRecord,
    ScheduleRecord,
    ScheduleSpec,
    prefect_schedule,
    run_parameters,
    schedule_record,
)
from ogc_prefect.processes import Processes
from ogc_prefect.quotas import Quotas

__all__ = ["Schedules"]

_TIMING = {"cron", "interval_s", "timezone", "anchor"}  # ScheduleSpec fields of the timing
_REQUEST = {"inputs", "outputs", "subscriber"}  # ScheduleSpec fields of the execute request


class Schedules:
    """Create, read, change (pause, resume) and delete the schedules of a user's process."""

    def __init__(self, api: PrefectApi, processes: Processes) -> None:
        self.api = api
        self.processes = processes

    async def create_schedule(
        self, user: str, process_id: str, spec: ScheduleSpec, *, jobs_url: str
    ) -> ScheduleRecord:
        """Add a reprocessing schedule to ``user``'s process; inputs validated like execute."""
        record = await self.processes.get_process(user, process_id)
        await Quotas(self.api).check_schedule(user)
        timing = self._timing(spec)
        parameters = await self._parameters(record, spec, jobs_url)
        async with self.api.writes:
            created = await self.api.call(
                self.api.client.create_deployment_schedules,
                record.deployment_id,
                [
                    DeploymentScheduleCreate(
                        schedule=timing, active=spec.active, parameters=parameters
                    )
                ],
            )
            if spec.active:
                await self._schedule_runs_now(record.deployment_id)
        return schedule_record(record, created[0])

    async def list_schedules(self, user: str, process_id: str) -> list[ScheduleRecord]:
        """The schedules of ``user``'s process, oldest first."""
        record = await self.processes.get_process(user, process_id)
        schedules = await self.api.call(
            self.api.client.read_deployment_schedules, record.deployment_id
        )
        records = [schedule_record(record, s) for s in schedules]
        return sorted(records, key=lambda r: (r.created or dt.datetime.min, r.schedule_id))

    async def get_schedule(self, user: str, process_id: str, schedule_id: str) -> ScheduleRecord:
        """One schedule of ``user``'s process; ``NoSuchSchedule`` when it has none by that id."""
        for record in await self.list_schedules(user, process_id):
            if record.schedule_id == schedule_id:
                return record
        raise NoSuchSchedule(f"process {process_id!r} has no schedule {schedule_id!r}")

    async def update_schedule(
        self,
        user: str,
        process_id: str,
        schedule_id: str,
        changes: dict[str, Any],
        *,
        jobs_url: str,
    ) -> ScheduleRecord:
        """Change a schedule: any of ``active`` (pause/resume), its timing, its request.

        ``changes`` maps :class:`ScheduleSpec` fields to their new values. Prefect drops
        the deployment's upcoming runs on every schedule change; they are created again
        from the schedules as they now are.
        """
        current = await self.get_schedule(user, process_id, schedule_id)
        spec = current.spec
        if "cron" in changes or "interval_s" in changes:
            # A new timing replaces the old one whole: cron and interval exclude each other.
            spec = replace(spec, cron=None, interval_s=None, anchor=None)
        spec = replace(spec, **changes)
        # Prefect resets the parameters of a schedule update that leaves them out.
        kwargs: dict[str, Any] = {"active": spec.active, "parameters": current.parameters}
        if _TIMING & set(changes):
            kwargs["schedule"] = self._timing(spec)
        if _REQUEST & set(changes):
            record = await self.processes.get_process(user, process_id)
            kwargs["parameters"] = await self._parameters(record, spec, jobs_url)
        async with self.api.writes:
            try:
                await self.api.call(
                    self.api.client.update_deployment_schedule,
                    current.deployment_id,
                    uuid.UUID(schedule_id),
                    **kwargs,
                )
            except ObjectNotFound:
                raise NoSuchSchedule(
                    f"process {process_id!r} has no schedule {schedule_id!r}"
                ) from None
            await self._schedule_runs_now(current.deployment_id)
        return await self.get_schedule(user, process_id, schedule_id)

    async def delete_schedule(self, user: str, process_id: str, schedule_id: str) -> None:
        """Delete a schedule; Prefect deletes its runs that have not started."""
        current = await self.get_schedule(user, process_id, schedule_id)
        async with self.api.writes:
            with contextlib.suppress(ObjectNotFound):
                await self.api.call(
                    self.api.client.delete_deployment_schedule,
                    current.deployment_id,
                    uuid.UUID(schedule_id),
                )
            # Prefect dropped every upcoming run of the deployment: recreate the others'.
            await self._schedule_runs_now(current.deployment_id)

    def _timing(self, spec: ScheduleSpec) -> CronSchedule | IntervalSchedule:
        return prefect_schedule(
            spec, min_interval_s=self.api.settings.gateway.schedule_min_interval_s
        )

    async def _parameters(
        self, record: ProcessRecord, spec: ScheduleSpec, jobs_url: str
    ) -> dict[str, Any]:
        """The runs' parameters, validated like an execute request's (URLs included)."""
        parameters = run_parameters(
            record.description, spec.inputs, spec.outputs, spec.subscriber, jobs_url
        )
        await check_urls(self.api.settings, record.description, parameters)
        return parameters

    async def _schedule_runs_now(self, deployment_id: uuid.UUID) -> None:
        """Have Prefect create a deployment's upcoming scheduled runs now.

        Its scheduler service would do it on its next pass (every 60 s); a new or
        resumed schedule should not wait that long.
        """
        await self.api.call(
            self.api.client.request,
            "POST",
            "/deployments/{id}/schedule",
            path_params={"id": deployment_id},
            json={},
        )
