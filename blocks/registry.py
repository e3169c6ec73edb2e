"""Which execution backends exist: the one place they are found, built and stopped.

Built-in backends are entry points of the group ``oapip.backends`` in ``pyproject.toml``
(``cwltool = "blocks.cwltool:CwltoolBackend"``), imported only when first asked for by
name. A site adds its own without touching the engine: each module named in
``OAPIP_BACKEND_MODULES`` (a JSON list) is imported on first use and registers its
backends with :func:`register`::

    from blocks.backend import ExecutionBackend
    from blocks.registry import register

    @register
    class HTCondorBackend(ExecutionBackend):
        engine = "htcondor"
        ...

The flow, the worker, the gateway and the stack reach backends only through this
module: :func:`names` (what a process may name as its ``executionEngine``),
:func:`backend_for` (a backend by engine name or saved Block document),
:func:`block_types` (what ``oapip setup`` registers with Prefect) and
:func:`stop_recorded_runs` (what ends the runs a killed job process left behind).
"""

from __future__ import annotations

import importlib
import logging
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import TypeVar

from blocks.backend import ExecutionBackend, recorded_runs
from core.exceptions import BackendError
from core.settings import Settings, get_settings

__all__ = [
    "ENTRY_POINT_GROUP",
    "backend_for",
    "block_types",
    "names",
    "register",
    "stop_recorded_runs",
    "unavailable_reason",
]

ENTRY_POINT_GROUP = "oapip.backends"

B = TypeVar("B", bound=type[ExecutionBackend])

_classes: dict[str, type[ExecutionBackend]] = {}
_imported_modules: set[str] = set()


def register(backend: B) -> B:
    """Make ``backend`` available under its ``engine`` name (a class decorator).

    Raises ``ValueError`` if the name is taken by another backend (a built-in's name
    cannot be reused) or cannot be told from a saved Block document's name.
    """
    name = getattr(backend, "engine", "")
    if not isinstance(backend, type) or not issubclass(backend, ExecutionBackend):
        raise ValueError(f"{backend!r} is not an ExecutionBackend")
    if not name or "/" in name:
        raise ValueError(f"{backend.__name__}.engine must be a name without '/', not {name!r}")
    built_in = _entry_points().get(name)
    taken = _classes.get(name)
    if (taken is not None and taken is not backend) or (
        built_in is not None and built_in.value != f"{backend.__module__}:{backend.__qualname__}"
    ):
        raise ValueError(f"two execution backends are named {name!r}")
    _classes[name] = backend
    return backend


def names(settings: Settings | None = None) -> list[str]:
    """Every engine name a process may run on (available or not), sorted."""
    _import_site_modules(settings or get_settings())
    return sorted({*_entry_points(), *_classes})


def unavailable_reason(name: str, settings: Settings) -> str | None:
    """Why engine ``name`` cannot run jobs with ``settings`` (None: it can); for
    instance ``toil`` without a WES endpoint. Raises ``BackendError`` for an unknown name."""
    return _backend_class(name, settings).unavailable_reason(settings)


def backend_for(engine: str | None, settings: Settings) -> ExecutionBackend:
    """The backend a process runs on.

    ``engine`` is the process's choice: an engine name (``cwltool``, ``toil``: configured
    from settings) or a saved backend Block document (``toil-wes-backend/<name>``, e.g. a
    second HPC site). Unset: the engine-wide ``OAPIP_EXECUTION_ENGINE``.
    """
    name = engine or settings.execution.engine
    if "/" in name:
        return _saved_backend(name, settings)
    backend = _backend_class(name, settings)
    reason = backend.unavailable_reason(settings)
    if reason:
        raise BackendError(f"this process runs on `{name}`, but {reason}")
    return backend.from_settings(settings)


def block_types(settings: Settings) -> list[type[ExecutionBackend]]:
    """Every backend's Block class, the built-ins and the site modules' (imported now):
    what ``oapip setup`` registers with Prefect, so saved backends show in its UI."""
    return [_backend_class(name, settings) for name in names(settings)]


def stop_recorded_runs(
    job_dir: Path,
    settings: Settings,
    logger: logging.Logger | logging.LoggerAdapter | None = None,
) -> list[str]:
    """Stop every run still recorded in ``job_dir``: its job process ended without ending it.

    Each run is stopped by the backend that recorded it (built again by its name, see
    :func:`backend_for`), which returns once the run is gone; its record is then removed.
    Returns ``<backend> run <id>`` for each run stopped. A run that cannot be stopped is
    logged to ``logger`` (the job's log) and kept recorded: the caller is ending the job
    either way.
    """
    log = logger or logging.getLogger("oapip.backend")
    stopped = []
    for run in recorded_runs(job_dir):
        try:
            backend_for(run.backend, settings).stop_run(run.handle, log)
        except Exception as exc:
            log.error("could not stop %s run %s: %s", run.backend, run.run_id, exc)
            continue
        run.path.unlink(missing_ok=True)
        log.warning(
            "stopped %s run %s, which the job process left running", run.backend, run.run_id
        )
        stopped.append(f"{run.backend} run {run.run_id}")
    return stopped


def _entry_points() -> dict[str, EntryPoint]:
    return {point.name: point for point in entry_points(group=ENTRY_POINT_GROUP)}


def _import_site_modules(settings: Settings) -> None:
    for module in settings.execution.backend_modules:
        if module not in _imported_modules:
            importlib.import_module(module)  # its @register calls add its backends
            _imported_modules.add(module)


def _backend_class(name: str, settings: Settings) -> type[ExecutionBackend]:
    """The class of engine ``name``, imported on first use."""
    if name in _classes:
        return _classes[name]
    point = _entry_points().get(name)
    if point is None:
        _import_site_modules(settings)
        if name in _classes:
            return _classes[name]
        raise BackendError(f"unknown execution engine {name!r}")
    backend = point.load()
    if not (isinstance(backend, type) and issubclass(backend, ExecutionBackend)):
        raise BackendError(f"the entry point {point.value} of engine {name!r} is not a backend")
    if backend.engine != name:
        raise BackendError(f"{point.value} is engine {backend.engine!r}, declared as {name!r}")
    _classes[name] = backend
    return backend


def _saved_backend(name: str, settings: Settings) -> ExecutionBackend:
    """A backend Block document saved in Prefect, ``<block type slug>/<document name>``."""
    from prefect.blocks.core import Block

    slug, _, document = name.partition("/")
    # The slug's class must be imported for Prefect to load the document as one.
    by_slug = {cls.get_block_type_slug(): cls for cls in block_types(settings)}
    try:
        block = by_slug[slug].load(document) if slug in by_slug else Block.load(name)
    except (ValueError, KeyError) as exc:
        raise BackendError(
            f"this process runs on the backend block {name!r}, which does not exist"
        ) from exc
    if not isinstance(block, ExecutionBackend):
        raise BackendError(f"the block {name!r} is not an execution backend")
    block.with_site_policy(settings)
    return block
