"""The capture journal: raw bytes from a device, written the moment they are read.

A serial line has no acknowledgement: once the agent has read bytes from the port, the POS will
never send them again. So each chunk is appended here, sealed, before it is parsed; the outbox
records how far into the stream it has committed, in the same transaction as the events. After a
crash the agent replays the journal from that offset, and the events lost with the process's
memory are rebuilt from the same bytes: none lost, none twice.

The file is a sequence of records ``length (4 bytes) | stream offset (8 bytes) | sealed chunk``,
and is truncated as soon as everything in it has been committed, so it stays small and holds
bytes only for the moments between a read and the next group commit.
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Iterator
from pathlib import Path

from cryptography.exceptions import InvalidTag

from shared.crypto import Sealer

log = logging.getLogger(__name__)

_HEADER = struct.Struct(">IQ")
_MAX_RECORD = 16 * 1024 * 1024


class CaptureJournal:
    """An append-only journal for one source. Only that source's thread appends to it."""

    def __init__(self, path: Path, sealer: Sealer, source: str, *, fsync: bool = True) -> None:
        self.path = path
        self.source = source
        self._sealer = sealer
        self._fsync = fsync
        # Set by the writer thread after each commit; read here to decide when to truncate.
        self.committed = 0
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        self._end: int | None = None  # stream offset just past the last journaled byte

    def close(self) -> None:
        os.close(self._fd)

    def _aad(self, offset: int) -> bytes:
        return f"journal:{self.source}:{offset}".encode()

    def append(self, offset: int, data: bytes) -> None:
        """Journal ``data``, which starts at stream position ``offset``."""
        if self._end is not None and self.committed >= self._end and os.fstat(self._fd).st_size:
            os.ftruncate(self._fd, 0)  # everything before this chunk is committed already
        blob = self._sealer.seal(data, self._aad(offset))
        os.write(self._fd, _HEADER.pack(len(blob), offset) + blob)
        if self._fsync:
            os.fdatasync(self._fd)
        self._end = offset + len(data)

    def replay(self, committed: int) -> Iterator[tuple[int, bytes]]:
        """Yield the journaled bytes past ``committed`` as (offset, data), in stream order.

        A record torn by a power cut, or one that fails to open, ends the replay; the file is cut
        back to the last good record so new appends follow on cleanly.
        """
        self.committed = committed
        with open(self.path, "rb") as fh:
            content = fh.read()
        pos = 0
        good = 0
        while pos + _HEADER.size <= len(content):
            length, offset = _HEADER.unpack_from(content, pos)
            start = pos + _HEADER.size
            if length > _MAX_RECORD or start + length > len(content):
                break
            try:
                data = self._sealer.open(content[start : start + length], self._aad(offset))
            except InvalidTag:
                break
            pos = good = start + length
            self._end = offset + len(data)
            if offset + len(data) <= committed:
                continue
            skip = max(0, committed - offset)
            yield offset + skip, data[skip:]
        if good < len(content):
            log.warning("capture journal %s: dropping %d unreadable bytes at its end", self.path, len(content) - good)
            os.ftruncate(self._fd, good)

    @property
    def end(self) -> int | None:
        """Stream position just past the last journaled byte, if anything was journaled."""
        return self._end
