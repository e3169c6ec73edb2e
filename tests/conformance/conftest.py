"""One user for the whole re-implemented suite, as the ETS tests one server: its root
(the landing page the ETS is given as ``iut``) and its echo process."""

from __future__ import annotations

import uuid

import pytest

from tests.conformance.ets import EchoProcess


@pytest.fixture(scope="module")
def root(engine) -> str:
    """The landing page of a user of this module alone (``iut``)."""
    return engine.api(f"ets-{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="module")
def echo(root: str) -> EchoProcess:
    """The built-in echo process (``echoprocessid``), read as ``Jobs.parseEchoProcess``."""
    return EchoProcess(root)
