"""What comes back from a Calrissian job, read without a cluster: its log, the results a
``collect`` pod wrote to its own log, and Calrissian's usage report.

Pure functions of text and files, so that :mod:`blocks.calrissian` holds only what talks
to the Kubernetes API.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import logging
import re
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from blocks.calrissian_manifests import RESULTS_DIR, RESULTS_MARK
from core.exceptions import BackendError

__all__ = ["forward_log", "unpack_results", "usage_summary"]

_STEP_DONE = re.compile(r"\[step [^\]]+\] completed")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # cwltool colours its log levels
_ERROR = re.compile(r"\b(ERROR|permanentFail|Exception)\b")


def forward_log(
    text: str,
    logger: logging.Logger | logging.LoggerAdapter,
    on_step: Callable[[], None] | None = None,
) -> str:
    """Calrissian's log (its own lines and the tools') into ``logger``, line by line;
    ``on_step`` is called for each completed workflow step.

    Returns its last lines that name an error (or its last lines), for a failure message.
    """
    lines = [_ANSI.sub("", line) for line in text.splitlines()]
    for line in lines:
        logger.info(line)
        if on_step is not None and _STEP_DONE.search(line):
            on_step()
    errors = [line for line in lines if _ERROR.search(line)]
    return " | ".join((errors or [line for line in lines if line.strip()])[-3:])[-1500:]


def usage_summary(path: Path) -> str | None:
    """Calrissian's usage report (RAM, cores, time per tool pod) in one line, if it is there."""
    if not path.exists():
        return None
    try:
        report = json.loads(path.read_text())
    except ValueError:
        return None
    return "Calrissian usage: {} s, peak {} MiB RAM, {} cores, {} tool pods".format(
        report.get("elapsed_seconds", "?"),
        report.get("max_parallel_ram_megabytes", "?"),
        report.get("max_parallel_cpus", "?"),
        len(report.get("children", [])),
    )


def unpack_results(log: str, outdir: Path) -> dict[str, Any]:
    """The CWL output object from a ``collect`` pod's log, its files unpacked in ``outdir``.

    File and Directory locations under the job volume's results folder are rewritten to
    ``file://`` paths in ``outdir``.
    """
    head, mark, payload = log.partition(RESULTS_MARK)
    if not mark:
        raise BackendError("the collect pod's log has no results")
    try:
        outputs = json.loads(head.strip() or "{}")
        archive = base64.b64decode("".join(payload.split()))
    except (ValueError, binascii.Error) as exc:
        raise BackendError(f"unreadable results from the job volume: {exc}") from exc
    outdir.mkdir(parents=True, exist_ok=True)
    if archive:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            tar.extractall(outdir, filter="data")
    local = outdir.resolve()

    def relocate(value: Any) -> Any:
        if isinstance(value, list):
            return [relocate(v) for v in value]
        if not isinstance(value, dict):
            return value
        moved = {k: relocate(v) for k, v in value.items()}
        if value.get("class") in ("File", "Directory"):
            for key in ("location", "path"):
                text = str(value.get(key, ""))
                for prefix in (f"file://{RESULTS_DIR}/", f"{RESULTS_DIR}/"):
                    if text.startswith(prefix):
                        path = local / "results" / text.removeprefix(prefix)
                        moved[key] = path.as_uri() if key == "location" else str(path)
        return moved

    return relocate(outputs)
