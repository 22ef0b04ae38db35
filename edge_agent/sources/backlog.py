"""Chunks read from a device that the capture journal has not accepted yet (the disk is full).

A source cannot stop the device from sending, and bytes it has read exist nowhere else. So when a
journal write is refused, the chunk is held here, in stream order, and offered to the journal
again on the next read or idle tick; chunks whose lines the outbox has committed meanwhile are
no longer needed and are let go. Held bytes are bounded (``capture.max_unjournaled_bytes``):
past the bound the source drops what it reads next and counts it, rather than grow without limit.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable

from edge_agent.diskspace import DiskWriteError
from edge_agent.journal import CaptureJournal

log = logging.getLogger(__name__)


class ChunkBacklog:
    """The journal's front door for one source thread: write now, or hold and retry in order."""

    def __init__(
        self,
        journal: CaptureJournal,
        limit_bytes: int,
        *,
        on_disk_full: Callable[[str], None] | None = None,
        retry_interval: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.journal = journal
        self.limit_bytes = limit_bytes
        self._on_disk_full = on_disk_full
        self._retry_interval = retry_interval
        self._clock = clock
        self._held: deque[tuple[int, bytes]] = deque()
        self.held_bytes = 0
        self.error: str | None = None  # why the journal refuses writes, while it does
        self._next_try = 0.0

    def __len__(self) -> int:
        return len(self._held)

    def prepare(self) -> None:
        """Before a read: let the journal truncate what is committed (only when nothing is held)."""
        if not self._held:
            self.journal.prepare()

    def write(self, offset: int, data: bytes) -> bool:
        """Journal ``data`` or hold it; False if it could do neither (held bytes at their bound)."""
        if self._held:
            self.flush(force=True)
        if not self._held:
            try:
                self.journal.append(offset, data)
                return True
            except DiskWriteError as exc:
                self._refused(exc)
        if self.held_bytes + len(data) > self.limit_bytes:
            return False
        self._held.append((offset, data))
        self.held_bytes += len(data)
        return True

    def flush(self, *, force: bool = False) -> bool:
        """Offer the held chunks to the journal, oldest first; True once nothing is held."""
        if not self._held:
            return True
        if not force and self._clock() < self._next_try:
            return False
        committed = self.journal.committed
        while self._held:
            offset, data = self._held[0]
            if offset + len(data) > committed:  # lines in it are not committed yet: the journal needs it
                try:
                    self.journal.append(offset, data)
                except DiskWriteError as exc:
                    self._refused(exc)
                    return False
            self._held.popleft()
            self.held_bytes -= len(data)
        log.info("capture journal %s accepts writes again", self.journal.path)
        self.error = None
        return True

    def _refused(self, exc: DiskWriteError) -> None:
        self._next_try = self._clock() + self._retry_interval
        message = str(exc)
        if message != self.error:
            log.error("%s; holding what is read in memory (up to %d KiB)", message, self.limit_bytes // 1024)
        self.error = message
        if exc.disk_full and self._on_disk_full is not None:
            self._on_disk_full(message)
