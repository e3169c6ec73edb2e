"""The built-in processes every user has: ``echo``, immutable (``mutable: false``).

``echo`` returns its inputs as its outputs. It is what the OGC test suites
(``echoprocessid``), EOEPCA's system test and ZOO-Project expect of a server: one input
of each kind the suites exercise (a string, a number, an array of integers, a bounding
box, an object, a binary value inline or by reference, a file by reference). It runs like
any deployed process (a Prefect deployment of the one flow, CWL run by the backend): its
package is ``builtin/echo.cwl``, an ExpressionTool whose outputs are its inputs, each
output named as its input (the Part 1 suite selects "the output of the first input's id").

A user's built-ins are deployed on the first request of that user a gateway serves
(one Prefect read when they exist); replacing or undeploying them is refused
(``ImmutableProcess``, 403). A user's own process of a built-in's id (deployed before
the built-ins existed, or since) takes the built-in's place for that user: it is
mutable like any other, and undeploying it brings the built-in back.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from pathlib import Path
from typing import Any

from fastapi.concurrency import run_in_threadpool

from api_gateway.packages import build_package
from core.exceptions import DuplicatedProcess, ImmutableProcess, NoSuchProcess
from core.naming import BUILTIN_PROCESS_IDS
from core.settings import Settings
from ogc_prefect import DeployedPackage, Processes, ProcessRecord

__all__ = [
    "BUILTIN_IDS",
    "check_mutable",
    "deploy_over_builtin",
    "ensure_builtins",
    "forget_user",
    "is_builtin",
]

ECHO_ID = "echo"
BUILTIN_IDS = BUILTIN_PROCESS_IDS
_ECHO_CWL = Path(__file__).with_name("builtin") / "echo.cwl"

# What CWL cannot say of the inputs (all but the string are CWL `Any`/optional): the
# OGC schemas the test suites read to choose their values. `crs` has no `format: uri`:
# the suites send URNs too.
_BBOX = {
    "type": "object",
    "required": ["bbox"],
    "properties": {
        "bbox": {"type": "array", "minItems": 4, "maxItems": 6, "items": {"type": "number"}},
        "crs": {"type": "string"},
    },
}
_BINARY = {
    "oneOf": [
        {"type": "string", "contentEncoding": "binary", "contentMediaType": "image/tiff"},
        {
            "type": "object",
            "required": ["href"],
            "properties": {"href": {"type": "string"}, "type": {"type": "string"}},
        },
    ]
}
# A file by reference: a URL (with a media type and `format`, the test suites send no
# "teststring" to it; a `{"href": ...}` object would get their `{"value": "teststring"}`).
_FILE = {"type": "string", "format": "uri", "contentMediaType": "application/octet-stream"}
_INPUT_SCHEMAS: dict[str, dict[str, Any]] = {
    "file_input": _FILE,
    "bbox_input": _BBOX,
    "object_input": {"type": "object"},
    "binary_input": _BINARY,
}
_OUTPUT_SCHEMAS: dict[str, dict[str, Any]] = {
    "string_input": {"type": "string"},
    "double_input": {"type": "number"},
    "array_input": {"type": "array", "items": {"type": "integer"}},
    "bbox_input": {"allOf": [{"format": "ogc-bbox"}, _BBOX]},
    "object_input": {"type": "object"},
    "binary_input": copy.deepcopy(_BINARY),
    "file_input": {"type": "string", "format": "uri"},
}


def is_builtin(state: Any, record: ProcessRecord) -> bool:
    """Whether ``record`` is a built-in process (not a user's own of the same id)."""
    package = getattr(state, "echo_package", None)
    return (
        record.process_id in BUILTIN_IDS
        and package is not None
        and record.revision == package.revision
    )


def check_mutable(state: Any, record: ProcessRecord) -> None:
    """Raise ``ImmutableProcess`` for a built-in process (replace and undeploy)."""
    if is_builtin(state, record):
        raise ImmutableProcess(
            f"process {record.process_id!r} is built in and cannot be replaced or "
            "undeployed; deploy your own process under another id"
        )


def echo_package(settings: Settings) -> DeployedPackage:
    """The ``echo`` package, its description completed with the schemas CWL cannot say."""
    package = build_package(_ECHO_CWL.read_text(), None, {}, settings)
    description = copy.deepcopy(package.description)
    for name, schema in _INPUT_SCHEMAS.items():
        description["inputs"][name]["schema"] = copy.deepcopy(schema)
    for name, schema in _OUTPUT_SCHEMAS.items():
        description["outputs"][name]["schema"] = copy.deepcopy(schema)
    return DeployedPackage(
        process_id=package.process_id,
        workflow=package.workflow,
        entrypoint=package.entrypoint,
        description=description,
        source=package.source,
        execution_engine=None,
    )


async def ensure_builtins(state: Any, processes: Processes, user: str) -> None:
    """Deploy ``user``'s built-in processes unless this gateway saw them already
    (``state``: the app's state, which remembers the users done). A process of the user's
    own under the same id (deployed before there were built-ins) is left as it is."""
    if not hasattr(state, "builtin_users"):
        # (No await between the check and the set: one event loop, no race.)
        state.builtin_users, state.builtin_lock = set(), asyncio.Lock()
    if user in state.builtin_users:
        return
    # One at a time: a new user's first requests often come together (a client's burst).
    async with state.builtin_lock:
        if user in state.builtin_users:
            return
        if not hasattr(state, "echo_package"):
            state.echo_package = await run_in_threadpool(echo_package, state.settings)
        try:
            await processes.get_process(user, ECHO_ID)
        except NoSuchProcess:
            # Another gateway may have deployed it meanwhile.
            with contextlib.suppress(DuplicatedProcess):
                await processes.deploy(user, state.echo_package)
        state.builtin_users.add(user)


async def deploy_over_builtin(
    state: Any, processes: Processes, user: str, package: DeployedPackage
) -> ProcessRecord | None:
    """Deploy ``package`` in place of the user's built-in process of the same id, if it
    is one (a user's own ``echo`` takes the built-in's place for that user; undeploying
    it brings the built-in back). None when ``package`` is not such a process."""
    if package.process_id not in BUILTIN_IDS:
        return None
    try:
        record = await processes.get_process(user, package.process_id)
    except NoSuchProcess:
        return None
    if not is_builtin(state, record):
        return None  # the user's own: deploying it again is a duplicate
    await processes.replace(user, package.process_id, package)
    return await processes.get_process(user, package.process_id)


def forget_user(state: Any, user: str) -> None:
    """After ``user`` undeployed a process of a built-in's id: restore the built-in on
    their next request."""
    getattr(state, "builtin_users", set()).discard(user)
