"""The bytes an ESC/POS command declares after its header: skipped, collected, or read block by block.

Raster images (``GS v 0``), graphics (``GS ( L``, ``GS 8 L``) and bit images (``ESC *``) are
skipped by length; barcode and 2D-symbol data (``GS k``, ``GS ( k``) is collected; glyph and NV
image definitions (``ESC &``, ``FS q``) are a count of blocks, each a small header giving the size
of its data. A payload may span any number of reads; it finishes at the same byte however the
stream was split.
"""

from __future__ import annotations

NUL_LIMIT = 255  # the longest NUL-terminated payload (GS k function A, ESC D)


class Payload:
    """One command's payload in progress; ``consume`` takes what it needs from a buffer."""

    def __init__(self, kind: str, arg: int = 0, *, skip: int = 0, collect: int | None = None) -> None:
        self.kind = kind
        self.arg = arg
        self.skip = skip
        self.left = collect  # bytes still to collect; -1 up to a NUL; None collects nothing
        self.data = bytearray()
        self.overflow = False
        self.blocks = 0
        self.header = 0
        self.unit = 0
        self._head = bytearray()

    @classmethod
    def blocks_of(cls, count: int, header: int, unit: int) -> Payload:
        """``count`` blocks, each a ``header``-byte size then data (1-byte header: unit x size)."""
        payload = cls("blocks")
        payload.blocks, payload.header, payload.unit = count, header, unit
        return payload

    @property
    def done(self) -> bool:
        """Nothing more to read."""
        return not (self.skip or self.blocks or self.left)

    def consume(self, buf: bytes, pos: int) -> int:
        """Take this payload's bytes from ``buf[pos:]``; return the position after them."""
        end = len(buf)
        while pos < end and not self.done:
            if self.skip:
                take = min(self.skip, end - pos)
                self.skip -= take
                pos += take
            elif self.blocks:
                head = buf[pos : pos + self.header - len(self._head)]
                self._head += head
                pos += len(head)
                if len(self._head) == self.header:
                    self.blocks -= 1
                    self.skip = self._block_size(self._head)
                    self._head.clear()
            elif self.left is not None and self.left < 0:
                pos = self._up_to_nul(buf, pos)
            else:
                assert self.left is not None
                take = min(self.left, end - pos)
                self.data += buf[pos : pos + take]
                self.left -= take
                pos += take
        return pos

    def _block_size(self, head: bytearray) -> int:
        if self.header == 1:
            return self.unit * head[0]
        return (head[0] + head[1] * 256) * (head[2] + head[3] * 256) * 8

    def _up_to_nul(self, buf: bytes, pos: int) -> int:
        room = NUL_LIMIT - len(self.data)
        window = min(len(buf), pos + room + 1)
        nul = buf.find(b"\x00", pos, window)
        if nul >= 0:
            self.data += buf[pos:nul]
            self.left = 0
            return nul + 1
        if window - pos > room:  # no terminator where one must be: the rest is not this payload
            self.data += buf[pos : pos + room]
            self.overflow = True
            self.left = 0
            return pos + room
        self.data += buf[pos:window]
        return window
