"""What the ESC/POS parser produces: a printed receipt, and the builder that collects one.

Text is kept as raw byte segments, each tagged with how to decode it, until the receipt ends;
then every line is decoded. Segments printed before the stream said which dialect it speaks
(double-byte Chinese or a single-byte code page) are decoded by what the rest of the receipt
shows, so the answer does not depend on where the reads happened to split the stream. A receipt
keeps at most ``limit`` bytes: past that it is cut off (warned ``receipt_too_large``) and the rest
of it, up to wherever it ends, is dropped, so a stream that never cuts holds bounded memory (the
parser ends a receipt at as many printer bytes, so this bounds only code-page switches and codes,
each of which costs more here than it was sent).
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

from edge_agent.parsing.escpos_codepages import decoding_table

# How a segment decodes: (mode, single-byte page, double-byte codec, translate table).
# Mode "S" is single-byte, "D" double-byte, "U" not yet known (decided when the receipt ends).
SegmentKey = tuple[str, str, str, dict[int, str] | None]
# What a segment or a code costs beyond its bytes, counted against the limit so that a stream
# switching code pages around every character cannot hold more objects than bytes.
OVERHEAD = 64
_HIGH = bytes(range(0x80, 0x100))
TOO_LARGE = "receipt_too_large"
"""The warning on a receipt cut off at its size limit."""


@dataclass(frozen=True, slots=True)
class Code:
    """A barcode or two-dimensional symbol the receipt printed: its symbology and its data."""

    symbology: str
    data: str


@dataclass(frozen=True, slots=True)
class PrintedReceipt:
    """One receipt's text lines and printed codes, and where it lies in the byte stream."""

    lines: tuple[str, ...]
    codes: tuple[Code, ...]
    ended_by: str  # cut, reset, idle, pause (held open too long), end, limit (max_receipt_bytes)
    start: int
    end: int
    images: int = 0  # logos and other graphics printed
    warnings: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        """The receipt as one string, a newline after each line."""
        return "".join(line + "\n" for line in self.lines)


class ReceiptBuilder:
    """Collects one receipt's text segments, codes and images while the parser reads it.

    The text is one list of byte segments, line ends included as LF (no codec uses that byte
    inside a character), so a receipt decodes in as many calls as it has code-page switches.
    """

    def __init__(self, start: int, key: SegmentKey, limit: int) -> None:
        self.start = start
        self.key = key
        self.segments: list[tuple[SegmentKey, bytearray]] = []
        self.segment: bytearray | None = None
        self.lines = 0
        self.line_bytes = 0
        self.codes: list[Code] = []
        self.images = 0
        self.warnings: list[str] = []
        self.saw_double = False  # FS &, FS ., ESC t 255 or ESC 9: a Chinese printer's dialect
        self.saw_single = False  # ESC t n: a single-byte code page chosen on purpose
        self.room = limit  # bytes it may still keep, each segment and code costing OVERHEAD more
        self.full = False  # cut off at its limit: nothing more is kept

    @property
    def empty(self) -> bool:
        """Whether nothing has been printed on it yet, not even a blank line."""
        return not (self.segments or self.codes or self.images)

    def switch(self, key: SegmentKey) -> None:
        """Text from now on decodes by ``key``."""
        if key == self.key:
            return  # the same decoding: the current segment goes on
        self.key = key
        self.segment = None

    def warn(self, reason: str) -> None:
        """Note a problem once per receipt (none once it is cut off: what follows is dropped)."""
        if reason not in self.warnings and not self.full:
            self.warnings.append(reason)

    def text(self, data: bytes) -> None:
        """Append printable bytes to the current line."""
        segment = self.segment
        if segment is None:
            if self.full:
                return
            segment = self._segment()
        room = self.room - len(data)
        if room < 0:
            if self.full:
                return
            data = self._cut(data)
        else:
            self.room = room
        segment += data
        self.line_bytes += len(data)

    def run(self, data: bytes, lines: int) -> None:
        """Append text holding ``lines`` line feeds: what ``text`` and ``newline`` would do, at once."""
        segment = self.segment
        if segment is None:
            if self.full:
                return
            segment = self._segment()
        room = self.room - len(data)
        if room < 0:
            if self.full:
                return
            data = self._cut(data)
            lines = data.count(b"\n")
        else:
            self.room = room
        segment += data
        if lines:
            self.lines += lines
            self.line_bytes = len(data) - data.rfind(b"\n") - 1
        else:
            self.line_bytes += len(data)

    def newline(self) -> int:
        """End the current line (empty or not); return how many lines the receipt has."""
        segment = self.segment
        if segment is None:
            if self.full:
                return self.lines
            segment = self._segment()
        if self.room < 1:
            if not self.full:
                self._cut(b"")
            return self.lines
        self.room -= 1
        segment += b"\n"
        self.line_bytes = 0
        self.lines += 1
        return self.lines

    def code(self, code: Code) -> None:
        """Note a printed barcode or 2D symbol."""
        if self.full:
            return
        room = self.room - OVERHEAD - len(code.data)
        if room < 0:
            self._cut(b"")
        else:
            self.room = room
            self.codes.append(code)

    def _segment(self) -> bytearray:
        segment = self.segment = bytearray()
        self.segments.append((self.key, segment))
        self.room -= OVERHEAD
        return segment

    def _cut(self, data: bytes) -> bytes:
        """What of ``data`` still fits; the receipt keeps nothing more from here on."""
        self.warn(TOO_LARGE)
        self.full = True
        kept = data[: max(0, self.room)]
        self.room = -1
        self.line_bytes = 0
        return kept

    def finish(self, ended_by: str, end: int) -> PrintedReceipt | None:
        """The receipt, decoded; None if nothing was printed on it but blank lines."""
        if not (self.segments or self.codes or self.images):
            return None  # a reset right after a cut, say: nothing was printed
        text = _decode(self.segments, self.chinese)
        # Trailing spaces are layout, and so are blank lines before and after the text.
        lines = [line.rstrip() for line in text.split("\n")]
        while lines and not lines[-1]:
            lines.pop()
        first = 0
        while first < len(lines) and not lines[first]:
            first += 1
        lines = lines[first:]
        if not (lines or self.codes or self.images):
            return None
        if "\ufffd" in text:
            self.warn("undecodable_text")
        return PrintedReceipt(
            tuple(lines), tuple(self.codes), ended_by, self.start, end, self.images, tuple(self.warnings)
        )

    @property
    def chinese(self) -> bool:
        """Whether text printed before any double-byte command decodes as double-byte.

        A Chinese printer starts in double-byte mode, and ``ESC t n`` there picks the page of
        single-byte characters only: a page choice alone proves no Epson printer. So when the
        printer chose a page and no double-byte command settles it, the text decides: Chinese
        unless most of its non-ASCII bytes are in text that is not GB18030 (an Epson printer's
        jordbær, déjà).
        """
        if self.saw_double or not self.saw_single:
            return True
        weight = 0
        for (mode, *_), raw in self.segments:
            if mode == "U":
                high = len(raw) - len(raw.translate(None, _HIGH))
                weight += high if _double_byte_text(raw) else -high
        return weight > 0


def _double_byte_text(raw: bytearray) -> bool:
    """Whether bytes read as GB18030 without an error (ASCII does)."""
    try:
        raw.decode("gb18030")
    except UnicodeDecodeError:
        return False
    return True


def _decode(segments: list[tuple[SegmentKey, bytearray]], chinese: bool) -> str:
    parts = []
    for (mode, page, double, table), raw in segments:
        if mode == "U":
            mode = "D" if chinese else "S"
        if mode == "D":
            text = raw.decode(double, "replace")
        else:
            text = codecs.charmap_decode(bytes(raw), "replace", decoding_table(page))[0]
        parts.append(text.translate(table) if table else text)
    return "".join(parts)
