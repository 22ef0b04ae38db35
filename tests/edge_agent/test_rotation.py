"""Keys at rest: the key from a systemd credential, and rotate-key surviving a SIGKILL at any moment."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge_agent.credentials import load_outbox_key
from edge_agent.journal import CaptureJournal
from edge_agent.outbox import Capture, Outbox, OutboxKeyError, Quarantined
from edge_agent.rotation import NEXT_SUFFIX, REKEY_SUFFIX, resolve_outbox_key, rotate_key
from shared.crypto import Sealer, load_or_create_key

BIN = Path(sys.executable).parent / "edge-agent"
PHONES = [f"1391234{n:04d}" for n in range(50)]
STEPS = ["new key written", "journals re-sealed", "events re-sealed", "before commit", "committed", "journal replaced"]


def make_store(data: Path, events: int) -> None:
    """An outbox with receipts, quarantined lines and a kept secret, and a journal with unsent bytes."""
    key = load_or_create_key(data / "outbox.key")
    box = Outbox(data / "outbox.db", Sealer(key), "S001")
    for start in range(0, events, 1000):
        box.append(
            [
                Capture.of(
                    "pos.receipt", {"receipt_no": f"R{n}", "member": {"phone": PHONES[n % 50]}}, "2026-11-23T02:00:00Z"
                )
                for n in range(start, min(events, start + 1000))
            ]
        )
    box.append([Quarantined("pos", "invalid_json", f"{{phone {p}".encode(), 1.0) for p in PHONES[:20]])
    box.secret("pan-hash", b"h" * 32)
    box.settle(range(1, events // 2), [])  # half delivered, half pending: both are re-sealed
    box.close()
    journal = CaptureJournal(data / "journal" / "pos.journal", Sealer(key), "pos", fsync=False)
    offset = 0
    for phone in PHONES[:10]:
        chunk = f"receipt_no=J{phone} member_phone={phone}\n".encode()
        journal.append(offset, chunk)
        offset += len(chunk)
    journal.close()


def contents(data: Path, key: bytes) -> tuple:
    """Everything the store holds, opened: it must be the same under the old key and the new."""
    box = Outbox(data / "outbox.db", Sealer(key), "S001")
    rows = box.connection().execute("SELECT seq, event_id, state FROM events ORDER BY seq").fetchall()
    bodies = {p.event_id: p.body for p in box.pending(10**6)}
    delivered = box.connection().execute("SELECT COUNT(*) FROM events WHERE state = 1").fetchone()[0]
    quarantine = sorted(r.raw for r in box.quarantine(10**6))
    secret = box.secret("pan-hash", b"\0" * 32)
    box.close()
    journal = CaptureJournal(data / "journal" / "pos.journal", Sealer(key), "pos", fsync=False)
    replayed = list(journal.replay(0))
    journal.close()
    return rows, bodies, delivered, quarantine, secret, replayed


def assert_no_pii(data: Path, when: str) -> None:
    """No test phone number in clear in any file under ``data``: store, WAL, journals, keys, leftovers."""
    for path in [p for p in data.rglob("*") if p.is_file()]:
        raw = path.read_bytes()
        assert not any(phone.encode() in raw for phone in PHONES), f"a phone number in clear in {path} {when}"


def integrity(data: Path) -> str:
    conn = sqlite3.connect(data / "outbox.db")
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def resolved(data: Path, environ=None) -> bytes:
    return resolve_outbox_key(data / "outbox.key", data / "outbox.db", data / "journal", environ or {})


@pytest.fixture
def store(tmp_path):
    data = tmp_path / "agent"
    make_store(data, 500)
    return data


def test_the_key_comes_from_the_systemd_credential_when_there_is_one(tmp_path):
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "outbox.key").write_bytes(b"c" * 32)
    (creds / "outbox.key").chmod(0o400)
    key, source = load_outbox_key(tmp_path / "data" / "outbox.key", {"CREDENTIALS_DIRECTORY": str(creds)})
    assert (key, source.path, source.from_credential) == (b"c" * 32, creds / "outbox.key", True)
    assert not (tmp_path / "data" / "outbox.key").exists()  # no second copy of the key on disk
    key, source = load_outbox_key(tmp_path / "data" / "outbox.key", {"CREDENTIALS_DIRECTORY": str(tmp_path / "no")})
    assert source.from_credential is False and (tmp_path / "data" / "outbox.key").stat().st_mode & 0o777 == 0o600


def test_a_malformed_credential_is_refused_with_its_path(tmp_path):
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "outbox.key").write_bytes(b"short")
    (creds / "outbox.key").chmod(0o400)
    with pytest.raises(Exception, match=f"{creds / 'outbox.key'}: expected a 32-byte key"):
        load_outbox_key(tmp_path / "outbox.key", {"CREDENTIALS_DIRECTORY": str(creds)})


def test_rotation_reseals_everything_under_a_new_key(store):
    old = resolved(store)
    before = contents(store, old)
    counts = rotate_key(store / "outbox.key", store / "outbox.db", store / "journal", environ={})
    assert counts == {"events": 500, "quarantine": 20, "secrets": 1, "journals": 1}
    new = resolved(store)
    assert new != old and (store / "outbox.key").read_bytes() == new
    assert contents(store, new) == before
    with pytest.raises(OutboxKeyError):
        Outbox(store / "outbox.db", Sealer(old), "S001")
    assert not list(store.rglob("*" + NEXT_SUFFIX)) and not list(store.rglob("*" + REKEY_SUFFIX))
    assert_no_pii(store, "after rotation")


KILL_AT_STEP = """
import os, signal, sys
from pathlib import Path
from edge_agent.rotation import rotate_key
data, target = Path(sys.argv[1]), sys.argv[2]
def on_step(step):
    if step == target:
        os.kill(os.getpid(), signal.SIGKILL)
rotate_key(data / "outbox.key", data / "outbox.db", data / "journal", environ={}, on_step=on_step)
"""


def test_a_kill_at_every_step_leaves_a_store_that_opens_with_nothing_lost(store):
    before = contents(store, resolved(store))
    keys = set()
    for step in STEPS:
        result = subprocess.run([sys.executable, "-c", KILL_AT_STEP, str(store), step], capture_output=True)
        assert result.returncode == -signal.SIGKILL, result.stderr.decode()
        assert integrity(store) == "ok"
        key = resolved(store)  # finishes or undoes the interrupted rotation
        keys.add(key)
        assert contents(store, key) == before, f"after a kill at {step!r}"
        assert_no_pii(store, f"after a kill at {step!r}")
        assert not list(store.rglob("*" + REKEY_SUFFIX))
    assert len(keys) > 1  # some kills came before the switch, some after


def test_rotate_key_killed_at_random_moments_loses_nothing(tmp_path):
    data = tmp_path / "agent"
    make_store(data, 10_000)
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")} | {"EDGE_AGENT_DATA_DIR": str(data)}
    before = contents(data, resolved(data))
    started = time.monotonic()
    subprocess.run([str(BIN), "rotate-key"], env=env, check=True, capture_output=True)
    full = time.monotonic() - started
    rng = random.Random()
    for _ in range(8):
        proc = subprocess.Popen([str(BIN), "rotate-key"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(0.3 * full, 1.1 * full))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert integrity(data) == "ok"
        assert_no_pii(data, "after a killed edge-agent rotate-key")
        assert contents(data, resolved(data)) == before
    result = subprocess.run([str(BIN), "rotate-key"], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "re-sealed 10000 events, 20 quarantined inputs and 1 capture journals under a new key" in result.stdout
    assert contents(data, resolved(data)) == before
    assert_no_pii(data, "after edge-agent rotate-key")


def test_rotate_key_refuses_while_the_agent_runs(store):
    from edge_agent.agent import lock_data_dir
    from edge_agent.config import load_config

    lock = lock_data_dir(load_config(None, {"EDGE_AGENT_DATA_DIR": str(store)}, check_required=False))
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")} | {"EDGE_AGENT_DATA_DIR": str(store)}
        result = subprocess.run([str(BIN), "rotate-key"], env=env, capture_output=True, text=True)
    finally:
        os.close(lock)
    assert result.returncode == 1
    assert "is running on" in result.stderr and "stop it first" in result.stderr


def test_with_a_credential_the_new_key_waits_beside_it_until_installed(store, tmp_path):
    creds = tmp_path / "credentials"
    creds.mkdir()
    os.replace(store / "outbox.key", creds / "outbox.key")
    environ = {"CREDENTIALS_DIRECTORY": str(creds)}
    before = contents(store, resolved(store, environ))
    rotate_key(store / "outbox.key", store / "outbox.db", store / "journal", environ=environ)
    pending = store / ("outbox.key" + NEXT_SUFFIX)
    assert not (store / "outbox.key").exists() and pending.exists()
    assert resolved(store, environ) == pending.read_bytes()  # the agent still starts, with the new key
    os.replace(pending, creds / "outbox.key")  # the technician installs it as the credential
    assert contents(store, resolved(store, environ)) == before
    assert not pending.exists()


def test_a_store_under_an_unknown_key_is_refused_with_a_clear_message(store):
    (store / "outbox.key").unlink()
    load_or_create_key(store / "outbox.key")  # someone replaced the key file
    with pytest.raises(OutboxKeyError, match=r"restore outbox\.key from the backup taken with this outbox"):
        resolved(store)
