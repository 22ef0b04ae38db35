"""The bytes an ESC/POS command declares after its header: skipped, collected, or read block by block.

Raster images (``GS v 0``), graphics (``GS ( L``, ``GS 8 L``) and bit images (``ESC *``) are
skipped by length; barcode and 2D-symbol data (``GS k``, ``GS ( k``) is collected; glyph and NV
image definitions (``ESC &``, ``FS q``) are a count of blocks, each a small header giving the size
of its data. A payload may span any number of reads; it finishes at the same byte however the
stream was split. A block header that asks for more than a printer accepts rejects the payload
there, before the header is consumed: those bytes are read again as the stream they really are.
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
        self.widest = 0
        self.area = 0
        self.rejected = False  # a block header asked for more than a printer accepts

    @classmethod
    def blocks_of(cls, command: str, count: int, header: int, unit: int, *, widest: int, area: int = 0) -> Payload:
        """``count`` blocks, each a ``header``-byte size then data: a 1-byte header is a width of at
        most ``widest`` times ``unit`` bytes; a 4-byte one is ``xL xH yL yH`` (x at most ``widest``)
        of x * y * 8 bytes, all blocks with their headers at most ``area`` bytes."""
        payload = cls(command)
        payload.blocks, payload.header, payload.unit = count, header, unit
        payload.widest, payload.area = widest, area
        return payload

    @property
    def done(self) -> bool:
        """Nothing more to read."""
        return not (self.skip or self.blocks or self.left)

    def consume(self, buf: bytes, pos: int) -> int:
        """Take this payload's bytes from ``buf[pos:]``; return the position after them.

        It stops short of the end of ``buf`` only at a block header that is not all there yet
        (the caller keeps those bytes for the next read) or that is :attr:`rejected`.
        """
        end = len(buf)
        while pos < end and not self.done:
            if self.skip:
                take = min(self.skip, end - pos)
                self.skip -= take
                pos += take
            elif self.blocks:
                if end - pos < self.header:
                    return pos
                size = self._block_size(buf, pos)
                if size is None:
                    self.rejected = True
                    return pos
                self.blocks -= 1
                self.skip = size
                pos += self.header
            elif self.left is not None and self.left < 0:
                pos = self._up_to_nul(buf, pos)
            else:
                assert self.left is not None
                take = min(self.left, end - pos)
                self.data += buf[pos : pos + take]
                self.left -= take
                pos += take
        return pos

    def _block_size(self, buf: bytes, pos: int) -> int | None:
        if self.header == 1:
            width = buf[pos]
            return self.unit * width if width <= self.widest else None
        width, height = buf[pos] + buf[pos + 1] * 256, buf[pos + 2] + buf[pos + 3] * 256
        size = width * height * 8
        self.area -= self.header + size
        return size if 1 <= width <= self.widest and height and self.area >= 0 else None

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
