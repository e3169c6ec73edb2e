"""Read an OGC Part 2 deploy/replace request into a validated :class:`DeployedPackage`.

Media types: ``application/cwl``, ``application/cwl+yaml``, ``application/cwl+json`` (the
body is the CWL document) and ``application/ogcapppkg+json`` (or plain
``application/json``) whose ``executionUnit`` gives the CWL inline (``value``) or by
reference (``href``). Its optional ``executionEngine`` picks the backend the process runs
on: an engine name (``"toil"``) or a saved backend Block (``"toil-wes-backend/site-b"``);
unset, it runs on the engine-wide ``OAPIP_EXECUTION_ENGINE``. Its optional
``jobRetentionDays`` is how long the process's jobs keep their results (at most the
site's ``OAPIP_JOB_RETENTION_DAYS``, when set); unset, the site's retention applies.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from typing import Any

from starlette.concurrency import run_in_threadpool

import cwlpkg as cwl
from api_gateway.package_imports import resolve_imports
from blocks import registry
from core import http
from core.exceptions import (
    EngineError,
    InvalidPackage,
    InvalidParameter,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from core.naming import PROCESS_ID
from core.settings import Settings
from cwlpkg.sandbox import tools_without_image
from ogc_prefect import DeployedPackage

__all__ = [
    "warm_up",
    "CWL_MEDIA_TYPES",
    "PACKAGE_MEDIA_TYPES",
    "build_package",
    "check_media_type",
    "check_resources",
    "read_package",
]

CWL_MEDIA_TYPES = ("application/cwl", "application/cwl+yaml", "application/cwl+json")
PACKAGE_MEDIA_TYPES = (*CWL_MEDIA_TYPES, "application/ogcapppkg+json", "application/json")
# The longest jobRetentionDays a process may name (100 years; dates must stay in range).
_MAX_RETENTION_DAYS = 36500
# A saved backend Block document, `<block type slug>/<document name>`.
_BACKEND_BLOCK = re.compile(r"^[a-z0-9-]+-backend/[a-z0-9-]{1,100}$")


_TINY_TOOL = {
    "cwlVersion": "v1.2",
    "class": "CommandLineTool",
    "id": "warm-up",
    "baseCommand": "true",
    "inputs": [],
    "outputs": [],
}


def warm_up() -> None:
    """Validate a tiny package once: cwltool loads its schemas on the first validation
    of a process (1.2-1.5 s), which the first deploy would otherwise wait for."""
    cwl.validate_document(dict(_TINY_TOOL))


def check_media_type(content_type: str | None) -> str:
    """The bare media type of a deploy body, or 415 naming the ones we read."""
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type not in PACKAGE_MEDIA_TYPES:
        raise UnsupportedMediaType(
            f"cannot deploy a body of type {media_type or '(none)'!r}; send one of "
            + ", ".join(PACKAGE_MEDIA_TYPES)
        )
    return media_type


async def _fetch(href: str, settings: Settings) -> str:
    """The text at ``href`` (:func:`core.http.fetch` with the gateway's limits), or the
    deploy request's error naming what went wrong."""
    limits = settings.gateway
    try:
        body = await http.fetch(
            href,
            guard=http.Guard.from_settings(settings),
            max_bytes=limits.package_fetch_max_bytes,
            timeout_s=limits.package_fetch_timeout_s,
        )
    except http.FetchError as exc:
        raise _fetch_error(href, exc) from exc
    try:
        return body.decode()
    except UnicodeDecodeError as exc:
        raise InvalidPackage(f"the application package at {href} is not UTF-8 text") from exc


def _fetch_error(href: str, exc: http.FetchError) -> EngineError:
    """What a failed fetch of the package at ``href`` tells the client."""
    if isinstance(exc, http.NotHttpUrl):
        return InvalidPackage(f"executionUnit href {exc.url!r} must be an http(s) URL")
    if isinstance(exc, http.UnknownHost):
        return InvalidPackage(f"cannot resolve the host of executionUnit href {exc.url}: {exc}")
    if isinstance(exc, http.AddressRefused):
        return InvalidPackage(f"executionUnit href: {exc}")
    if isinstance(exc, http.BadStatus):
        return InvalidPackage(
            f"fetching the application package {href} answered HTTP {exc.status_code}"
        )
    if isinstance(exc, http.TooLarge):
        return PayloadTooLarge(
            f"the application package at {href} is larger than {exc.max_bytes} bytes"
        )
    if isinstance(exc, http.TooManyRedirects):
        return InvalidPackage(
            f"fetching the application package {href} redirected more than "
            f"{http.MAX_REDIRECTS} times"
        )
    if isinstance(exc, http.TimedOut):
        return InvalidPackage(
            f"the application package at {href} did not arrive within {exc.timeout_s:g} s"
        )
    return InvalidPackage(f"cannot fetch the application package {href}: {exc}")


async def _cwl_text(media_type: str, body: bytes, settings: Settings) -> tuple[str | dict, dict]:
    """The CWL (text or parsed) and a description of where it came from."""
    if media_type in CWL_MEDIA_TYPES:
        try:
            return body.decode(), {"type": media_type}
        except UnicodeDecodeError as exc:
            raise InvalidPackage("the CWL document is not UTF-8 text") from exc
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise InvalidParameter(f"the request body is not valid JSON: {exc}") from exc
    if not isinstance(document, dict) or "executionUnit" not in document:
        raise InvalidPackage(
            "an application/ogcapppkg+json body needs an executionUnit, e.g. "
            '{"executionUnit": {"href": "https://…/app.cwl", "type": "application/cwl"}}'
        )
    engine = _execution_engine(document.get("executionEngine"), settings)
    engine |= _job_retention(document.get("jobRetentionDays"), settings)
    unit = document["executionUnit"]
    if isinstance(unit, list) and len(unit) == 1:
        unit = unit[0]
    if not isinstance(unit, dict):
        raise InvalidPackage("executionUnit must be an object with `href` or `value`")
    if "href" in unit:
        href = unit["href"]
        if not isinstance(href, str):
            raise InvalidPackage("executionUnit.href must be a string URL")
        return await _fetch(href, settings), {"href": href, "type": unit.get("type"), **engine}
    if "value" in unit:
        value = unit["value"]
        if isinstance(value, dict):
            media_type = unit.get("mediaType") or unit.get("type") or "application/cwl+json"
            return value, {"type": media_type, **engine}
        if isinstance(value, str):
            media_type = unit.get("mediaType") or unit.get("type") or "application/cwl"
            return value, {"type": media_type, **engine}
        raise InvalidPackage("executionUnit.value must be a CWL document (object or text)")
    raise InvalidPackage("executionUnit needs `href` (a URL of the CWL) or `value` (the CWL)")


def _resource_requests(node: Any) -> Iterator[dict[str, Any]]:
    """Every ResourceRequirement (requirements or hints) anywhere in a CWL document."""
    if isinstance(node, list):
        for item in node:
            yield from _resource_requests(item)
    elif isinstance(node, dict):
        if node.get("class") == "ResourceRequirement":
            yield node
        for key, value in node.items():
            if key in ("requirements", "hints") and isinstance(value, dict):
                # CWL's map form: {ResourceRequirement: {ramMin: ...}}
                request = value.get("ResourceRequirement")
                if isinstance(request, dict):
                    yield request
            if isinstance(value, list | dict):
                yield from _resource_requests(value)


def check_resources(doc: dict[str, Any], settings: Settings) -> None:
    """Refuse a package that asks for more RAM or cores per job than the site allows.

    Only numbers are checked; an expression (``$(...)``) is evaluated by the runner.
    """
    too_much = []
    for request in _resource_requests(doc):
        for key, most, unit in (
            ("ramMin", settings.execution.max_job_ram_mib, " MiB"),
            ("coresMin", settings.execution.max_job_cores, " cores"),
        ):
            value = request.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool) and value > most:
                too_much.append(f"{key} {value:g}{unit} (the most is {most:g}{unit})")
    if too_much:
        raise InvalidPackage(
            "the package asks for more than a job may use on this server: " + ", ".join(too_much)
        )


def check_sandbox_images(doc: dict[str, Any], engine: str | None, settings: Settings) -> None:
    """Refuse, with ``OAPIP_SANDBOX=containers`` and no ``OAPIP_DEFAULT_IMAGE``, a package
    for the cwltool backend with a tool that names no image: it could not be sandboxed."""
    execution = settings.execution
    if execution.sandbox != "containers" or execution.default_image:
        return
    if (engine or execution.engine) != "cwltool":
        return
    bare = tools_without_image(doc)
    if bare:
        raise InvalidPackage(
            f"tool {', '.join(bare)} has no DockerRequirement, and this server runs every "
            "tool in a container (OAPIP_SANDBOX=containers) with no OAPIP_DEFAULT_IMAGE set: "
            "add a DockerRequirement naming the tool's image"
        )


def _execution_engine(value: object, settings: Settings) -> dict[str, str]:
    """``{"executionEngine": value}`` for a backend of the registry that is available here
    (or a saved backend block); ``{}`` when unset."""
    if value is None:
        return {}
    names = registry.names(settings)
    if not isinstance(value, str) or not (value in names or _BACKEND_BLOCK.match(value)):
        raise InvalidPackage(
            f"executionEngine must be one of {', '.join(names)} or a saved backend block "
            f"such as `toil-wes-backend/<name>`, not {value!r}"
        )
    reason = None if "/" in value else registry.unavailable_reason(value, settings)
    if reason:
        raise InvalidParameter(f"executionEngine `{value}` is not available here: {reason}")
    return {"executionEngine": str(value)}


def _job_retention(value: object, settings: Settings) -> dict[str, float]:
    """``{"jobRetentionDays": value}`` for a positive number of days no longer than the
    site's ``OAPIP_JOB_RETENTION_DAYS`` (the site's policy bounds what it stores);
    ``{}`` when unset."""
    if value is None:
        return {}
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or not 0 < value <= _MAX_RETENTION_DAYS:
        raise InvalidParameter(
            "jobRetentionDays must be a positive number of days the process's jobs keep "
            f"their results, at most {_MAX_RETENTION_DAYS} (fractions allowed, e.g. 7 or "
            f"0.5), not {value!r}"
        )
    most = settings.retention.retention_days
    if most is not None and value > most:
        raise InvalidParameter(
            f"jobRetentionDays {value:g} is longer than this site keeps results: at most "
            f"{most:g} days (OAPIP_JOB_RETENTION_DAYS); send {most:g} or less, or leave it "
            "out to keep the site's retention"
        )
    return {"jobRetentionDays": float(value)}


def build_package(
    cwl_source: str | dict, w: str | None, source: dict, settings: Settings
) -> DeployedPackage:
    """Validate, describe and pack a CWL document (text or parsed) as a process."""
    doc = cwl_source if isinstance(cwl_source, dict) else cwl.parse_document(cwl_source)
    # /processes/{id}/package serves the document as deployed (ids, metadata and all),
    # not the packed one the workers run.
    source = {**source, "document": copy.deepcopy(doc)}
    cwl.validate_document(doc)
    check_resources(doc, settings)
    check_sandbox_images(doc, source.get("executionEngine"), settings)
    workflow_id = cwl.select_workflow(doc, w)
    if not PROCESS_ID.match(workflow_id):
        raise InvalidPackage(
            f"workflow id {workflow_id!r} cannot be a process id: use letters, digits, "
            "'_', '-' and '.', at most 100 characters, not starting with '.' or '-'"
        )
    description = cwl.describe(doc, workflow_id)
    packed = cwl.pack(doc, workflow_id)
    cwl.check_package_files(packed, cwl.entrypoint(packed))
    return DeployedPackage(
        process_id=workflow_id,
        workflow=packed,
        entrypoint=cwl.entrypoint(packed),
        description=description,
        source=source,
        execution_engine=source.get("executionEngine"),
        job_retention_days=source.get("jobRetentionDays"),
    )


async def read_package(
    content_type: str | None, body: bytes, w: str | None, settings: Settings
) -> DeployedPackage:
    """Parse, fetch, validate and describe the package in a deploy/replace request."""
    media_type = check_media_type(content_type)
    if not body:
        raise InvalidPackage(
            "the request body is empty: send a CWL document or an application package"
        )
    cwl_source, source = await _cwl_text(media_type, body, settings)
    cwl_source = await resolve_imports(cwl_source, settings)
    # Validation loads the document with schema-salad: CPU work, off the event loop.
    return await run_in_threadpool(build_package, cwl_source, w, source, settings)
