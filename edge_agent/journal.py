"""The capture journal: raw bytes from a device, written the moment they are read.

A serial line has no acknowledgement: once the agent has read bytes from the port, the POS will
never send them again. So each chunk is appended here, sealed, before it is parsed; the outbox
records how far into the stream it has committed, in the same transaction as the events. After a
crash the agent replays the journal from that offset, and the events lost with the process's
memory are rebuilt from the same bytes: none lost, none twice.

The file is a sequence of records ``length (4 bytes) | stream offset (8 bytes) | sealed chunk``.
It is truncated (before the next read) once everything in it has been committed, and compacted (the records still
needed copied to a fresh file) once it passes ``compact_bytes``, so it holds only the bytes between
a read and the next group commit.

Every write is checked: a short write or a refused one (disk full) cuts the file back to where it
was and raises :class:`DiskWriteError`, so a half-written record can never sit in front of the
next one. A record torn by a kill or a power cut is cut off, and counted, when the file is opened.

The file keeps ``preallocate`` bytes of disk blocks past its end (``fallocate`` with KEEP_SIZE),
so when the disk fills up the journal goes on accepting input for a while: bytes read from the
port stay durable, and a kill then loses nothing, even though the outbox cannot commit.
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag

from edge_agent.diskspace import DiskWriteError, describe_write_error, is_disk_full, preallocate
from shared.crypto import NONCE_BYTES, Sealer

log = logging.getLogger(__name__)

_HEADER = struct.Struct(">IQ")
_MAX_RECORD = 16 * 1024 * 1024
_SEAL_OVERHEAD = NONCE_BYTES + 16  # nonce and GCM tag around each chunk
COMPACT_BYTES = 1024 * 1024
PREALLOCATE_BYTES = 1024 * 1024


class JournalError(Exception):
    """A journal whose records do not open under this key (not a torn tail): refuse, do not cut."""


@dataclass(frozen=True, slots=True)
class JournalFacts:
    """What the journal file holds, read without the key (for `edge-agent doctor`)."""

    size_bytes: int  # the file's size
    records: int
    uncommitted_bytes: int  # device bytes past the outbox's committed offset: replayed after a crash
    torn_bytes: int  # bytes at the end that do not form a whole record


def _scan(content: bytes) -> Iterator[tuple[int, int, int, int]]:
    """(record start, record end, stream offset, sealed length) for each structurally whole record."""
    pos = 0
    while pos + _HEADER.size <= len(content):
        length, offset = _HEADER.unpack_from(content, pos)
        end = pos + _HEADER.size + length
        if length > _MAX_RECORD or length < _SEAL_OVERHEAD or end > len(content):
            return
        yield pos, end, offset, length
        pos = end


def inspect_journal(path: Path, committed: int) -> JournalFacts:
    """Describe a journal file given the outbox's committed offset for its source."""
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        return JournalFacts(0, 0, 0, 0)
    records = uncommitted = whole = 0
    for _start, end, offset, length in _scan(content):
        records += 1
        whole = end
        data_end = offset + length - _SEAL_OVERHEAD
        uncommitted += max(0, data_end - max(offset, committed))
    return JournalFacts(len(content), records, uncommitted, len(content) - whole)


class CaptureJournal:
    """An append-only journal for one source. Only that source's thread appends to it."""

    def __init__(
        self,
        path: Path,
        sealer: Sealer,
        source: str,
        *,
        fsync: bool = True,
        compact_bytes: int = COMPACT_BYTES,
        preallocate: int = PREALLOCATE_BYTES,
        write: Callable[[int, memoryview], int] = os.write,
    ) -> None:
        self.path = path
        self.source = source
        self._sealer = sealer
        self._fsync = fsync
        self._compact_bytes = compact_bytes
        self._preallocate = preallocate
        self._write = write
        # Set by the writer thread after each commit; read here to decide when to truncate.
        self.committed = 0
        self.torn_records = 0  # torn or unreadable records cut off the end when the file was opened
        self.torn_bytes = 0
        self.write_errors = 0
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.with_name(path.name + ".compact").unlink(missing_ok=True)  # left by a crash mid-compaction
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        self._size = 0
        self._compact_at = compact_bytes
        self._end: int | None = None  # stream offset just past the last journaled byte
        self._recover()
        self._reserve_room()

    def close(self) -> None:
        os.close(self._fd)

    def _aad(self, offset: int) -> bytes:
        return f"journal:{self.source}:{offset}".encode()

    def _records(self) -> Iterator[tuple[int, int, int, bytes | None]]:
        """(start, end, offset, data or None if it does not open) for each whole record."""
        with open(self.path, "rb") as fh:
            content = fh.read()
        for start, end, offset, _length in _scan(content):
            try:
                data: bytes | None = self._sealer.open(content[start + _HEADER.size : end], self._aad(offset))
            except InvalidTag:
                data = None
            yield start, end, offset, data

    def _recover(self) -> None:
        """Cut off a torn or unreadable tail so the next record follows a whole one."""
        good = 0
        bad: list[int] = []
        for start, end, offset, data in self._records():
            if data is None:
                bad.append(start)
                continue
            if bad:
                break
            good = end
            self._end = offset + len(data)
        else:
            bad = bad[1:]  # one unreadable record at the very end is a torn write, not a wrong key
        if bad:
            self.close()
            raise JournalError(
                f"{self.path}: records from byte {bad[0]} on do not open with this agent's outbox key; "
                "if the key was replaced, restore the old one; otherwise move the file aside to start without it"
            )
        size = os.fstat(self._fd).st_size
        if good < size:
            self.torn_records += 1
            self.torn_bytes += size - good
            log.warning(
                "capture journal %s: cut off %d bytes of a torn record at its end (a kill or power cut mid-write)",
                self.path,
                size - good,
            )
            os.ftruncate(self._fd, good)
        self._size = good

    def _reserve_room(self) -> None:
        """Own disk blocks past the end of the file, for appends while the disk is full."""
        if self._preallocate:
            preallocate(self._fd, self._size, self._preallocate)

    def prepare(self) -> None:
        """Truncate (or compact) what is committed; the source calls this before it reads the port,
        so that between a read and its :meth:`append` there is no other system call."""
        if self._size and self._end is not None and self.committed >= self._end:
            os.ftruncate(self._fd, 0)  # everything journaled is committed already
            self._size = 0
            self._compact_at = self._compact_bytes
            self._reserve_room()  # truncating gave the preallocated blocks back
        elif self._size > self._compact_at and self.committed > 0:
            self._compact()
            # A journal that stays long (the outbox cannot commit) is compacted again only once it doubles.
            self._compact_at = max(self._compact_bytes, 2 * self._size)

    def append(self, offset: int, data: bytes) -> None:
        """Journal ``data``, which starts at stream position ``offset``; raise DiskWriteError if refused."""
        record = _HEADER.pack(len(data) + _SEAL_OVERHEAD, offset) + self._sealer.seal(data, self._aad(offset))
        self._write_all(record)
        self._end = offset + len(data)

    def _write_all(self, record: bytes) -> None:
        before = self._size
        view = memoryview(record)
        try:
            while view:
                written = self._write(self._fd, view)
                if written <= 0:
                    raise OSError(28, "No space left on device (the write made no progress)")
                view = view[written:]
            if self._fsync:
                os.fdatasync(self._fd)
        except OSError as exc:
            self.write_errors += 1
            # Never leave half a record: the next one would follow garbage and replay would stop there.
            try:
                os.ftruncate(self._fd, before)
            except OSError as cut:
                log.error("capture journal %s: cannot cut back a failed write: %s", self.path, cut)
            raise DiskWriteError(describe_write_error(exc, self.path), disk_full=is_disk_full(exc)) from exc
        self._size = before + len(record)

    def _compact(self) -> None:
        """Copy the records still needed to a fresh file and swap it in (a crash leaves one or the other)."""
        keep = [
            (start, end)
            for start, end, offset, data in self._records()
            if data is not None and offset + len(data) > self.committed
        ]
        tmp = self.path.with_name(self.path.name + ".compact")
        with open(self.path, "rb") as fh:
            content = fh.read()
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                for start, end in keep:
                    os.write(fd, content[start:end])
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
        except OSError as exc:  # no room for the copy: keep appending to the long file
            tmp.unlink(missing_ok=True)
            log.warning("capture journal %s: cannot compact (%s)", self.path, exc)
            return
        os.close(self._fd)
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND, 0o600)
        self._size = os.fstat(self._fd).st_size
        self._reserve_room()

    def replay(self, committed: int) -> Iterator[tuple[int, bytes]]:
        """Yield the journaled bytes past ``committed`` as (offset, data), in stream order.

        A record that fails to open ends the replay; the file is cut back to the last good record
        so new appends follow on cleanly.
        """
        self.committed = committed
        good = 0
        for _start, end, offset, data in self._records():
            if data is None:
                break
            good = end
            self._end = offset + len(data)
            if offset + len(data) <= committed:
                continue
            skip = max(0, committed - offset)
            yield offset + skip, data[skip:]
        if good < self._size:
            log.warning("capture journal %s: dropping %d unreadable bytes at its end", self.path, self._size - good)
            os.ftruncate(self._fd, good)
            self._size = good

    @property
    def end(self) -> int | None:
        """Stream position just past the last journaled byte, if anything was journaled."""
        return self._end

    @property
    def size(self) -> int:
        """The file's size in bytes."""
        return self._size

    def uncommitted_bytes(self) -> int:
        """Device bytes in the journal past the committed offset (what a crash now would replay)."""
        return inspect_journal(self.path, self.committed).uncommitted_bytes
