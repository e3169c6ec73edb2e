"""A deployed application package, kept as a Prefect Block document.

One document per deployed process (owner + process id). It holds the packed CWL the
workers run and the OGC process description the gateway serves; the process's Prefect
deployment names the document in its ``package`` parameter.
"""

from __future__ import annotations

from typing import Any

from prefect.blocks.core import Block
from pydantic import Field

from core.naming import PACKAGE_BLOCK_TYPE

__all__ = ["ApplicationPackage"]


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
    _block_type_slug = PACKAGE_BLOCK_TYPE
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
