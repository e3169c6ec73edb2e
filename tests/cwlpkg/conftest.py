"""Fixtures of the ``cwlpkg`` tests: no network, and the real packages parsed afresh."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from tests import reference
from tests.cwlpkg.samples import CONVERT_URL, WATER_BODIES, load


@pytest.fixture(scope="session")
def _reference_at_hand() -> None:
    """Reference material missing here is fetched (or found missing) before the network
    is blocked: that fetch is the tests' own, not the code's under test."""
    reference.find(reference.APP_PACKAGES)
    reference.find(reference.OGC_SCHEMAS)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch, _reference_at_hand: None) -> None:
    """Any attempt to open a connection from this process fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.fixture
def convert_url(app_packages: Path) -> dict[str, Any]:
    """The EOEPCA ``convert-url`` package, parsed (a new copy per test: tests change it)."""
    return load(app_packages / CONVERT_URL)


@pytest.fixture
def water_bodies(app_packages: Path) -> dict[str, Any]:
    """The EOEPCA water-bodies package (Workflow ``water_bodies``, sub-workflow), parsed."""
    return load(app_packages / WATER_BODIES)
