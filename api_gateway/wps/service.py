"""The WPS operations, on the OGC ↔ Prefect adapter: the same processes and jobs as the
OGC API, through the same calls (``Processes``, ``Jobs``), never a registry or job store
of their own.

* GetCapabilities / DescribeProcess read the user's deployed processes;
* Execute submits a job exactly as ``POST …/execution`` does. Asynchronous (1.0.0
  ``storeExecuteResponse``, 2.0 ``mode=async``) it answers at once with the job; otherwise
  it waits like a synchronous OGC execute (``OAPIP_SYNC_EXECUTE_TIMEOUT_S``) and answers
  the results — or the job as it stands when it takes longer;
* WPS 1.0.0's statusLocation is ``<wps>/jobs/<jobID>``, rendered from the job's state at
  every read; WPS 2.0 GetStatus / GetResult / Dismiss take the job id. Every job is also
  ``/ogc-api/jobs/<jobID>``, and every OGC job is a WPS job.

Files (CWL File/Directory outputs) are always given by reference (the results
document's ``href``); literals, JSON and bounding boxes by value. A raw output of a file
is a 303 redirect to it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response

from api_gateway.wps import v1, v2
from api_gateway.wps.datatypes import (
    DataDescription,
    InputValue,
    OutputValue,
    describe_inputs,
    describe_outputs,
    guess_outputs,
    output_values,
    to_ogc_input,
)
from api_gateway.wps.exceptions import V1, V2
from api_gateway.wps.request import WpsRequest
from api_gateway.wps.xmlio import xml_response
from core.exceptions import NoSuchProcess, OwsException
from ogc_prefect import JobRecord, Jobs, Processes, ProcessRecord

__all__ = ["WpsContext", "WpsService"]

_FINAL = ("successful", "failed", "dismissed")


@dataclass(frozen=True)
class WpsContext:
    """Where a WPS request sits: its user and the URLs its documents link to."""

    user: str
    url: str  # this WPS endpoint: <root>/<user>/wps or <root>/wps
    site: str  # the user's OGC API landing page
    jobs_url: str  # the user's OGC API job list (for callbacks)
    sync_timeout_s: float  # how long a synchronous Execute waits for its job


class WpsService:
    """Answers one user's WPS requests."""

    def __init__(self, ctx: WpsContext, processes: Processes, jobs: Jobs) -> None:
        self.ctx = ctx
        self.processes = processes
        self.jobs = jobs

    async def answer(self, request: WpsRequest) -> Response:
        """The response to ``request``; errors are raised (``OwsException``, the adapter's)."""
        operations: dict[str, Callable[[WpsRequest], Awaitable[Response]]] = {
            "GetCapabilities": self.get_capabilities,
            "DescribeProcess": self.describe_process,
            "Execute": self.execute,
            "GetStatus": self.get_status,
            "GetResult": self.get_result,
            "Dismiss": self.dismiss,
        }
        return await operations[request.operation](request)

    # --- processes ---------------------------------------------------------------------

    async def get_capabilities(self, request: WpsRequest) -> Response:
        records = await self.processes.list_processes(self.ctx.user)
        version = v1 if request.version == V1 else v2
        return xml_response(version.capabilities(self.ctx.url, self.ctx.site, records))

    async def describe_process(self, request: WpsRequest) -> Response:
        if [i.upper() for i in request.identifiers] == ["ALL"]:
            records = await self.processes.list_processes(self.ctx.user)
        else:
            records = [await self._process(pid, request.version) for pid in request.identifiers]
        if request.version == V1:
            return xml_response(v1.process_descriptions(records))
        return xml_response(v2.process_offerings(records))

    async def _process(self, process_id: str, version: str) -> ProcessRecord:
        try:
            return await self.processes.get_process(self.ctx.user, process_id, max_age_s=2)
        except NoSuchProcess as exc:
            code = "NoSuchProcess" if version == V2 else "InvalidParameterValue"
            raise OwsException(code, exc.detail, process_id[:100]) from None

    # --- execute -------------------------------------------------------------------------

    async def execute(self, request: WpsRequest) -> Response:
        record = await self._process(request.identifiers[0], request.version)
        inputs = self._inputs(record, request)
        selection = self._outputs(record, request)
        if request.raw and request.mode == "async":
            raise OwsException(
                "InvalidParameterValue",
                "response=raw is answered synchronously (mode=sync or auto); an asynchronous "
                "job's result is a wps:Result document",
                "response",
            )
        job, _ = await self.jobs.execute(
            self.ctx.user,
            record.process_id,
            inputs,
            selection,
            jobs_url=self.ctx.jobs_url,
            # WPS answers from the results document; the OGC API's /results of the job too.
            response="document",
        )
        if request.mode != "async":
            job = await self.jobs.wait(self.ctx.user, job.job_id, self.ctx.sync_timeout_s)
        if request.version == V2:
            return await self._execute_v2(request, record, job)
        if request.raw and job.status == "successful":
            return await self._raw(record, job, request.outputs[0].id)
        if request.raw and job.status in _FINAL:
            raise _failure(job)
        return await self._execute_response(job, record, stored=request.mode == "async")

    async def _execute_v2(
        self, request: WpsRequest, record: ProcessRecord, job: JobRecord
    ) -> Response:
        if job.status not in _FINAL:
            return xml_response(v2.status_info(job))
        if job.status != "successful":
            raise _failure(job)
        if request.raw:
            return await self._raw(record, job, self._raw_output(record, request))
        return xml_response(v2.result(job.job_id, await self._outputs_of(record, job)))

    def _inputs(self, record: ProcessRecord, request: WpsRequest) -> dict[str, Any]:
        """The OGC execute ``inputs`` from the request's input values."""
        described = {d.id: d for d in describe_inputs(record.description)}
        given: dict[str, list[InputValue]] = {}
        for value in request.inputs:
            if value.id not in described:
                raise OwsException(
                    "NoSuchInput" if request.version == V2 else "InvalidParameterValue",
                    f"process {record.process_id!r} has no input {value.id[:100]!r}; it takes: "
                    + (", ".join(described) or "none"),
                    value.id[:100],
                )
            given.setdefault(value.id, []).append(value)
        for name, spec in described.items():
            if spec.min_occurs >= 1 and name not in given:
                raise OwsException("MissingParameterValue", f"input {name!r} is required", name)
        return {
            name: to_ogc_input(described[name], values, version=request.version)
            for name, values in given.items()
        }

    def _outputs(self, record: ProcessRecord, request: WpsRequest) -> dict[str, Any] | None:
        """The OGC execute ``outputs`` (the outputs to keep), None for all."""
        names = [d.id for d in describe_outputs(record.description)]
        for output in request.outputs:
            if output.id not in names:
                raise OwsException(
                    "NoSuchOutput" if request.version == V2 else "InvalidParameterValue",
                    f"process {record.process_id!r} has no output {output.id[:100]!r}; it "
                    "gives: " + (", ".join(names) or "none"),
                    output.id[:100],
                )
        if request.raw:
            self._raw_output(record, request)
        return {output.id: {} for output in request.outputs} or None

    def _raw_output(self, record: ProcessRecord | None, request: WpsRequest) -> str:
        """The one output a raw response carries."""
        names = [o.id for o in request.outputs]
        if not names and record is not None:
            names = [d.id for d in describe_outputs(record.description)]
        if len(names) != 1:
            raise OwsException(
                "InvalidParameterValue",
                "a raw response carries one output: name it (wps:Output) or use response=document",
                "response",
            )
        return names[0]

    # --- jobs ----------------------------------------------------------------------------

    async def status_location(self, job_id: str) -> Response:
        """WPS 1.0.0: the ExecuteResponse at a job's statusLocation, as the job stands."""
        job = await self.jobs.get_job(self.ctx.user, job_id)
        record = await self._maybe_process(job.process_id)
        return await self._execute_response(job, record, stored=True)

    async def get_status(self, request: WpsRequest) -> Response:
        job = await self.jobs.get_job(self.ctx.user, request.job_id or "")
        return xml_response(v2.status_info(job))

    async def get_result(self, request: WpsRequest) -> Response:
        job = await self.jobs.get_job(self.ctx.user, request.job_id or "")
        if job.status == "failed":
            raise _failure(job)
        record = await self._maybe_process(job.process_id)
        return xml_response(v2.result(job.job_id, await self._outputs_of(record, job)))

    async def dismiss(self, request: WpsRequest) -> Response:
        job = await self.jobs.dismiss(self.ctx.user, request.job_id or "")
        return xml_response(v2.status_info(job, status="Dismissed"))

    # --- helpers -------------------------------------------------------------------------

    async def _maybe_process(self, process_id: str | None) -> ProcessRecord | None:
        """The job's process, or None when it has been undeployed since."""
        try:
            return await self.processes.get_process(self.ctx.user, process_id or "", max_age_s=2)
        except NoSuchProcess:
            return None

    async def _outputs_of(self, record: ProcessRecord | None, job: JobRecord) -> list[OutputValue]:
        """The outputs of a successful job (``ResultNotReady`` for any other)."""
        results = await self.jobs.results(self.ctx.user, job.job_id)
        return output_values(_described_outputs(record, results), results)

    async def _execute_response(
        self, job: JobRecord, record: ProcessRecord | None, *, stored: bool
    ) -> Response:
        outputs = await self._outputs_of(record, job) if job.status == "successful" else None
        # A synchronous Execute that outlived its wait hands over the job, as the OGC API does.
        stored = stored or job.status not in _FINAL
        document = v1.execute_response(
            url=self.ctx.url,
            process_id=job.process_id or "",
            record=record,
            job=job,
            outputs=outputs,
            status_location=f"{self.ctx.url}/jobs/{job.job_id}" if stored else None,
        )
        return xml_response(document)

    async def _raw(self, record: ProcessRecord | None, job: JobRecord, output_id: str) -> Response:
        """One output as it is: a literal as text, a file as a redirect to it, anything
        else (a bounding box, JSON, an array) as JSON."""
        results = await self.jobs.results(self.ctx.user, job.job_id)
        values = [
            v
            for v in output_values(_described_outputs(record, results), results)
            if v.id == output_id
        ]
        if len(values) != 1:
            return JSONResponse(results.get(output_id))
        value = values[0]
        if value.kind == "complex":
            return RedirectResponse(value.href or "", status_code=303)
        if value.kind == "literal":
            text = value.value if not isinstance(value.value, bool) else str(value.value).lower()
            return PlainTextResponse(str(text))
        return JSONResponse(results.get(output_id))


def _described_outputs(
    record: ProcessRecord | None, results: dict[str, Any]
) -> list[DataDescription]:
    if record is None:
        return guess_outputs(results)
    return describe_outputs(record.description)


def _failure(job: JobRecord) -> OwsException:
    """What a request for the results of a job that failed (or was dismissed) gets."""
    return OwsException("NoApplicableCode", f"job {job.job_id} {job.status}: {job.message}")
