"""Where the files of a package and of a job's inputs may come from: URLs, never the host.

A user writes File and Directory values in two places: the inputs of an execute request
and the ``default`` values (or ``InitialWorkDirRequirement`` listings) of a package. Either
may name a ``location`` (or a ``path``) that cwltool would read from the engine's disk
(``file:///…``, ``/etc/…``, a relative name resolved next to the package) or fetch by
itself over HTTP, past the engine's outbound guard. So:

* a location is an ``http(s)://`` or ``s3://`` URL, and stage-in fetches it (through the
  guard) before cwltool sees the job: ``path`` is refused, and so is any location inside a
  value's ``listing`` or ``secondaryFiles`` (stage-in fetches whole values only);
* a package may name such URLs only as defaults of its own inputs, which stage-in fetches
  like inputs (:func:`remote_defaults`); anywhere else in a package a File or Directory
  may only be a literal (``contents``, or a ``listing`` of literals).

The engine's own ``file://`` locations (staged inputs, outputs) are made after these
checks and never pass through them. Nothing here looks at the disk, so no answer depends
on whether a path exists.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from core.exceptions import InvalidPackage
from cwlpkg import _structure

__all__ = [
    "REMOTE_SCHEMES",
    "check_package_files",
    "input_files_problem",
    "is_remote",
    "remote_defaults",
]

REMOTE_SCHEMES = ("http", "https", "s3")
_CLASSES = ("File", "Directory")
_NESTED = ("listing", "secondaryFiles")


def is_remote(url: object) -> bool:
    """Whether ``url`` is an ``http(s)://`` or ``s3://`` URL with a host."""
    if not isinstance(url, str):
        return False
    parts = urlsplit(url)
    return parts.scheme.lower() in REMOTE_SCHEMES and bool(parts.netloc)


def _objects(
    value: Any, skip: frozenset[int] = frozenset(), nested: bool = False
) -> Iterator[tuple[dict[str, Any], bool]]:
    """Every File/Directory object in ``value`` (not below the values whose ``id`` is in
    ``skip``), with whether it sits in another's ``listing`` or ``secondaryFiles``."""
    if id(value) in skip:
        return
    if isinstance(value, list):
        for item in value:
            yield from _objects(item, skip, nested)
    elif isinstance(value, dict):
        is_file = value.get("class") in _CLASSES
        if is_file:
            yield value, nested
        for key, item in value.items():
            yield from _objects(item, skip, nested or (is_file and key in _NESTED))


def input_files_problem(value: Any) -> str | None:
    """What is wrong with the File/Directory objects in an input value, if anything."""
    for obj, nested in _objects(value):
        location = obj.get("location")
        if "path" in obj:
            return (
                "a File or Directory takes a `location` (an http(s):// or s3:// URL), not a `path`"
            )
        if location is None:
            continue  # a literal: `contents`, or a listing of literals
        if nested:
            return "files in a `listing` or `secondaryFiles` cannot name a location"
        if not is_remote(location):
            return f"{location!r} is not an http(s):// or s3:// URL"
    return None


def _defaults(packed: dict[str, Any], entrypoint: str) -> dict[str, Any]:
    """The defaults of the ``entrypoint`` process's inputs, by input name."""
    inputs = _structure.find_process(packed, entrypoint).get("inputs")
    return {
        name: param["default"]
        for name, param in _structure.params(inputs)
        if param.get("default") is not None
    }


def check_package_files(packed: dict[str, Any], entrypoint: str) -> None:
    """Refuse (``InvalidPackage``) a packed package naming a file anywhere but as a URL
    in the defaults of the ``entrypoint`` process's inputs."""
    defaults = _defaults(packed, entrypoint)
    for name, default in defaults.items():
        problem = input_files_problem(default)
        if problem:
            raise InvalidPackage(f"the default of input {name!r}: {problem}")
    for obj, _ in _objects(packed, skip=frozenset(map(id, defaults.values()))):
        if "location" in obj or "path" in obj:
            where = obj.get("location", obj.get("path"))
            raise InvalidPackage(
                f"the package names the {obj['class']} {where!r}: a package may name files "
                "only as http(s):// or s3:// URLs in the defaults of its own inputs (a "
                "literal file, with `contents`, is fine anywhere)"
            )


def remote_defaults(packed: dict[str, Any], entrypoint: str) -> dict[str, Any]:
    """The defaults of the ``entrypoint`` process's inputs that name files (URLs, once
    :func:`check_package_files` passed): stage-in fetches them as it does inputs."""
    return {
        name: default
        for name, default in _defaults(packed, entrypoint).items()
        if any("location" in obj for obj, _ in _objects(default))
    }
