"""Commands that inspect or change a store in place create nothing: no data directory, outbox or key."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.outbox import Capture, Outbox
from shared.crypto import Sealer, load_or_create_key
from tests.edge_agent.test_cli import run

STORE_COMMANDS = [("quarantine",), ("reparse", "--dry-run"), ("rotate-key",)]


def _files(root: Path) -> list[Path]:
    return sorted(root.rglob("*"))


def _store(data: Path) -> bytes:
    """A data directory as a running agent leaves it: an outbox with one event, and its key."""
    data.mkdir(mode=0o700)
    key = load_or_create_key(data / "outbox.key")
    outbox = Outbox(data / "outbox.db", Sealer(key), "S001")
    outbox.append([Capture.of("pos.receipt", {"receipt_no": "R1", "total": "1.00"}, "2026-11-23T02:00:00Z")])
    outbox.close()
    return key


@pytest.mark.parametrize("command", STORE_COMMANDS, ids=lambda c: c[0])
def test_a_data_directory_that_does_not_exist_is_refused_and_not_created(tmp_path, command):
    data = tmp_path / "a" / "b"
    result = run(*command, env_extra={"EDGE_AGENT_DATA_DIR": str(data)})
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.strip() == (
        f"edge-agent: data directory {data} does not exist: no agent has run with it (check agent.data_dir,"
        " or the file given with --config)"
    )
    assert "Traceback" not in result.stderr
    assert _files(tmp_path) == []


@pytest.mark.parametrize("command", STORE_COMMANDS, ids=lambda c: c[0])
def test_a_data_directory_without_an_outbox_gets_no_phantom_outbox_or_key(tmp_path, command):
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    result = run(*command, env_extra={"EDGE_AGENT_DATA_DIR": str(data)})
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"no outbox at {data / 'outbox.db'}: the agent has not run with this data directory yet" in result.stderr
    assert _files(data) == []


@pytest.mark.parametrize("command", STORE_COMMANDS, ids=lambda c: c[0])
def test_an_outbox_whose_key_is_missing_is_refused_without_writing_a_new_key(tmp_path, command):
    data = tmp_path / "data"
    _store(data)
    (data / "outbox.key").unlink()
    before = _files(data)
    result = run(*command, env_extra={"EDGE_AGENT_DATA_DIR": str(data)})
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.startswith(
        f"edge-agent: outbox key missing: {data / 'outbox.db'} exists but {data / 'outbox.key'} does not"
    )
    assert "restore outbox.key from the backup taken with this outbox" in result.stderr
    assert not (data / "outbox.key").exists()
    assert _files(data) == before


def test_doctor_fails_an_outbox_without_its_key_and_creates_none(tmp_path):
    data = tmp_path / "data"
    _store(data)
    (data / "outbox.key").unlink()
    result = run("doctor", env_extra={"EDGE_AGENT_DATA_DIR": str(data), "EDGE_POS_PORT": "loop://"})
    assert result.returncode == 1
    assert f"FAIL  outbox key missing: {data / 'outbox.db'} exists but {data / 'outbox.key'} does not" in result.stdout
    assert not (data / "outbox.key").exists()


def test_a_store_with_its_key_still_opens_for_the_commands(tmp_path):
    data = tmp_path / "data"
    key = _store(data)
    result = run("quarantine", env_extra={"EDGE_AGENT_DATA_DIR": str(data)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == '{"shown": 0, "by_reason": {}}'
    doctor = run("doctor", env_extra={"EDGE_AGENT_DATA_DIR": str(data), "EDGE_POS_PORT": "loop://"})
    assert f"ok    outbox key {data / 'outbox.key'} mode 0600" in doctor.stdout
    assert "ok    outbox: 1 pending" in doctor.stdout
    assert (data / "outbox.key").read_bytes() == key
