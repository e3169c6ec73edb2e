"""A deployed application package, kept as a Prefect Block document.

One document per deployed process (owner + process id). It holds the packed CWL the
workers run and the OGC process description the gateway serves; the process's Prefect
deployment names the document in its ``package`` parameter.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from prefect.blocks.core import Block
from pydantic import Field

__all__ = ["ApplicationPackage", "package_block_name"]


def package_block_name(owner: str, process_id: str) -> str:
    """Block document name for ``owner``'s process ``process_id``.

    Block names allow lowercase letters, digits and dashes only; a digest of the exact
    pair keeps names of ids that differ only in case or punctuation apart.
    """
    digest = hashlib.sha256(f"{owner}\0{process_id}".encode()).hexdigest()[:10]
    readable = re.sub(r"[^a-z0-9]+", "-", f"{owner}-{process_id}".lower()).strip("-")[:40]
    return f"{readable}-{digest}"


class ApplicationPackage(Block):
    """A CWL application package deployed as an OGC process.

    Example:
        ```python
        from blocks.package import ApplicationPackage
        package = ApplicationPackage.load("alice-convert-url-0123456789")
        print(package.description["title"])
        ```
    """

    _block_type_name = "OGC application package"
    _block_type_slug = "ogc-application-package"
    _description = "A CWL application package deployed through OGC API - Processes Part 2."

    process_id: str = Field(description="OGC process id.", examples=["convert-url"])
    owner: str = Field(description="User who deployed the process.", examples=["alice"])
    revision: str = Field(
        description="Digest of the packed CWL; changes when the process is replaced.",
        examples=["3f9a1c0d2b7e"],
    )
    entrypoint: str = Field(description="Id of the Workflow to run.", examples=["convert-url"])
    workflow: dict[str, Any] = Field(description="The packed, self-contained CWL document.")
    description: dict[str, Any] = Field(
        description="OGC process description (Part 1 1.0) derived from the CWL."
    )
    execution_engine: str | None = Field(
        default=None,
        description="Backend this process runs on (a value of OAPIP_EXECUTION_ENGINE, "
        "e.g. `toil`). Unset: the engine-wide OAPIP_EXECUTION_ENGINE.",
        examples=["toil"],
    )
    source: dict[str, Any] = Field(
        default_factory=dict,
        description="The deploy request's execution unit as received (href or media type).",
    )
