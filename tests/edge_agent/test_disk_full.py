"""A full disk under the capture path, on a real small filesystem: nothing read is dropped silently,
every write is checked, the real cause is reported, and the reserve gives committed sales room."""

from __future__ import annotations

import threading
import time

import pytest

from edge_agent.diskspace import DiskWriteError, SpaceReserve, inspect_disk
from edge_agent.journal import CaptureJournal
from edge_agent.outbox import Capture, Outbox
from edge_agent.privacy import PanRedactor
from edge_agent.sources.serial_pos import SerialPosSource
from edge_agent.writer import OutboxWriter

MiB = 1024 * 1024


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def line(n: int) -> bytes:
    return f"receipt_no=R{n:04d} total={n % 10}.00 member_phone=1391234{n:04d}\r\n".encode()


def feed_until_refused(source, n: int) -> int:
    """Feed lines from ``n`` on until the journal refuses one (the file's last page may still have room)."""
    while source.health.journal_error is None:
        assert n < 1000, "the journal never ran out of space"
        source.feed(line(n))
        n += 1
    return n


def make_source(journal, emit, **kw):
    return SerialPosSource(
        url="loop://", baudrate=9600, journal=journal, emit=emit, redactor=PanRedactor(b"k" * 32), **kw
    )


def test_a_refused_journal_write_raises_a_clear_error_and_leaves_no_half_record(tmp_path, small_fs, sealer):
    fs = small_fs(tmp_path / "fs", MiB)
    path = fs.path / "pos.journal"
    journal = CaptureJournal(path, sealer, "pos", preallocate=0)
    journal.append(0, line(0))
    size = path.stat().st_size
    fs.fill()
    with pytest.raises(DiskWriteError, match=f"disk full writing {path}") as info:
        journal.append(len(line(0)), line(1) * 200)  # the page's tail takes part of it: a short write
    assert info.value.disk_full
    assert path.stat().st_size == size
    fs.free()
    journal.append(len(line(0)), line(1))
    journal.close()
    again = CaptureJournal(path, sealer, "pos")
    assert list(again.replay(0)) == [(0, line(0)), (len(line(0)), line(1))]
    assert again.torn_records == 0


def test_the_journal_keeps_accepting_input_in_its_preallocated_room_when_the_disk_fills(tmp_path, small_fs, sealer):
    fs = small_fs(tmp_path / "fs", MiB)
    journal = CaptureJournal(fs.path / "pos.journal", sealer, "pos", preallocate=64 * 1024)
    fs.fill()
    offset = 0
    while journal.size < 48 * 1024:  # durable input while nothing else on this disk can be written
        journal.append(offset, line(0))
        offset += len(line(0))
    refused = None
    for _ in range(1000):
        try:
            journal.append(offset, line(0))
        except DiskWriteError as exc:
            refused = exc
            break
        offset += len(line(0))
    assert refused is not None and refused.disk_full  # once the room is used up, the disk says no
    journal.committed = offset
    fs.free()
    journal.prepare()  # truncates, and owns its room again
    journal.append(offset, line(1))
    assert fs.free_bytes() <= fs.size - 64 * 1024


def test_short_writes_are_continued_until_the_record_is_whole(tmp_path, sealer):
    import os

    calls = []

    def three_bytes_at_a_time(fd, data):
        calls.append(len(data))
        return os.write(fd, data[:3])

    journal = CaptureJournal(tmp_path / "pos.journal", sealer, "pos", fsync=False, write=three_bytes_at_a_time)
    journal.append(0, line(0))
    journal.close()
    assert len(calls) > 10
    assert list(CaptureJournal(tmp_path / "pos.journal", sealer, "pos").replay(0)) == [(0, line(0))]


def test_a_torn_last_record_is_cut_off_and_counted_when_the_journal_opens(tmp_path, sealer):
    path = tmp_path / "pos.journal"
    journal = CaptureJournal(path, sealer, "pos", fsync=False)
    journal.append(0, line(0))
    whole = path.stat().st_size
    journal.append(len(line(0)), line(1))
    journal.close()
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size - 5)  # killed in the middle of the write
    reopened = CaptureJournal(path, sealer, "pos", fsync=False)
    assert (reopened.torn_records, path.stat().st_size) == (1, whole)
    reopened.append(len(line(0)), line(2))  # the next record follows a whole one
    reopened.close()
    replayed = list(CaptureJournal(path, sealer, "pos").replay(0))
    assert replayed == [(0, line(0)), (len(line(0)), line(2))]


def test_the_source_holds_a_chunk_the_journal_refused_and_writes_it_when_space_returns(tmp_path, small_fs, sealer):
    fs = small_fs(tmp_path / "fs", MiB)
    journal = CaptureJournal(fs.path / "pos.journal", sealer, "pos", preallocate=0)
    got, full = [], []
    source = make_source(journal, got.append, on_disk_full=full.append)
    source.feed(line(0))
    fs.fill()
    refused = feed_until_refused(source, 1) - 1  # must not raise, must not lose the chunk
    source.feed(line(refused + 1))
    assert [r.payload()["receipt_no"] for r in got] == [f"R{n:04d}" for n in range(refused + 2)]
    assert source.health.unjournaled_bytes == 2 * len(line(0))
    assert source.health.journal_error.startswith(f"disk full writing {journal.path}")
    assert full and full[0] == source.health.journal_error
    fs.free()
    source.feed(line(refused + 2))
    assert source.health.unjournaled_bytes == 0 and source.health.journal_error is None
    journal.close()
    replayed = b"".join(data for _, data in CaptureJournal(journal.path, sealer, "pos").replay(0))
    assert replayed == b"".join(line(n) for n in range(refused + 3))


def test_chunks_committed_while_held_are_not_journaled_late(tmp_path, small_fs, sealer):
    fs = small_fs(tmp_path / "fs", MiB)
    journal = CaptureJournal(fs.path / "pos.journal", sealer, "pos", preallocate=0)
    got = []
    source = make_source(journal, got.append)
    fs.fill()
    feed_until_refused(source, 0)
    journal.committed = got[-1].offset  # the writer committed every line through the released reserve
    fs.free()
    assert source.backlog.flush(force=True)
    assert source.health.bytes_read == journal.committed
    assert list(CaptureJournal(journal.path, sealer, "pos").replay(journal.committed)) == []


def test_past_its_memory_bound_the_source_drops_counts_and_reports_a_gap(tmp_path, small_fs, sealer):
    fs = small_fs(tmp_path / "fs", MiB)
    journal = CaptureJournal(fs.path / "pos.journal", sealer, "pos", preallocate=0)
    got = []
    source = make_source(journal, got.append, max_unjournaled_bytes=2 * len(line(0)))
    fs.fill()
    n = feed_until_refused(source, 0)  # one line held
    for extra in range(4):  # one more held, three dropped
        source.feed(line(n + extra))
    assert source.health.dropped_lines == 3 and source.health.dropped_bytes == 3 * len(line(0))
    assert [r.payload()["receipt_no"] for r in got] == [f"R{k:04d}" for k in range(n + 1)]
    fs.free()
    source.feed(line(n + 4))
    gap = got[-2]
    assert gap.kind == "agent.gap"
    assert gap.payload() == {"reason": "disk_pressure", "shed": {"pos.receipt": 3}, "from_seq": None, "to_seq": None}
    assert got[-1].payload()["receipt_no"] == f"R{n + 4:04d}"  # line boundaries survived the drop


def padded_receipt(size: int) -> dict:
    """A receipt that fits its schema and takes about ``size`` bytes (long item names)."""
    return {"receipt_no": "R1", "total": "1.00", "items": [{"name": "x" * 250} for _ in range(size // 250)]}


def test_the_writer_names_the_real_cause_and_commits_once_space_returns(tmp_path, small_fs, sealer):
    fs = small_fs(tmp_path / "fs", 2 * MiB)
    outbox = Outbox(fs.path / "outbox.db", sealer, "S001")
    outbox.append([Capture.of("pos.receipt", {"n": 0}, "2026-11-23T02:00:00.000Z")])
    writer = OutboxWriter(outbox, commit_interval=0.0, max_retry_delay=0.2)
    writer.start()
    fs.fill()
    writer.put(Capture.of("pos.receipt", padded_receipt(4000), "2026-11-23T02:00:00.000Z"))
    wait_for(lambda: writer.last_error is not None)
    assert writer.last_error.startswith(f"disk full writing {outbox.path}"), writer.last_error
    assert "cannot rollback" not in writer.last_error
    fs.free()
    wait_for(lambda: writer.committed == 1)
    assert writer.last_error is None
    writer.stop()
    assert Outbox(outbox.path, sealer, "S001").stats().pending == 2


def test_the_reserve_gives_way_when_the_disk_fills_and_returns_with_the_space(tmp_path, small_fs, sealer):
    fs = small_fs(tmp_path / "fs", 4 * MiB)
    reserve = SpaceReserve(fs.path / "reserve", MiB)
    assert reserve.ensure() and reserve.held() == MiB
    outbox = Outbox(fs.path / "outbox.db", sealer, "S001")
    writer = OutboxWriter(outbox, commit_interval=0.0, max_retry_delay=0.2, on_disk_full=reserve.release)
    writer.start()
    fs.fill()
    assert inspect_disk(fs.path, MiB).full is False  # the reserve is still whole
    writer.put(Capture.of("pos.receipt", padded_receipt(20000), "2026-11-23T02:00:00.000Z"))
    wait_for(lambda: writer.committed == 1)  # the first attempt failed and released the reserve
    facts = reserve.facts()
    assert (facts.full, facts.episodes, facts.reserve_bytes) == (True, 1, 0)
    assert facts.last_error.startswith(f"disk full writing {outbox.path}")
    assert inspect_disk(fs.path, MiB).full is True  # what doctor sees from another process
    reserve.check()
    assert reserve.full  # no room yet: the reserve stays released
    fs.free()
    reserve.check()
    assert not reserve.full and reserve.held() == MiB
    assert inspect_disk(fs.path, MiB).full is False
    writer.stop()


def test_crlf_lines_let_the_journal_be_truncated(tmp_path, sealer):
    """CR LF endings used to leave the committed offset one byte short of every chunk, forever."""
    journal = CaptureJournal(tmp_path / "pos.journal", sealer, "pos", fsync=False)
    outbox = Outbox(tmp_path / "outbox.db", sealer, "S001")
    committed = threading.Event()

    def on_commit(offsets):
        journal.committed = offsets["pos"]
        committed.set()

    writer = OutboxWriter(outbox, commit_interval=0.0, on_commit=on_commit)
    writer.start()
    source = make_source(journal, writer.put)
    for n in range(50):
        committed.clear()
        source.feed(line(n))
        assert committed.wait(5)
    writer.stop()
    assert journal.path.stat().st_size <= 2 * (len(line(0)) + 40)
    from edge_agent.journal import inspect_journal

    assert inspect_journal(journal.path, journal.committed).uncommitted_bytes == 0
