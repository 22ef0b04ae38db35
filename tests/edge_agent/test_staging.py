"""The RAM staging file: bytes a SIGKILL caught between the read and the journal are recovered, once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from edge_agent.journal import CaptureJournal
from edge_agent.privacy import PanRedactor
from edge_agent.sources.serial_pos import SerialPosSource
from edge_agent.sources.staging import ReadStaging, staging_path
from shared.crypto import Sealer, load_or_create_key


def make_source(data, sealer, emit):
    (data / "run").mkdir(exist_ok=True)  # as systemd makes /run/edge-agent: the agent creates none
    journal = CaptureJournal(data / "pos.journal", sealer, "pos", fsync=False)
    return SerialPosSource(
        url="loop://",
        baudrate=9600,
        journal=journal,
        emit=emit,
        redactor=PanRedactor(b"k" * 32),
        staging=ReadStaging(staging_path(data, "pos", str(data / "run"))),
    )


KILLED_AFTER_STAGING = """
import os, signal, sys
from pathlib import Path
from edge_agent.journal import CaptureJournal
from edge_agent.privacy import PanRedactor
from edge_agent.sources.serial_pos import SerialPosSource
from edge_agent.sources.staging import ReadStaging, staging_path
from shared.crypto import Sealer, load_or_create_key
data, journaled = Path(sys.argv[1]), sys.argv[2] == "journaled"
(data / "run").mkdir(exist_ok=True)
journal = CaptureJournal(data / "pos.journal", Sealer(load_or_create_key(data / "outbox.key")), "pos", fsync=False)
staging = ReadStaging(staging_path(data, "pos", str(data / "run")))
source = SerialPosSource(url="loop://", baudrate=9600, journal=journal, emit=lambda r: None,
                         redactor=PanRedactor(b"k" * 32), staging=staging)
source.feed(b"receipt_no=R1 total=1\\n")
chunk = b"receipt_no=R2 total=2\\n"
source.staging.stage(source.offset, chunk)  # what the read loop does first after a read
if journaled:
    source.journal.append(source.offset, chunk)
os.kill(os.getpid(), signal.SIGKILL)
"""


def killed_after_staging(data, *, journaled: bool) -> None:
    args = [sys.executable, "-c", KILLED_AFTER_STAGING, str(data), "journaled" if journaled else "staged"]
    assert subprocess.run(args, capture_output=True).returncode == -signal.SIGKILL


def test_a_chunk_staged_but_not_journaled_when_killed_is_recovered(tmp_path):
    sealer = Sealer(load_or_create_key(tmp_path / "outbox.key"))  # shared with the killed process
    killed_after_staging(tmp_path, journaled=False)
    got = []
    source = make_source(tmp_path, sealer, got.append)
    committed = len(b"receipt_no=R1 total=1\n")  # R1 reached the outbox before the kill
    assert source.recover(committed) == len(b"receipt_no=R2 total=2\n")
    assert [r.payload()["receipt_no"] for r in got] == ["R2"]
    source.journal.close()
    replayed = list(CaptureJournal(tmp_path / "pos.journal", sealer, "pos").replay(committed))
    assert replayed == [(committed, b"receipt_no=R2 total=2\n")]  # journaled now, staging emptied
    assert source.staging.leftovers() == []


def test_a_chunk_both_staged_and_journaled_is_not_taken_twice(tmp_path):
    sealer = Sealer(load_or_create_key(tmp_path / "outbox.key"))
    killed_after_staging(tmp_path, journaled=True)
    got = []
    source = make_source(tmp_path, sealer, got.append)
    source.recover(len(b"receipt_no=R1 total=1\n"))
    assert [r.payload()["receipt_no"] for r in got] == ["R2"]


def test_staging_is_emptied_before_each_read_and_removed_on_a_clean_stop(tmp_path, sealer):
    got = []
    source = make_source(tmp_path, sealer, got.append)
    for n in range(5):
        source.feed(f"receipt_no=R{n} total=1\n".encode())
        assert len(source.staging.leftovers()) == 1  # only the last read
    path = source.staging.path
    source.stop()
    assert not path.exists()


def test_the_staging_file_goes_to_the_runtime_directory_and_is_per_data_directory(tmp_path):
    run = {"RUNTIME_DIRECTORY": str(tmp_path / "run")}
    one = staging_path(tmp_path / "a", "pos", environ=run)
    assert one.parent == tmp_path / "run" and one.name.endswith("-pos.staging")
    assert one != staging_path(tmp_path / "b", "pos", environ=run)
    assert staging_path(tmp_path / "a", "pos", environ={}).parent.as_posix() == "/dev/shm"
    assert staging_path(tmp_path / "a", "pos", str(tmp_path / "x"), environ=run).parent == tmp_path / "x"


def test_a_planted_symlink_is_not_followed(tmp_path):
    target = tmp_path / "victim"
    target.write_bytes(b"keep")
    link = tmp_path / "edge-agent-x-pos.staging"
    link.symlink_to(target)
    staging = ReadStaging(link)
    staging.stage(0, b"raw bytes")  # disabled: nothing written anywhere
    assert target.read_bytes() == b"keep"
    assert os.path.islink(link)


def test_a_file_in_another_format_is_set_aside_not_parsed(tmp_path):
    path = tmp_path / "edge-agent-x-pos.staging"
    path.write_bytes(b"\0" * 7 + b"\x10" + b"\0\0\0\x05hello")  # offset, length, bytes: an older layout
    staging = ReadStaging(path)
    assert staging.leftovers() == []
    assert (tmp_path / "edge-agent-x-pos.staging.unknown").read_bytes().endswith(b"hello")
    staging.stage(7, b"abc")
    assert ReadStaging(path).leftovers() == [(7, b"abc")]  # and the new file is read back as it is


def test_no_staging_directory_is_ever_created(tmp_path):
    """A typo in capture.staging_dir must not put clear bytes in a new folder on the root disk."""
    staging = ReadStaging(tmp_path / "missing" / "run" / "edge-agent-x-pos.staging")
    assert not staging.enabled
    assert not (tmp_path / "missing").exists()


def test_the_filesystem_of_a_directory_is_read_from_the_deepest_mount_holding_it(tmp_path):
    from edge_agent.sources.staging import filesystem_type

    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
        "25 22 0:23 / /run rw,nosuid,nodev shared:5 - tmpfs tmpfs rw,size=1620k,mode=755\n"
        "26 25 0:24 / /run/edge\\040agent rw shared:6 - ext4 /dev/sdb1 rw\n"
        "27 22 0:25 / /runtime rw shared:7 - xfs /dev/sdc1 rw\n"
    )
    assert filesystem_type(Path("/run/edge-agent"), mountinfo) == "tmpfs"
    assert filesystem_type(Path("/run/edge agent/x"), mountinfo) == "ext4"  # a mount point with a space
    assert filesystem_type(Path("/runtime"), mountinfo) == "xfs"
    assert filesystem_type(Path("/var/lib"), mountinfo) == "ext4"
    assert filesystem_type(Path("/run"), tmp_path / "absent") is None
