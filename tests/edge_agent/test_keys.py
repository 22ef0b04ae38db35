"""Commands that inspect or change a store in place create nothing: no data directory, outbox or key."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edge_agent.keys import StoreMissing
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


def _enrolled_store(data: Path) -> bytes:
    """A store as an enrolled agent leaves it; central is not needed (`run` refuses before it syncs)."""
    from edge_agent.credentials import Credentials
    from shared.crypto import new_signing_key

    key = _store(data)
    Credentials("dev_0123456789abcdef", "S001", "http://127.0.0.1:9", new_signing_key()[0]).save(
        data / "credentials.json"
    )
    return key


def _run_env(data: Path) -> dict[str, str]:
    return {"EDGE_AGENT_DATA_DIR": str(data), "EDGE_POS_PORT": "loop://"}


def test_run_refuses_an_outbox_whose_key_is_missing_in_one_line_and_writes_no_key(tmp_path):
    data = tmp_path / "data"
    _enrolled_store(data)
    (data / "outbox.key").unlink()
    result = run("run", env_extra=_run_env(data))
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"edge-agent: outbox key missing: {data / 'outbox.db'} exists but {data / 'outbox.key'} does not, and the"
        " outbox cannot be opened without it; restore outbox.key from the backup taken with this outbox (a new key"
        " cannot open it)"
    ]
    assert not (data / "outbox.key").exists()
    # The doctor still tells the truth afterwards: the key is missing, not a different one.
    doctor = run("doctor", env_extra=_run_env(data))
    assert f"FAIL  outbox key missing: {data / 'outbox.db'} exists" in doctor.stdout
    assert "rotate-key" not in doctor.stdout


def test_run_refuses_an_outbox_sealed_under_another_key_in_one_line(tmp_path):
    data = tmp_path / "data"
    _enrolled_store(data)
    (data / "outbox.key").write_bytes(os.urandom(32))  # someone copied the wrong key file in
    result = run("run", env_extra=_run_env(data))
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"edge-agent: {data / 'outbox.db'} is sealed under a different key than {data / 'outbox.key'}: restore"
        " outbox.key from the backup taken with this outbox"
    ]
    doctor = run("doctor", env_extra=_run_env(data))
    assert (
        f"FAIL  {data / 'outbox.db'} is sealed under a different key than {data / 'outbox.key'}: restore"
        " outbox.key from the backup taken with this outbox"
    ) in doctor.stdout
    assert "rotate-key" not in doctor.stdout
    for command in STORE_COMMANDS:
        refused = run(*command, env_extra={"EDGE_AGENT_DATA_DIR": str(data)})
        assert refused.returncode == 1
        assert refused.stderr.strip() == result.stderr.strip(), command


def test_a_capture_journal_alone_is_sealed_data_that_gets_no_fresh_key(tmp_path):
    from edge_agent.journal import CaptureJournal

    data = tmp_path / "data"
    _enrolled_store(data)
    key = (data / "outbox.key").read_bytes()
    journal = CaptureJournal(data / "journal" / "pos.journal", Sealer(key), "pos", fsync=False)
    journal.append(0, b"receipt_no=R2 total=2.00\n")
    journal.close()
    (data / "outbox.db").unlink()
    (data / "outbox.key").unlink()
    result = run("run", env_extra=_run_env(data))
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith(
        f"edge-agent: outbox key missing: {data / 'journal' / 'pos.journal'} exists but {data / 'outbox.key'} does not"
    )
    assert not (data / "outbox.key").exists() and not (data / "outbox.db").exists()


def test_a_rotation_interrupted_after_its_switch_is_read_with_the_new_key_and_said_so(tmp_path):
    from edge_agent.rotation import rotate_key

    data = tmp_path / "data"
    old = _enrolled_store(data)

    def stop_after_the_switch(step: str) -> None:
        if step == "committed":
            raise KeyboardInterrupt  # as a kill right after the commit leaves it

    with pytest.raises(KeyboardInterrupt):
        rotate_key(data / "outbox.key", data / "outbox.db", data / "journal", environ={}, on_step=stop_after_the_switch)
    assert (data / "outbox.key").read_bytes() == old and (data / "outbox.key.next").exists()
    quarantine = run("quarantine", env_extra={"EDGE_AGENT_DATA_DIR": str(data)})
    assert quarantine.returncode == 0, quarantine.stderr
    doctor = run("doctor", env_extra=_run_env(data))
    assert (
        "ok    outbox key: a rotation was interrupted after its switch: the outbox is under"
        f" {data / 'outbox.key.next'}, which the agent's next start (or `edge-agent rotate-key`) puts in place of"
        f" {data / 'outbox.key'}"
    ) in doctor.stdout, doctor.stdout
    assert "ok    outbox: 1 pending" in doctor.stdout
    assert (data / "outbox.key").read_bytes() == old  # the doctor and quarantine change nothing


def test_a_new_key_is_made_only_for_a_store_with_nothing_sealed(tmp_path):
    from edge_agent.rotation import resolve_outbox_key

    data = tmp_path / "data"
    data.mkdir()
    key = resolve_outbox_key(data / "outbox.key", data / "outbox.db", data / "journal", {})
    assert (data / "outbox.key").read_bytes() == key
    Outbox(data / "outbox.db", Sealer(key), "S001").close()  # an outbox with its key check, and no events
    (data / "outbox.key").unlink()
    with pytest.raises(StoreMissing, match="outbox key missing"):
        resolve_outbox_key(data / "outbox.key", data / "outbox.db", data / "journal", {})
    assert not (data / "outbox.key").exists()


def test_with_a_credential_the_doctor_names_the_new_key_waiting_to_be_installed(tmp_path):
    from edge_agent.rotation import rotate_key

    data = tmp_path / "data"
    _enrolled_store(data)
    creds = tmp_path / "credentials"
    creds.mkdir()
    os.replace(data / "outbox.key", creds / "outbox.key")
    environ = {"CREDENTIALS_DIRECTORY": str(creds)}
    rotate_key(data / "outbox.key", data / "outbox.db", data / "journal", environ=environ)
    doctor = run("doctor", env_extra=_run_env(data) | environ)
    pending = data / "outbox.key.next"
    assert (
        f"FAIL  outbox key: the outbox is under the new key in {pending}, which waits to be installed as the"
        f" service's credential: systemd-creds encrypt --name=outbox.key {pending} /etc/edge-agent/outbox.key.cred,"
        f" then delete {pending}"
    ) in doctor.stdout, doctor.stdout
    assert "ok    outbox: 1 pending" in doctor.stdout
    quarantine = run("quarantine", env_extra={"EDGE_AGENT_DATA_DIR": str(data)} | environ)
    assert quarantine.returncode == 0, quarantine.stderr
