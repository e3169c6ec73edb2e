"""The messages between the fast worker and its zygote, one JSON object per line.

worker → zygote:

* :class:`Run`: fork a job process for this flow run (with the process's package, which
  the zygote loads once per revision so that later job processes inherit it).

zygote → worker:

* :class:`Ready`: the zygote has warmed up and takes ``Run`` messages;
* :class:`Started`: a job process runs the flow run;
* :class:`Exited`: a job process ended (``code`` < 0 is the signal that killed it).

:func:`encode` and :func:`decode` are the only way a message crosses the socket.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

__all__ = ["Exited", "Message", "Package", "Ready", "Run", "Started", "decode", "encode"]


@dataclass(frozen=True)
class Package:
    """An application package block document: its name and its data (the block's fields)."""

    name: str
    block: dict[str, Any]


@dataclass(frozen=True)
class Run:
    """Fork a job process for ``flow_run`` (the flow run as JSON); ``timeout_s``: the
    job's time limit, seconds, the flow run's Prefect timeout (None: none)."""

    op: ClassVar[str] = "run"
    flow_run: dict[str, Any]
    package: Package | None = None
    timeout_s: float | None = None


@dataclass(frozen=True)
class Ready:
    """The zygote (process ``pid``) is warm."""

    op: ClassVar[str] = "ready"
    pid: int


@dataclass(frozen=True)
class Started:
    """Job process ``pid`` runs flow run ``flow_run_id``."""

    op: ClassVar[str] = "started"
    flow_run_id: str
    pid: int


@dataclass(frozen=True)
class Exited:
    """Job process ``pid`` ended with ``code`` (< 0: killed by that signal) after
    ``cpu_s`` seconds of CPU (its own and the tools' it waited for)."""

    op: ClassVar[str] = "exited"
    pid: int
    code: int
    cpu_s: float = 0.0


Message = Run | Ready | Started | Exited
_TYPES: dict[str, type[Message]] = {kind.op: kind for kind in (Run, Ready, Started, Exited)}


def encode(message: Message) -> bytes:
    """``message`` as one line of JSON, newline included."""
    return json.dumps({"op": message.op, **asdict(message)}).encode() + b"\n"


def decode(line: bytes) -> Message:
    """The message on ``line``; ``ValueError`` if it is not one."""
    fields = json.loads(line)
    kind = _TYPES.get(fields.pop("op", None))
    if kind is None:
        raise ValueError(f"not a zygote message: {line[:200]!r}")
    if kind is Run and fields.get("package") is not None:
        fields["package"] = Package(**fields["package"])
    return kind(**fields)
