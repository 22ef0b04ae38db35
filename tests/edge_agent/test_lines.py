"""Line splitting across chunk boundaries, for every line ending POS models use."""

from __future__ import annotations

from edge_agent.parsing.lines import LineSplitter


def pieces(splitter, *chunks):
    out = []
    for chunk in chunks:
        out += [(p.raw, p.end, p.overflow) for p in splitter.feed(chunk)]
    return out


def test_lf_crlf_and_cr_only_all_end_lines():
    s = LineSplitter(100)
    assert pieces(s, b"a\nb\r\nc\rd") == [(b"a", 2, False), (b"b", 5, False), (b"c", 7, False)]
    assert s.pending == 1
    assert s.offset == 8


def test_a_line_split_across_chunks_is_joined_with_its_end_offset():
    s = LineSplitter(100, start_offset=1000)
    assert pieces(s, b"rec", b"eipt", b"_no=1", b"\r", b"\n") == [(b"receipt_no=1", 1013, False)]


def test_blank_lines_produce_nothing():
    s = LineSplitter(100)
    assert pieces(s, b"\r\n\r\n\n\n") == []
    assert s.offset == 6


def test_overlong_line_is_cut_once_and_skipped_to_its_end():
    s = LineSplitter(8)
    got = pieces(s, b"0123456789", b"abcdef\nok\n")
    assert got == [(b"01234567", 10, True), (b"ok", 20, False)]


def test_overflow_exactly_at_the_limit_is_not_overflow():
    s = LineSplitter(4)
    assert pieces(s, b"abcd\n") == [(b"abcd", 5, False)]


def test_a_line_end_covers_the_terminators_after_it_in_the_same_chunk():
    """With CR LF the LF must count as committed too, or the journal is never truncated."""
    s = LineSplitter(100)
    assert pieces(s, b"a=1\r\n") == [(b"a=1", 5, False)]
    assert pieces(s, b"b=2\r\n\r\n") == [(b"b=2", 12, False)]
    assert pieces(s, b"c=3\r", b"\n") == [(b"c=3", 16, False)]  # the LF came in the next read: not covered
    assert s.offset == 17
