"""The capture journal: replay past the committed offset, torn tails, and truncation once committed."""

from __future__ import annotations

from edge_agent.journal import CaptureJournal


def test_replay_yields_only_bytes_past_the_committed_offset(tmp_path, sealer):
    journal = CaptureJournal(tmp_path / "pos.journal", sealer, "pos", fsync=False)
    journal.append(0, b"line one\n")
    journal.append(9, b"line two\nline th")
    journal.close()
    again = CaptureJournal(tmp_path / "pos.journal", sealer, "pos", fsync=False)
    assert list(again.replay(13)) == [(13, b" two\nline th")]
    assert again.end == 25
    assert list(again.replay(25)) == []


def test_nothing_is_readable_in_the_file(tmp_path, sealer):
    journal = CaptureJournal(tmp_path / "pos.journal", sealer, "pos", fsync=False)
    journal.append(0, b"member_phone=13812345678\n")
    assert b"13812345678" not in (tmp_path / "pos.journal").read_bytes()


def test_a_torn_last_record_is_cut_off(tmp_path, sealer):
    path = tmp_path / "pos.journal"
    journal = CaptureJournal(path, sealer, "pos", fsync=False)
    journal.append(0, b"good\n")
    size = path.stat().st_size
    journal.append(5, b"torn by a power cut\n")
    journal.close()
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size - 3)
    again = CaptureJournal(path, sealer, "pos", fsync=False)
    assert list(again.replay(0)) == [(0, b"good\n")]
    assert path.stat().st_size == size
    again.append(5, b"next\n")
    assert list(CaptureJournal(path, sealer, "pos", fsync=False).replay(0)) == [(0, b"good\n"), (5, b"next\n")]


def test_the_file_is_truncated_once_everything_is_committed(tmp_path, sealer):
    path = tmp_path / "pos.journal"
    journal = CaptureJournal(path, sealer, "pos", fsync=False)
    journal.append(0, b"a\n")
    journal.append(2, b"b\n")
    journal.committed = 2  # not everything yet: keep
    journal.prepare()
    journal.append(4, b"c\n")
    assert len(list(CaptureJournal(path, sealer, "pos").replay(0))) == 3
    journal.committed = 6
    journal.prepare()
    journal.append(6, b"d\n")
    assert list(CaptureJournal(path, sealer, "pos").replay(0)) == [(6, b"d\n")]


def test_inspect_counts_only_the_bytes_past_the_committed_offset_without_the_key(tmp_path, sealer):
    """What doctor shows as "not yet committed": not the file's size (records carry headers and tags)."""
    from edge_agent.journal import inspect_journal

    path = tmp_path / "pos.journal"
    journal = CaptureJournal(path, sealer, "pos", fsync=False)
    journal.append(0, b"a" * 100)
    journal.append(100, b"b" * 50)
    journal.close()
    facts = inspect_journal(path, committed=120)
    assert (facts.records, facts.uncommitted_bytes, facts.torn_bytes) == (2, 30, 0)
    assert facts.size_bytes == path.stat().st_size > 150
    assert inspect_journal(path, committed=150).uncommitted_bytes == 0
    assert inspect_journal(tmp_path / "none.journal", 0).records == 0
