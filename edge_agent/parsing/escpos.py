"""An incremental ESC/POS parser: the byte stream a POS sends its receipt printer, into receipts.

A till prints a receipt as text lines between printer commands, usually in GBK/GB18030::

    1b 40                      ESC @      reset
    1c 26                      FS &       Chinese (Kanji) mode on
    1b 61 01                   ESC a 1    centre
    c1 aa bb aa b1 e3 c0 fb 0a            "联华便利" LF
    1d 28 6b 07 00 31 50 30 ...           GS ( k   store a QR code's data (skipped by length)
    1d 56 42 00                GS V       feed and cut: the receipt ends here

Bytes arrive in chunks of any size and a command may straddle two of them; raster images, graphics
and barcode payloads are skipped by their declared lengths because their bytes look like commands,
as long as a printer would accept those lengths: a larger one is garbage, noted as
``implausible_command:<name>``, and the bytes after the command are read as the stream they are.
Receipts end at a cut (``GS V``, ``ESC i``, ``ESC m``), a reset (``ESC @``) or an idle gap the
caller reports with :meth:`EscposParser.idle`, which also ends a command still waiting for its
bytes: the parser holds no clock. In a stream that frames its receipts with ``ESC @`` and a cut, an
idle gap is a pause (a card terminal waiting for a PIN) and ends nothing; the caller ends a pause
that lasts too long with :meth:`EscposParser.expire`. A receipt whose printer bytes reach
``max_receipt_bytes`` ends there, and so do the pieces after it, each warned ``receipt_too_large``
(docs/decisions/0090). Text is decoded when its
receipt ends, so a receipt whose stream never says which printer dialect it speaks (Chinese
printers start in double-byte mode, Epson's in code page PC437) is decoded by the evidence that
receipt gives, never by an earlier receipt's: ``FS &``, ``FS .``, ``ESC t 255`` and ``ESC 9`` settle
it; ``ESC t n`` alone does not (a Chinese printer keeps double-byte mode under it), so then text
that is not GB18030 reads by the chosen page (docs/decisions/0084). The command table is in
escpos_commands.py.
"""

from __future__ import annotations

import re
from typing import Literal

from edge_agent.parsing.escpos_codepages import DOUBLE_BYTE, international, page_name
from edge_agent.parsing.escpos_commands import (
    BIT_IMAGE_MAX_DOTS,
    BIT_IMAGE_MODES,
    CUT_WITH_FEED,
    DLE,
    DOWNLOAD_IMAGE_MAX,
    ESC,
    FIXED_BY_PAIR,
    GLYPH_MAX_HEIGHT,
    GLYPH_MAX_WIDTH,
    GRAPHICS_HEADER,
    GS,
    NV_IMAGE_AREA,
    NV_IMAGE_MAX_WIDTH,
    PREFIXES,
    PRINT_GRAPHICS,
    QR_MAX,
    RASTER_MAX_BYTES,
    RASTER_MAX_HEIGHT,
    RASTER_MAX_WIDTH,
    RASTER_MODES,
    RUN,
    STYLING,
    SYMBOL_MAX,
    SYMBOLS_2D,
    barcode,
    dle_length,
    graphics_plausible,
    payload_text,
)
from edge_agent.parsing.escpos_payload import NUL_LIMIT, Payload
from edge_agent.parsing.escpos_receipt import TOO_LARGE, Code, PrintedReceipt, ReceiptBuilder, SegmentKey

__all__ = [
    "IDLE_SPLIT",
    "IMPLAUSIBLE",
    "KEPT_PER_BYTE",
    "LONG_PAUSE",
    "MAX_RECEIPT_BYTES",
    "TOO_LARGE",
    "Code",
    "EscposParser",
    "PrintedReceipt",
    "parse_stream",
]

IDLE_SPLIT = "idle_gap_split"
"""The warning on both pieces of a framed receipt an idle gap ended early (rows of earlier releases)."""
LONG_PAUSE = "receipt_pause_too_long"
"""The warning on both pieces of a framed receipt a pause longer than the caller allows ended early."""
IMPLAUSIBLE = "implausible_command:"
"""Prefix of the warning for a command declaring more than a printer accepts (then its name)."""
MAX_RECEIPT_BYTES = 1024 * 1024
"""The printer bytes a receipt may span (``pos.max_receipt_bytes``). A 2,600-item wholesale receipt,
two lines an item on 80 mm paper, is about 250 KB; past this the receipt ends where it is, and what
follows up to its cut or reset is read in pieces of this size, all warned ``receipt_too_large``."""

KEPT_PER_BYTE = 4
"""How much a receipt may keep (text, plus a segment's and a code's overhead) per printer byte it may span."""

_CONTROL = re.compile(rb"[\x00-\x1f]")
_LF, _CR, _HT, _FF = 0x0A, 0x0D, 0x09, 0x0C

Kanji = Literal["auto", "on", "off"]


class EscposParser:
    """Feed bytes in, get finished receipts out; keeps the printer's state between feeds.

    ``kanji`` is the printer's double-byte mode after power-up or ``ESC @``: ``on`` for Chinese
    models, ``off`` for Epson's, ``auto`` to decide from the stream. ``double_byte`` is the codec
    of double-byte text (GB18030 reads GB2312 and GBK too). A receipt ends when its printer bytes
    reach ``max_receipt_bytes`` (and keeps no more text than that), so memory stays bounded whatever
    the stream; no line count ends one.
    """

    def __init__(
        self,
        *,
        kanji: Kanji = "auto",
        double_byte: str = "gb18030",
        start_offset: int = 0,
        max_line_bytes: int = 65536,
        max_receipt_bytes: int = MAX_RECEIPT_BYTES,
    ) -> None:
        self._kanji_default: bool | None = {"auto": None, "on": True, "off": False}[kanji]
        self._double_default = double_byte
        self._max_line_bytes = max_line_bytes
        self._max_receipt_bytes = max_receipt_bytes
        # What a receipt's text, codes and segments may cost (escpos_receipt.OVERHEAD): a code-page switch
        # of 3 printer bytes costs a segment, so text switching page around every line still fits.
        self._kept = KEPT_PER_BYTE * max_receipt_bytes
        self._offset = start_offset
        self._pending = b""
        self._cr = False  # the last byte was a CR: a LF right after it ends no second line
        self._payload: Payload | None = None  # a command's data still to skip or collect
        self._page_chosen = False  # ESC t n since the last reset: single-byte text uses a chosen page
        self._framing: bool | None = None  # every receipt so far started with ESC @ and ended with a cut
        self._reset_first = False  # the receipt in progress started with ESC @
        self._paused = False  # an idle gap came inside a framed receipt, which stays open across it
        self._receipt = ReceiptBuilder(start_offset, ("U", "cp437", double_byte, None), self._kept)
        self._reset_printer()

    # -- public -------------------------------------------------------------------------------

    @property
    def offset(self) -> int:
        """Stream position just past the last byte fed."""
        return self._offset

    @property
    def framed(self) -> bool:
        """Whether the receipt in progress is framed: it started with ``ESC @``, and every receipt before
        it in the stream (one at least) started with ``ESC @`` and ended with a cut. An idle gap inside
        it (a till printing line by line, waiting for a card payment) more likely splits one receipt
        than ends it: both pieces are warned ``idle_gap_split``. One receipt ended otherwise turns
        this off for the rest of the stream."""
        return bool(self._framing) and self._reset_first

    @property
    def paused(self) -> bool:
        """Whether a framed receipt is held open across an idle gap (see :meth:`expire`)."""
        return self._paused

    def feed(self, data: bytes) -> list[PrintedReceipt]:
        """Consume ``data``; return the receipts it completes, in stream order.

        A receipt ends where its printer bytes reach ``max_receipt_bytes``, however the reads split.
        """
        self._paused = False
        out: list[PrintedReceipt] = []
        view = memoryview(data)
        while True:
            room = self._receipt.start + self._max_receipt_bytes - self._offset
            if len(view) < room:
                out += self._feed(view)
                return out
            out += self._feed(view[:room])
            view = view[room:]
            if self._offset - self._receipt.start >= self._max_receipt_bytes:
                self._receipt.warn(TOO_LARGE)
                self._close("limit", self._offset, out)
                self._receipt.warn(TOO_LARGE)  # the rest of it: no sale is read from a piece

    def _feed(self, data: bytes | memoryview) -> list[PrintedReceipt]:
        out: list[PrintedReceipt] = []
        if self._pending:
            buf = self._pending + data
            base = self._offset - len(self._pending)
            self._pending = b""
        else:
            buf = bytes(data)
            base = self._offset
        self._offset += len(data)
        pos, end = 0, len(buf)
        search = _CONTROL.search
        fixed = FIXED_BY_PAIR.get
        run = RUN.match
        while pos < end:
            payload = self._payload
            if payload is not None:
                pos = payload.consume(buf, pos)
                if payload.rejected:  # the bytes at pos are not this payload's: read them as they are
                    self._payload = None
                    self._receipt.warn(IMPLAUSIBLE + payload.kind)
                elif payload.done:
                    self._payload = None
                    self._finished(payload)
                elif pos < end:  # a block header split by the read
                    self._pending = buf[pos:]
                    break
                continue
            stop = -1  # where the next control byte is, once known
            if not self._cr:
                receipt = self._receipt
                # Bounded by the line limit, so no line in the run can exceed it.
                match = run(buf, pos, min(end, pos + self._max_line_bytes - receipt.line_bytes))
                if match is not None:
                    text = STYLING.sub(b"", match.group())
                    if b"\r" in text:
                        text = text.replace(b"\r\n", b"\n")
                    receipt.run(text, text.count(b"\n"))
                    pos = match.end()
                    if pos == end or buf[pos] >= 0x20:  # the end, or the line limit
                        continue
                    stop = pos  # a run stops at a control byte: no need to search for it
            if stop < 0:
                match = search(buf, pos)
                stop = match.start() if match else end
                if stop > pos:
                    self._cr = False
                    receipt = self._receipt
                    room = self._max_line_bytes - receipt.line_bytes
                    if stop - pos > room:  # a runaway line: end it at the limit, wherever the reads split
                        receipt.text(buf[pos : pos + room])
                        receipt.warn("line_too_long")
                        self._receipt.newline()
                        pos += room
                        continue
                    receipt.text(buf[pos:stop])
                    if stop == end:
                        break
            byte = buf[stop]
            if byte == _LF:
                if self._cr:
                    self._cr = False
                else:
                    self._receipt.newline()
                pos = stop + 1
            elif byte in PREFIXES:
                self._cr = False
                size = fixed((byte << 8) | buf[stop + 1]) if stop + 1 < end else None
                if size and stop + size <= end:  # a command that carries no text
                    pos = stop + size
                    continue
                after = self._command(buf, stop, base, out)
                if after is None:
                    self._pending = buf[stop:]
                    break
                pos = after
            elif byte == _CR:
                self._receipt.newline()
                self._cr = True
                pos = stop + 1
            else:
                self._cr = False
                if byte == _HT:
                    self._text(b"\t")
                elif byte == _FF:
                    self._receipt.newline()
                pos = stop + 1
        return out

    def idle(self) -> list[PrintedReceipt]:
        """The caller saw no bytes for its idle gap: the receipt in progress (if any) ends here.

        So does a command still waiting for its bytes: a POS sends a command in one write, so what
        comes after a quiet spell is a new print job, not the rest of an image that never came.
        Not in a framed receipt (:attr:`framed`): that stream ends its receipts with a cut, so the
        gap is a pause inside one (a slow item lookup, a card terminal waiting for a PIN) and the
        receipt stays open, a command in it too, until its cut or :meth:`expire`.
        """
        out: list[PrintedReceipt] = []
        if self._receipt.empty and not self._pending and self._payload is None:
            return out  # nothing printed since the last receipt ended: nothing to end, framing unchanged
        if self.framed:
            self._paused = True
            return out
        if self._pending or self._payload is not None:
            self._receipt.warn("truncated_command")
        self._pending = b""
        self._payload = None
        self._close("idle", self._offset, out)
        return out

    def expire(self) -> list[PrintedReceipt]:
        """The pause :meth:`idle` held a framed receipt open across lasted too long: end it there.

        Both pieces (this one, and the rest if it ever comes) are warned ``receipt_pause_too_long``;
        the stream stays framed, so the rest ends with its cut.
        """
        out: list[PrintedReceipt] = []
        if not self._paused:
            return out
        self._paused = False
        if self._pending or self._payload is not None:
            self._receipt.warn("truncated_command")
        self._pending = b""
        self._payload = None
        self._receipt.warn(LONG_PAUSE)
        self._close("pause", self._offset, out)
        self._receipt.warn(LONG_PAUSE)
        self._framing = self._reset_first = True
        return out

    def close(self) -> list[PrintedReceipt]:
        """The stream ended: finish the last receipt, noting a command cut off mid-way."""
        out: list[PrintedReceipt] = []
        if self._pending or self._payload is not None:
            self._receipt.warn("truncated_command")
        self._pending = b""
        self._payload = None
        self._close("end", self._offset, out)
        return out

    # -- printer and receipt state -----------------------------------------------------------

    def _reset_printer(self) -> None:
        self._page = "cp437"
        self._page_chosen = False
        self._intl = 0
        self._kanji = self._kanji_default
        self._double = self._double_default
        self._glyphs_on = False
        self._glyphs: set[int] = set()
        self._stored: dict[int, bytes] = {}
        self._cr = False
        self._rekey()

    def _rekey(self) -> None:
        table = international(self._intl)
        if self._glyphs_on and self._glyphs:
            # User-defined glyphs (ESC &, ESC %) are pictures: their text is unknown.
            table = {**table, **dict.fromkeys(self._glyphs, "\ufffd")}
        mode = "U" if self._kanji is None else "D" if self._kanji else "S"
        self._key: SegmentKey = (mode, self._page, self._double, table or None)
        self._receipt.switch(self._key)

    def _text(self, data: bytes) -> None:
        self._cr = False
        self._receipt.text(data)

    def _close(self, reason: str, at: int, out: list[PrintedReceipt]) -> None:
        printed = self._receipt.finish(reason, at)
        if printed is not None:
            out.append(printed)
            if self._framing is not False:
                self._framing = self._reset_first and reason == "cut"
        self._reset_first = reason == "reset"
        self._receipt = ReceiptBuilder(at, self._key, self._kept)
        # A page chosen before a cut is still the printer's page: the next receipt prints with it.
        self._receipt.saw_single = self._page_chosen

    # -- commands ----------------------------------------------------------------------------

    def _command(self, buf: bytes, i: int, base: int, out: list[PrintedReceipt]) -> int | None:
        """Handle the command at ``buf[i]``; return the position after it, None if incomplete."""
        end = len(buf)
        if i + 1 >= end:
            return None
        prefix, cmd = buf[i], buf[i + 1]
        if prefix == DLE:
            return dle_length(buf, i)
        size = FIXED_BY_PAIR.get((prefix << 8) | cmd, 0)
        if size:
            return i + size if i + size <= end else None
        if prefix == ESC:
            return self._esc(buf, i, cmd, base, out)
        if prefix == GS:
            return self._gs(buf, i, cmd, base, out)
        return self._fs(buf, i, cmd)

    def _esc(self, buf: bytes, i: int, cmd: int, base: int, out: list[PrintedReceipt]) -> int | None:
        end = len(buf)
        if cmd == 0x40:  # ESC @ reset: the next receipt starts with it
            self._close("reset", base + i, out)
            self._reset_printer()
            return i + 2
        if cmd in (0x69, 0x6D):  # ESC i / ESC m partial cut
            self._close("cut", base + i + 2, out)
            return i + 2
        if cmd == 0x26:  # ESC & y c1 c2 then per character: x, y*x bytes
            if i + 5 > end:
                return None
            height, first, last = buf[i + 2], buf[i + 3], buf[i + 4]
            if not (1 <= height <= GLYPH_MAX_HEIGHT and 0x20 <= first <= last <= 0x7E):
                return self._implausible(i, "ESC &")
            self._glyphs.update(range(first, last + 1))
            self._rekey()
            self._start(Payload.blocks_of("ESC &", last - first + 1, 1, height, widest=GLYPH_MAX_WIDTH))
            return i + 5
        if cmd == 0x2A:  # ESC * m nL nH bit image
            if i + 5 > end:
                return None
            mode, dots = buf[i + 2], buf[i + 3] + buf[i + 4] * 256
            if mode not in BIT_IMAGE_MODES or dots > BIT_IMAGE_MAX_DOTS:
                return self._implausible(i, "ESC *")
            self._receipt.images += 1
            return self._skip(i + 5, dots * 3 if mode >= 32 else dots, end)
        if cmd == 0x44:  # ESC D tab positions, NUL-terminated
            self._start(Payload("tabs", collect=-1))
            return i + 2
        if cmd == 0x28:  # ESC ( x pL pH ...
            if i + 5 > end:
                return None
            return self._skip(i + 5, buf[i + 3] + buf[i + 4] * 256, end)
        if cmd == 0x5A:  # ESC Z v r k dL dH: QR code on Chinese and some Japanese models
            if i + 7 > end:
                return None
            length = buf[i + 5] + buf[i + 6] * 256
            if length > QR_MAX:
                return self._implausible(i, "ESC Z")
            return self._collect(buf, i + 7, length, "qr", 0)
        if i + 3 > end:
            return None
        n = buf[i + 2]
        if cmd in (0x64, 0x4A, 0x65, 0x4B):  # ESC d / J / e / K: print and feed
            self._receipt.newline()
        elif cmd == 0x74:  # ESC t n code page; 255 is GBK on Chinese printers
            if n == 255:
                self._kanji = True
                self._receipt.saw_double = True
            else:
                self._page = page_name(n)
                self._page_chosen = self._receipt.saw_single = True
            self._rekey()
        elif cmd == 0x52:  # ESC R n international character set
            self._intl = n
            self._rekey()
        elif cmd == 0x39:  # ESC 9 n double-byte encoding (Chinese printers)
            self._double = DOUBLE_BYTE.get(n, self._double_default)
            self._receipt.saw_double = True
            self._rekey()
        elif cmd == 0x25:  # ESC % n user-defined character set on/off
            self._glyphs_on = bool(n & 1)
            self._rekey()
        elif cmd == 0x3F:  # ESC ? n cancel a user-defined character
            self._glyphs.discard(n)
            self._rekey()
        elif cmd in (0x24, 0x5C):  # ESC $ / ESC \ horizontal position: a column gap
            if i + 4 > end:
                return None
            if self._receipt.line_bytes:
                self._text(b" ")
            return i + 4
        else:
            self._receipt.warn(f"unknown_command:ESC {cmd:02x}")
            return i + 2
        return i + 3

    def _gs(self, buf: bytes, i: int, cmd: int, base: int, out: list[PrintedReceipt]) -> int | None:
        end = len(buf)
        if i + 3 > end:
            return None
        n = buf[i + 2]
        if cmd == 0x56:  # GS V m [n] cut
            size = 4 if n in CUT_WITH_FEED else 3
            if i + size > end:
                return None
            self._close("cut", base + i + size, out)
            return i + size
        if cmd == 0x6B:  # GS k m barcode
            if n <= 6:
                nul = buf.find(b"\x00", i + 3, i + 4 + NUL_LIMIT)
                if nul >= 0:
                    self._use("barcode", n, buf[i + 3 : nul])
                    return nul + 1
                self._start(Payload("barcode", n, collect=-1))
                return i + 3
            if i + 4 > end:
                return None
            return self._collect(buf, i + 4, buf[i + 3], "barcode", n)
        if cmd == 0x28:  # GS ( x pL pH ...: k is a 2D symbol, the rest graphics and settings
            if i + 5 > end:
                return None
            length = buf[i + 3] + buf[i + 4] * 256
            if n == 0x6B:
                if length > SYMBOL_MAX:
                    return self._implausible(i, "GS ( k")
                return self._collect(buf, i + 5, length, "symbol", 0)
            if n == 0x4C:
                return self._graphics(buf, i, i + 5, length, "GS ( L")
            return self._skip(i + 5, length, end)
        if cmd == 0x38:  # GS 8 L p1 p2 p3 p4 m fn: large graphics
            if i + 7 > end:
                return None
            return self._graphics(buf, i, i + 7, int.from_bytes(buf[i + 3 : i + 7], "little"), "GS 8 L")
        if cmd in (0x76, 0x51):  # GS v 0 / GS Q 0 m xL xH yL yH raster image
            if i + 8 > end:
                return None
            width, height = buf[i + 4] + buf[i + 5] * 256, buf[i + 6] + buf[i + 7] * 256
            if cmd == 0x76:  # x bytes across, y dots down
                mode = buf[i + 3]
                if n != 0x30 or mode not in RASTER_MODES or width > RASTER_MAX_WIDTH or height > RASTER_MAX_HEIGHT:
                    return self._implausible(i, "GS v 0")
            elif n != 0x30 or width * height > RASTER_MAX_BYTES:
                return self._implausible(i, "GS Q 0")
            self._receipt.images += 1
            return self._skip(i + 8, width * height, end)
        if cmd == 0x2A:  # GS * x y downloaded bit image
            if i + 4 > end:
                return None
            if n * buf[i + 3] > DOWNLOAD_IMAGE_MAX:
                return self._implausible(i, "GS *")
            return self._skip(i + 4, n * buf[i + 3] * 8, end)
        if cmd == 0x2F:  # GS / m print the downloaded bit image
            self._receipt.images += 1
            return i + 3
        self._receipt.warn(f"unknown_command:GS {cmd:02x}")
        return i + 2

    def _fs(self, buf: bytes, i: int, cmd: int) -> int | None:
        end = len(buf)
        if cmd in (0x26, 0x2E):  # FS & / FS . Chinese (Kanji) mode on / off
            self._kanji = cmd == 0x26
            self._receipt.saw_double = True
            self._rekey()
            return i + 2
        if cmd == 0x32:  # FS 2 c1 c2 and a 24 x 24 glyph
            if i + 4 > end:
                return None
            return self._skip(i + 4, 72, end)
        if cmd == 0x71:  # FS q n, then per image xL xH yL yH and its data
            if i + 3 > end:
                return None
            if not buf[i + 2]:
                return self._implausible(i, "FS q")
            self._start(Payload.blocks_of("FS q", buf[i + 2], 4, 0, widest=NV_IMAGE_MAX_WIDTH, area=NV_IMAGE_AREA))
            return i + 3
        if cmd == 0x70:  # FS p n m print an NV bit image
            if i + 4 > end:
                return None
            self._receipt.images += 1
            return i + 4
        if cmd == 0x28:  # FS ( x pL pH ...
            if i + 5 > end:
                return None
            return self._skip(i + 5, buf[i + 3] + buf[i + 4] * 256, end)
        self._receipt.warn(f"unknown_command:FS {cmd:02x}")
        return i + 2

    def _implausible(self, i: int, name: str) -> int:
        """A command at ``buf[i]`` declaring more than a printer accepts: read on after its two bytes."""
        self._receipt.warn(IMPLAUSIBLE + name)
        return i + 2

    def _graphics(self, buf: bytes, i: int, start: int, length: int, name: str) -> int | None:
        """``GS ( L`` / ``GS 8 L`` whose data (m fn ...) starts at ``start``: believed if it fits its function."""
        head = start + min(length, GRAPHICS_HEADER)
        if head > len(buf):
            return None
        if not graphics_plausible(length, buf[start:head]):
            return self._implausible(i, name)
        self._receipt.images += buf[start + 1] in PRINT_GRAPHICS
        return self._skip(start, length, len(buf))

    # -- payloads ------------------------------------------------------------------------------

    def _start(self, payload: Payload) -> None:
        if payload.done:
            self._finished(payload)
        else:
            self._payload = payload

    def _skip(self, start: int, length: int, end: int) -> int:
        """Position after ``length`` payload bytes from ``start``, reading on in later feeds if need be."""
        if start + length <= end:
            return start + length
        self._payload = Payload("skip", skip=length)
        return start

    def _collect(self, buf: bytes, start: int, length: int, kind: str, arg: int) -> int:
        if start + length <= len(buf):  # all here already: no need to collect across feeds
            self._use(kind, arg, buf[start : start + length])
            return start + length
        self._payload = Payload(kind, arg, collect=length)
        return start

    def _finished(self, payload: Payload) -> None:
        if payload.overflow:
            self._receipt.warn("unterminated_command")
        else:
            self._use(payload.kind, payload.arg, bytes(payload.data))

    def _use(self, kind: str, arg: int, data: bytes) -> None:
        if kind == "barcode":
            self._receipt.code(barcode(arg, data))
        elif kind == "qr":
            self._receipt.code(Code("qr", payload_text(data)))
        elif kind == "symbol" and len(data) >= 2:
            symbol, function = data[0], data[1]
            if function == 80:  # store the data (after cn fn m)
                self._stored[symbol] = data[3:]
            elif function == 81 and symbol in self._stored:  # print it
                name = SYMBOLS_2D.get(symbol, f"symbol_{symbol}")
                self._receipt.code(Code(name, payload_text(self._stored[symbol])))


def parse_stream(data: bytes, **options: object) -> list[PrintedReceipt]:
    """Every receipt in a whole capture, the last one ended by the end of the data."""
    parser = EscposParser(**options)  # type: ignore[arg-type]
    return parser.feed(data) + parser.close()
