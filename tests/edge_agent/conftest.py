"""Fixtures for the agent's tests: a real outbox in a temporary directory."""

from __future__ import annotations

import pytest

from edge_agent.outbox import Outbox
from shared.crypto import Sealer, load_or_create_key


@pytest.fixture
def key(tmp_path):
    return load_or_create_key(tmp_path / "outbox.key")


@pytest.fixture
def sealer(key):
    return Sealer(key)


@pytest.fixture
def outbox(tmp_path, sealer):
    box = Outbox(tmp_path / "outbox.db", sealer, "S001")
    yield box
    box.close()
