"""A SIGKILL at any moment around a read of a real pty loses nothing: the read itself puts the bytes
in the staging file, so when ``read()`` returns there is no moment left in which they exist only in
the killed process (the kill storm lost whole 4 KiB reads there)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tty

import pytest

from edge_agent.journal import CaptureJournal
from edge_agent.privacy import PanRedactor
from edge_agent.sources.serial_pos import SerialPosSource
from edge_agent.sources.staging import ReadStaging, staging_path
from shared.crypto import Sealer, load_or_create_key

CHUNK = b"".join(f"receipt_no=K{n:03d} total={n}.00\n".encode() for n in range(150))  # more than 4 KiB waits

KILLED_AT = """
import os, select, signal, sys
from pathlib import Path
from edge_agent.sources import port_reader
from edge_agent.sources.serial_pos import open_port
from edge_agent.sources.staging import ReadStaging, staging_path
data, tty_path, moment = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
(data / "run").mkdir(exist_ok=True)  # as systemd makes /run/edge-agent: the agent creates none
staging = ReadStaging(staging_path(data, "pos", str(data / "run")))
port = open_port(tty_path, 9600)
select.select([port.fd], [], [], 5)
if moment == "returned":  # the source's own read, killed the moment it returns
    reader = port_reader.PortReader(port, 5.0, staging)
    reader.read(1000)
else:  # the steps of that read, killed between two of them
    address = staging.claim(1000, 4000)
    if moment == "read":
        assert port_reader._read(port.fd, address, 4000) == 4000
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.fixture
def pos_pty():
    master, slave = os.openpty()
    tty.setraw(slave)
    yield master, os.ttyname(slave)
    for fd in (master, slave):
        with contextlib.suppress(OSError):
            os.close(fd)


def killed_at(moment: str, data, tty_path: str) -> None:
    args = [sys.executable, "-c", KILLED_AT, str(data), tty_path, moment]
    result = subprocess.run(args, capture_output=True, timeout=60)
    assert result.returncode == -signal.SIGKILL, result.stderr.decode()


def left_in_pty(master: int, tty_path: str) -> bytes:
    fd = os.open(tty_path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    try:
        out = b""
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(fd, 65536):
                out += chunk
        return out
    finally:
        os.close(fd)


@pytest.mark.parametrize("moment", ["returned", "read"])
def test_bytes_read_when_the_agent_is_killed_are_in_the_staging_file(tmp_path, pos_pty, moment):
    master, tty_path = pos_pty
    os.write(master, CHUNK)
    killed_at(moment, tmp_path, tty_path)
    staged = ReadStaging(staging_path(tmp_path, "pos", str(tmp_path / "run"))).leftovers()
    assert len(staged) == 1 and staged[0][0] == 1000
    assert staged[0][1] + left_in_pty(master, tty_path) == CHUNK  # every byte is in one place or the other


def test_a_claim_killed_before_its_read_stages_nothing_and_the_bytes_stay_in_the_port(tmp_path, pos_pty):
    master, tty_path = pos_pty
    os.write(master, CHUNK)
    killed_at("claimed", tmp_path, tty_path)
    staging = ReadStaging(staging_path(tmp_path, "pos", str(tmp_path / "run")))
    assert staging.leftovers() == []
    assert left_in_pty(master, tty_path) == CHUNK
    staging.stage(0, b"x")  # the abandoned claim leaves nothing behind the next record
    assert staging.leftovers() == [(0, b"x")]


def test_a_fresh_source_turns_the_killed_read_into_receipts(tmp_path, pos_pty):
    master, tty_path = pos_pty
    os.write(master, CHUNK)
    killed_at("returned", tmp_path, tty_path)
    sealer = Sealer(load_or_create_key(tmp_path / "outbox.key"))
    got = []
    source = SerialPosSource(
        url=tty_path,
        baudrate=9600,
        journal=CaptureJournal(tmp_path / "pos.journal", sealer, "pos", fsync=False),
        emit=got.append,
        redactor=PanRedactor(b"k" * 32),
        staging=ReadStaging(staging_path(tmp_path, "pos", str(tmp_path / "run"))),
    )
    source.recover(1000)  # the outbox had committed everything before the killed read
    rest = left_in_pty(master, tty_path)
    source.feed(rest)
    numbers = [r.payload()["receipt_no"] for r in got]
    assert numbers == [f"K{n:03d}" for n in range(150)]
    assert source.staging.leftovers() == [(1000 + len(CHUNK) - len(rest), rest)]  # the killed read's is gone
    source.journal.close()
