"""Read an OGC Part 2 deploy/replace request into a validated :class:`DeployedPackage`.

Media types: ``application/cwl``, ``application/cwl+yaml``, ``application/cwl+json`` (the
body is the CWL document) and ``application/ogcapppkg+json`` (or plain
``application/json``) whose ``executionUnit`` gives the CWL inline (``value``) or by
reference (``href``). Its optional ``executionEngine`` picks the backend the process runs
on: an engine name (``"toil"``) or a saved backend Block (``"toil-wes-backend/site-b"``);
unset, it runs on the engine-wide ``OAPIP_EXECUTION_ENGINE``.
"""

from __future__ import annotations

import asyncio
import copy
import ipaddress
import json
import re
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import httpx
from starlette.concurrency import run_in_threadpool

import cwlpkg as cwl
from blocks import registry
from core.exceptions import (
    InvalidPackage,
    InvalidParameter,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from core.naming import PROCESS_ID
from core.settings import Settings
from ogc_prefect.bridge import DeployedPackage

__all__ = [
    "warm_up",
    "CWL_MEDIA_TYPES",
    "PACKAGE_MEDIA_TYPES",
    "check_media_type",
    "check_resources",
    "read_package",
]

CWL_MEDIA_TYPES = ("application/cwl", "application/cwl+yaml", "application/cwl+json")
PACKAGE_MEDIA_TYPES = (*CWL_MEDIA_TYPES, "application/ogcapppkg+json", "application/json")
_MAX_REDIRECTS = 5
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


async def _check_address(href: str, settings: Settings) -> None:
    """Refuse an ``href`` whose host resolves to an address the operator has not allowed.

    Public addresses are allowed; loopback, private, link-local, multicast and reserved
    ones only inside ``OAPIP_PACKAGE_HREF_ALLOWED_NETWORKS`` (the server must not become
    a way into the networks it sits in). Every address the name resolves to must pass.
    """
    parsed = urlparse(href)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise InvalidPackage(f"executionUnit href {href!r} must be an http(s) URL")
    try:
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        infos = await asyncio.get_running_loop().getaddrinfo(
            parsed.hostname, port, type=socket.SOCK_STREAM
        )
    except (OSError, ValueError) as exc:
        raise InvalidPackage(
            f"cannot resolve the host of executionUnit href {href}: {exc}"
        ) from exc
    allowed = [
        ipaddress.ip_network(n, strict=False)
        for n in settings.gateway.package_href_allowed_networks
    ]
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if any(address in network for network in allowed):
            continue
        if not address.is_global or address.is_multicast:
            raise InvalidPackage(
                f"executionUnit href {href} points at {address}, an address this server does "
                "not fetch packages from (the operator allows more with "
                "OAPIP_PACKAGE_HREF_ALLOWED_NETWORKS)"
            )


async def _fetch(href: str, settings: Settings) -> str:
    """The text at ``href``: http(s), allowed addresses only (redirects included), at most
    ``package_fetch_max_bytes`` bytes within ``package_fetch_timeout_s`` seconds in all."""
    limit = settings.gateway.package_fetch_max_bytes
    url = href
    try:
        async with (
            asyncio.timeout(settings.gateway.package_fetch_timeout_s),
            httpx.AsyncClient(timeout=settings.gateway.package_fetch_timeout_s) as client,
        ):
            for _ in range(_MAX_REDIRECTS + 1):
                await _check_address(url, settings)
                async with client.stream("GET", url) as response:
                    if response.is_redirect and "location" in response.headers:
                        url = str(response.url.join(response.headers["location"]))
                        continue
                    if response.status_code != 200:
                        raise InvalidPackage(
                            f"fetching the application package {href} answered "
                            f"HTTP {response.status_code}"
                        )
                    length = response.headers.get("content-length", "")
                    if length.isdigit() and int(length) > limit:
                        raise PayloadTooLarge(
                            f"the application package at {href} is larger than {limit} bytes"
                        )
                    chunks, size = [], 0
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        if size > limit:
                            raise PayloadTooLarge(
                                f"the application package at {href} is larger than {limit} bytes"
                            )
                        chunks.append(chunk)
                    break
            else:
                raise InvalidPackage(
                    f"fetching the application package {href} redirected more than "
                    f"{_MAX_REDIRECTS} times"
                )
    except TimeoutError:
        raise InvalidPackage(
            f"the application package at {href} did not arrive within "
            f"{settings.gateway.package_fetch_timeout_s:g} s"
        ) from None
    except httpx.HTTPError as exc:
        raise InvalidPackage(f"cannot fetch the application package {href}: {exc}") from exc
    try:
        return b"".join(chunks).decode()
    except UnicodeDecodeError as exc:
        raise InvalidPackage(f"the application package at {href} is not UTF-8 text") from exc


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


def _build(
    cwl_source: str | dict, w: str | None, source: dict, settings: Settings
) -> DeployedPackage:
    doc = cwl_source if isinstance(cwl_source, dict) else cwl.parse_document(cwl_source)
    # /processes/{id}/package serves the document as deployed (ids, metadata and all),
    # not the packed one the workers run.
    source = {**source, "document": copy.deepcopy(doc)}
    cwl.validate_document(doc)
    check_resources(doc, settings)
    workflow_id = cwl.select_workflow(doc, w)
    if not PROCESS_ID.match(workflow_id):
        raise InvalidPackage(
            f"workflow id {workflow_id!r} cannot be a process id: use letters, digits, "
            "'_', '-' and '.', at most 100 characters, not starting with '.' or '-'"
        )
    description = cwl.describe(doc, workflow_id)
    packed = cwl.pack(doc, workflow_id)
    return DeployedPackage(
        process_id=workflow_id,
        workflow=packed,
        entrypoint=cwl.entrypoint(packed),
        description=description,
        source=source,
        execution_engine=source.get("executionEngine"),
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
    # Validation loads the document with schema-salad: CPU work, off the event loop.
    return await run_in_threadpool(_build, cwl_source, w, source, settings)
