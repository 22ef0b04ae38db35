"""Splitting a POS byte stream into lines, tracking where each line ends in the stream.

POS models disagree on line endings: LF, CR LF, and CR alone all occur (several Chinese 58 mm
receipt printers' "line mode" ends records with CR only), so CR and LF both end a line and empty
lines are skipped. Offsets are absolute positions in the device's byte stream, which is how the
capture journal knows what has been committed.

>>> s = LineSplitter(max_line_bytes=64)
>>> [(p.raw, p.end) for p in s.feed(b"a=1\\r\\nb=2\\rc=")]
[(b'a=1', 5), (b'b=2', 9)]
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TERMINATOR = re.compile(rb"[\r\n]")


@dataclass(frozen=True, slots=True)
class Piece:
    """A complete line (without its terminator) or the kept head of an over-long line."""

    raw: bytes
    end: int
    overflow: bool = False


class LineSplitter:
    """Feeds bytes in, gets complete lines out; holds the partial tail between feeds."""

    def __init__(self, max_line_bytes: int, start_offset: int = 0) -> None:
        self.max_line_bytes = max_line_bytes
        self.offset = start_offset  # stream position just past the last byte fed
        self._buffer = bytearray()
        self._discarding = False  # inside an over-long line, dropping bytes up to its end

    @property
    def pending(self) -> int:
        """Bytes held as an unfinished line."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Piece]:
        """Consume ``data`` and return the pieces it completes, in stream order."""
        pieces: list[Piece] = []
        start = self.offset
        self.offset += len(data)
        pos = 0
        for match in _TERMINATOR.finditer(data):
            self._take(data[pos : match.start()], start + match.start(), pieces)
            if self._buffer and not self._discarding:
                pieces.append(Piece(bytes(self._buffer), start + match.end()))
            elif pieces and pieces[-1].end == start + match.start():
                # The LF of a CR LF (or a blank line) right after a line: the line's end covers it, so
                # the committed offset reaches the end of the chunk and the journal can be truncated.
                pieces[-1] = Piece(pieces[-1].raw, start + match.end(), pieces[-1].overflow)
            self._discarding = False
            self._buffer.clear()
            pos = match.end()
        self._take(data[pos:], start + len(data), pieces)
        return pieces

    def _take(self, chunk: bytes, chunk_end: int, pieces: list[Piece]) -> None:
        if self._discarding or not chunk:
            return
        room = self.max_line_bytes - len(self._buffer)
        if len(chunk) <= room:
            self._buffer += chunk
            return
        self._buffer += chunk[:room]
        pieces.append(Piece(bytes(self._buffer), chunk_end, overflow=True))
        self._buffer.clear()
        self._discarding = True
