"""The EOEPCA Workspace API: where a user's results go in workspace mode.

As the reference runner (EOEPCA ``eoepca-proc-service-template``) does before a job runs:
``GET {url}/workspaces/{prefix}-{user}`` answers the workspace, whose
``storage.credentials`` holds ``bucketname``, ``endpoint``, ``access``, ``secret`` and
``region``; results are uploaded there with those keys.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import requests
from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from core.exceptions import StagingError

__all__ = ["WorkspaceApi", "WorkspaceStorage"]

_USER = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class WorkspaceStorage:
    """A workspace's bucket and the keys that write to it."""

    bucket: str
    endpoint: str | None
    access_key: SecretStr
    secret_key: SecretStr
    region: str


class WorkspaceApi(Block):
    """The Workspace API of an EOEPCA platform.

    Example:
        ```python
        from blocks.workspace import WorkspaceApi
        api = WorkspaceApi.load("workspaces")
        storage = api.lookup("bob")  # bucket ws-bob and its keys
        ```
    """

    _block_type_name = "Workspace API"
    _block_type_slug = "workspace-api"

    url: str = Field(
        description="Base URL of the Workspace API.",
        examples=["https://workspace-api.example.org"],
    )
    prefix: str = Field(default="ws", description="Workspace name prefix.", examples=["ws"])
    token: SecretStr | None = Field(
        default=None, description="Bearer token for the API; unset sends none."
    )
    timeout_s: float = Field(default=10.0, description="Time allowed per request, seconds.")

    def workspace_name(self, user: str) -> str:
        """``<prefix>-<user>``: the workspace (and bucket) name of ``user``."""
        return f"{self.prefix}-{user}"

    def lookup(self, user: str) -> WorkspaceStorage:
        """The bucket and keys of ``user``'s workspace; ``StagingError`` when unknown."""
        if not _USER.match(user):
            raise StagingError(f"user {user!r} cannot name a workspace")
        name = self.workspace_name(user)
        url = f"{self.url.rstrip('/')}/workspaces/{name}"
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token.get_secret_value()}"
        try:
            response = requests.get(url, headers=headers, timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise StagingError(f"workspace {name}: {url} did not answer: {exc}") from exc
        if not response.ok:
            raise StagingError(
                f"workspace {name}: the Workspace API answered HTTP {response.status_code}"
            )
        try:
            credentials = response.json()["storage"]["credentials"]
            return WorkspaceStorage(
                bucket=str(credentials.get("bucketname") or name),
                endpoint=credentials.get("endpoint"),
                access_key=SecretStr(str(credentials["access"])),
                secret_key=SecretStr(str(credentials["secret"])),
                region=str(credentials.get("region") or "us-east-1"),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise StagingError(
                f"workspace {name}: the Workspace API answer has no storage credentials"
            ) from exc
