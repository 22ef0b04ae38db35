"""The writer thread groups commits, reports offsets, and flushes on stop."""

from __future__ import annotations

import sqlite3
import time

from edge_agent.outbox import Capture, Outbox
from edge_agent.writer import OutboxWriter


def capture(n: int) -> Capture:
    return Capture.of("pos.receipt", {"receipt_no": f"R{n}", "total": "1"}, "2026-11-23T02:00:00.000Z", "pos", n * 10)


def test_records_put_together_share_a_commit(outbox):
    offsets = []
    writer = OutboxWriter(outbox, commit_interval=0.5, max_group=1000, on_commit=offsets.append)
    for n in range(1, 301):
        writer.put(capture(n))
    writer.start()
    writer.stop()
    assert writer.committed == 300
    assert writer.commits == 1
    assert offsets == [{"pos": 3000}]
    assert outbox.stats().pending == 300


def test_group_size_is_capped(outbox):
    writer = OutboxWriter(outbox, commit_interval=0.5, max_group=100)
    for n in range(250):
        writer.put(capture(n))
    writer.start()
    writer.stop()
    assert writer.commits == 3


def test_a_lone_record_is_committed_within_the_interval(outbox):
    writer = OutboxWriter(outbox, commit_interval=0.05)
    writer.start()
    writer.put(capture(1))
    deadline = time.monotonic() + 5
    while writer.committed == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert writer.committed == 1
    writer.stop()


def test_a_failed_commit_is_retried_without_losing_the_group(tmp_path, sealer):
    outbox = Outbox(tmp_path / "o.db", sealer, "S001", busy_timeout=0.05)
    writer = OutboxWriter(outbox, commit_interval=0.0)
    blocker = sqlite3.connect(outbox.path, timeout=0)
    blocker.execute("BEGIN EXCLUSIVE")  # another process holds the database
    writer.start()
    writer.put(capture(1))
    deadline = time.monotonic() + 5
    while writer.last_error is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert writer.last_error is not None and "locked" in writer.last_error
    blocker.rollback()
    blocker.close()
    deadline = time.monotonic() + 10
    while writer.committed == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert writer.committed == 1
    assert writer.last_error is None
    writer.stop()
