"""The outbox: sealed rows, per-device sequence, settling central's answers, and nothing in clear on disk."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from edge_agent.outbox import CACHE_KIB, Capture, Outbox, OutboxKeyError, Quarantined
from shared.crypto import Sealer

PHONE = "13912345678"


def receipt(n: int, offset: int | None = None) -> Capture:
    payload = {"receipt_no": f"RCPT-{n:06d}", "total": "9.90", "member": {"phone": PHONE}}
    return Capture.of("pos.receipt", payload, "2026-11-23T02:00:00.000Z", source="pos", offset=offset)


def test_appended_events_come_back_in_sequence_order_with_their_payloads(outbox):
    outbox.append([receipt(1), receipt(2)])
    outbox.append([receipt(3)])
    pending = outbox.pending(10)
    assert [p.seq for p in pending] == [1, 2, 3]
    assert [p.event().payload["receipt_no"] for p in pending] == ["RCPT-000001", "RCPT-000002", "RCPT-000003"]
    assert {p.event().store_id for p in pending} == {"S001"}
    assert len({p.event_id for p in pending}) == 3


def test_sequence_keeps_rising_across_reopen_and_purge(tmp_path, sealer):
    box = Outbox(tmp_path / "o.db", sealer, "S001", clock=lambda: 1000.0)
    box.append([receipt(1), receipt(2)])
    box.settle([1, 2], [])
    assert box.purge_delivered(0) == 0  # acknowledged now, not older than 0 s yet
    later = Outbox(tmp_path / "o.db", sealer, "S001", clock=lambda: 1000.0 + 73 * 3600)
    assert later.purge_delivered(72 * 3600) == 2
    later.append([receipt(3)])
    assert [p.seq for p in later.pending(10)] == [3]
    box.close()
    later.close()


def test_settle_marks_delivered_and_keeps_rejected_with_reason(outbox):
    outbox.append([receipt(1), receipt(2), receipt(3)])
    outbox.settle([1], [(2, "unknown_kind")])
    assert [p.seq for p in outbox.pending(10)] == [3]
    stats = outbox.stats()
    assert (stats.pending, stats.delivered, stats.rejected, stats.last_seq) == (1, 1, 1, 3)
    assert [(seq, reason) for seq, _, _, reason in outbox.rejected()] == [(2, "unknown_kind")]


def test_journal_offsets_commit_with_the_events(outbox):
    assert outbox.committed_offset("pos") == 0
    outbox.append([receipt(1, offset=120), Quarantined("pos", "invalid_json", b"{x", 1.0, offset=140)])
    assert outbox.committed_offset("pos") == 140


def test_a_row_that_no_longer_opens_is_quarantined_with_a_reason_and_counted(outbox):
    outbox.append([receipt(1), receipt(2), receipt(3)])
    conn = sqlite3.connect(outbox.path)
    conn.execute("UPDATE events SET sealed = X'00112233445566778899aabbccddeeff00112233445566778899' WHERE seq = 2")
    conn.commit()
    conn.close()
    assert [p.seq for p in outbox.pending(10)] == [1, 3]
    assert [p.seq for p in outbox.pending(10)] == [1, 3]  # once moved, it is not met again
    [row] = outbox.quarantine()
    assert (row.source, row.reason) == ("outbox", "unreadable_event")
    assert outbox.stats().counters == {"unreadable_events": 1}


def test_a_page_of_nothing_but_bad_rows_does_not_end_the_backlog(outbox):
    outbox.append([receipt(n) for n in range(6)])
    conn = sqlite3.connect(outbox.path)
    conn.execute("UPDATE events SET sealed = X'00112233445566778899aabbccddeeff00112233445566778899' WHERE seq <= 4")
    conn.commit()
    conn.close()
    assert [p.seq for p in outbox.pending(2)] == [5, 6]
    assert outbox.counters() == {"unreadable_events": 4}


def test_quarantine_keeps_raw_bytes_sealed_with_the_reason(outbox):
    outbox.append([Quarantined("pos", "binary_data", b"\x00\xffraw " + PHONE.encode(), 5.0)])
    [row] = outbox.quarantine()
    assert (row.source, row.reason, row.raw) == ("pos", "binary_data", b"\x00\xffraw " + PHONE.encode())


def test_no_phone_or_receipt_number_in_clear_in_db_wal_or_shm(tmp_path, sealer):
    box = Outbox(tmp_path / "o.db", sealer, "S001")
    box.append([receipt(n) for n in range(200)])
    box.append([Quarantined("pos", "invalid_json", f"{{receipt_no: RCPT-999999 {PHONE}".encode(), 1.0)])
    files = [p for p in tmp_path.iterdir() if p.name.startswith("o.db")]
    assert {p.name for p in files} >= {"o.db", "o.db-wal", "o.db-shm"}  # still open: the WAL is live
    for path in files:
        data = path.read_bytes()
        assert PHONE.encode() not in data, path
        assert b"RCPT-0" not in data and b"RCPT-999999" not in data, path
    box.close()


def test_a_different_key_is_refused_at_open(tmp_path, sealer):
    box = Outbox(tmp_path / "o.db", sealer, "S001")
    box.append([receipt(1)])
    with pytest.raises(OutboxKeyError, match="sealed under a different key"):
        Outbox(tmp_path / "o.db", Sealer(b"x" * 32), "S001")
    box.close()


def test_a_store_from_before_the_key_check_is_checked_against_its_newest_event(tmp_path, sealer):
    box = Outbox(tmp_path / "o.db", sealer, "S001")
    box.append([receipt(1)])
    box.connection().execute("DELETE FROM meta WHERE key = 'key_check'")
    with pytest.raises(OutboxKeyError, match="newest event does not open"):
        Outbox(tmp_path / "o.db", Sealer(b"x" * 32), "S001")
    Outbox(tmp_path / "o.db", sealer, "S001").close()  # the right key passes and writes the check
    assert box.connection().execute("SELECT COUNT(*) FROM meta WHERE key = 'key_check'").fetchone() == (1,)
    box.close()


def test_a_secret_kept_in_the_outbox_is_stored_once(tmp_path, sealer):
    box = Outbox(tmp_path / "o.db", sealer, "S001")
    assert box.secret("pan-hash", b"a" * 32) == b"a" * 32
    assert Outbox(tmp_path / "o.db", sealer, "S001").secret("pan-hash", b"b" * 32) == b"a" * 32
    assert b"a" * 32 not in (tmp_path / "o.db").read_bytes()
    box.close()


def test_pending_after_a_seq_and_the_answered_cursor(outbox):
    outbox.append([receipt(n) for n in range(10)])
    assert [p.seq for p in outbox.pending(3)] == [1, 2, 3]
    assert [p.seq for p in outbox.pending(3, after=3)] == [4, 5, 6]
    outbox.settle([1, 2, 3, 4, 5, 6], [])
    outbox.answered_through(6)
    assert [p.seq for p in outbox.pending(10)] == [7, 8, 9, 10]
    outbox.answered_through(2)  # never moves backwards
    assert [p.seq for p in outbox.pending(1)] == [7]


def test_every_threads_connection_keeps_a_small_page_cache(outbox):
    # The agent holds one connection per thread that uses the outbox; with SQLite's default cache
    # of about 2 MB each, draining a backlog took the agent past its 60 MB memory budget.
    sizes = [outbox.connection().execute("PRAGMA cache_size").fetchone()[0]]

    def other_thread():
        sizes.append(outbox.connection().execute("PRAGMA cache_size").fetchone()[0])
        outbox.close()

    worker = threading.Thread(target=other_thread)
    worker.start()
    worker.join()
    assert CACHE_KIB <= 1024
    assert sizes == [-CACHE_KIB, -CACHE_KIB]
