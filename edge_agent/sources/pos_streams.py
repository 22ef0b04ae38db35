"""How the POS source turns the bytes it read into records: one class per ``pos.mode``.

``line`` mode reads one JSON or key=value record per line (parsing/receipt_line.py); ``escpos``
mode reads the stream a POS sends its receipt printer (receipt_reader.py) and ends a receipt at a
cut, a reset, or when the source reports an idle gap (in a stream that frames its receipts with a
reset and a cut, only when the source reports that the pause lasted too long). Both know how far into the byte stream
each record reaches, which is what the capture journal needs to replay after a crash.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from edge_agent.parsing.escpos import MAX_RECEIPT_BYTES, Kanji
from edge_agent.parsing.lines import LineSplitter
from edge_agent.parsing.receipt_line import LineError, decode_line, parse_receipt_line
from edge_agent.parsing.receipt_profile import Profile
from edge_agent.privacy import PanRedactor
from edge_agent.receipt_events import receipt_record
from edge_agent.receipt_reader import ReceiptReader, ReceiptRecord
from edge_agent.records import Capture, Quarantined, Record
from shared.wire import timestamp


class PosStream(Protocol):
    """Bytes in, records out, from a given stream offset on."""

    @property
    def offset(self) -> int:
        """Stream position just past the last byte fed."""

    def feed(self, data: bytes) -> list[Record]:
        """The records ``data`` completes."""

    def idle(self) -> list[Record]:
        """The port has been quiet for the idle gap: the records that ends."""

    def expire(self) -> list[Record]:
        """The port has been quiet for the longest pause a receipt may hold: the records that ends."""

    def lost(self, data: bytes) -> int:
        """Consume ``data`` that cannot be kept (the disk is full); how many records it held."""


StreamFactory = Callable[[int], PosStream]
"""Makes a fresh stream starting at a byte offset (at start-up and after a journal gap)."""


class LineStream:
    """``pos.mode = "line"``: each line is a record; lines that are not receipts are quarantined."""

    def __init__(
        self,
        start_offset: int,
        *,
        redactor: PanRedactor,
        encoding: str = "auto",
        max_line_bytes: int = 65536,
        clock: Callable[[], float],
        source: str = "pos",
    ) -> None:
        self._splitter = LineSplitter(max_line_bytes, start_offset=start_offset)
        self._redactor = redactor
        self._encoding = encoding
        self._clock = clock
        self._source = source

    @property
    def offset(self) -> int:
        return self._splitter.offset

    def feed(self, data: bytes) -> list[Record]:
        out: list[Record] = []
        for piece in self._splitter.feed(data):
            try:
                if piece.overflow:
                    raise LineError("line_too_long")
                receipt = parse_receipt_line(decode_line(piece.raw, self._encoding))
            except LineError as exc:
                raw = self._redactor.raw(piece.raw)
                out.append(Quarantined(self._source, exc.reason, raw, self._clock(), piece.end))
                continue
            payload = self._redactor.payload(receipt.payload(), self._redactor.receipt_number(receipt.receipt_no))
            out.append(Capture.of("pos.receipt", payload, timestamp(self._clock), self._source, piece.end))
        return out

    def idle(self) -> list[Record]:
        return []  # a line ends at its terminator, never at a pause

    def expire(self) -> list[Record]:
        return []

    def lost(self, data: bytes) -> int:
        return len(self._splitter.feed(data))  # keeps line boundaries and offsets right for what follows


class EscposStream:
    """``pos.mode = "escpos"``: printer bytes to receipts, each a ``pos.receipt`` event or quarantined."""

    def __init__(
        self,
        start_offset: int,
        *,
        profiles: Sequence[Profile],
        redactor: PanRedactor,
        only: str | None = None,
        kanji: Kanji = "auto",
        clock: Callable[[], float],
        source: str = "pos",
        max_receipt_bytes: int = MAX_RECEIPT_BYTES,
    ) -> None:
        self._reader = ReceiptReader(
            profiles, redactor, only=only, kanji=kanji, start_offset=start_offset, max_receipt_bytes=max_receipt_bytes
        )
        self._clock = clock
        self._source = source

    @property
    def offset(self) -> int:
        return self._reader.parser.offset

    def _records(self, records: list[ReceiptRecord]) -> list[Record]:
        now = self._clock()
        observed = timestamp(lambda: now)
        return [receipt_record(r, observed, now, source=self._source) for r in records]

    def feed(self, data: bytes) -> list[Record]:
        return self._records(self._reader.feed(data))

    def idle(self) -> list[Record]:
        return self._records(self._reader.idle())

    def expire(self) -> list[Record]:
        return self._records(self._reader.expire())

    def lost(self, data: bytes) -> int:
        # Parsed (not read for sales) so the printer state and offsets stay right for what follows.
        return self._reader.skip(data)
