"""Disk space: a reserve file that is given up when the disk fills, and write errors said plainly.

A store PC's disk fills up for reasons the agent does not control (a runaway log, a full backup).
When it does, the agent must still be able to commit the sales it has already read and record
that it is in trouble. So it keeps a reserve file of ``agent.reserve_bytes`` in its data directory;
the first write refused for lack of space deletes it, which gives the outbox and the capture
journal that much room, and the disk-full state becomes visible through :meth:`SpaceReserve.facts`.
The reserve is re-created once the disk has room for it twice over.

``inspect_disk`` answers the same question from another process (``edge-agent doctor``) by
looking at the reserve file and the free space.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

RESERVE_NAME = "reserve"
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_CHUNK = 1024 * 1024
_FALLOC_FL_KEEP_SIZE = 1


class DiskWriteError(Exception):
    """A write the disk refused; the message names the file and says what to do."""

    def __init__(self, message: str, *, disk_full: bool) -> None:
        super().__init__(message)
        self.disk_full = disk_full


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on the filesystem holding ``path``."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _libc_fallocate() -> Callable[[int, int, int, int], int] | None:
    try:
        fallocate = ctypes.CDLL(None, use_errno=True).fallocate
    except (OSError, AttributeError):  # not Linux with glibc or musl
        return None
    fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    fallocate.restype = ctypes.c_int
    return fallocate


_fallocate = _libc_fallocate()


def preallocate(fd: int, offset: int, length: int) -> bool:
    """Give the file ``length`` bytes of disk blocks past ``offset`` without changing its size.

    Appends then land in blocks the file already owns, so they succeed even when the disk has
    filled up meanwhile (Linux ``fallocate(FALLOC_FL_KEEP_SIZE)``). False if the disk or the
    filesystem would not.
    """
    if _fallocate is None or length <= 0:
        return False
    return bool(_fallocate(fd, _FALLOC_FL_KEEP_SIZE, offset, length) == 0)


def is_disk_full(exc: BaseException) -> bool:
    """True if ``exc`` means the disk (or a quota, or a file-size limit) refused more data."""
    if isinstance(exc, DiskWriteError):
        return exc.disk_full
    if isinstance(exc, sqlite3.Error):
        return getattr(exc, "sqlite_errorname", "") == "SQLITE_FULL" or "disk is full" in str(exc)
    return isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS


def describe_write_error(exc: BaseException, path: Path) -> str:
    """One line a technician can act on: what failed, on which file, and the raw cause."""
    if is_disk_full(exc):
        try:
            room = f", {free_bytes(path.parent) // 1024} KiB free"
        except OSError:
            room = ""
        return f"disk full writing {path}{room}: free space on that disk ({type(exc).__name__}: {exc})"
    if isinstance(exc, sqlite3.Error):
        name = getattr(exc, "sqlite_errorname", type(exc).__name__)
        return f"cannot write {path} ({name}: {exc}); check the disk and `edge-agent doctor`"
    return f"cannot write {path} ({type(exc).__name__}: {exc})"


@dataclass(frozen=True, slots=True)
class DiskFacts:
    """The disk-space state, for heartbeats and `edge-agent doctor`."""

    full: bool  # a write was refused and space has not come back yet
    full_since: float | None  # when this episode began (clock seconds)
    episodes: int  # how many times the disk filled since the agent started
    free_bytes: int | None  # free space on the data directory's disk now
    reserve_bytes: int  # the reserve file's size now (0 while released)
    reserve_wanted: int  # agent.reserve_bytes
    last_error: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class SpaceReserve:
    """The reserve file in the data directory; thread-safe (the source and the writer both report)."""

    def __init__(
        self, path: Path, size: int, *, clock: Callable[[], float] = time.time, free: Callable[[Path], int] = free_bytes
    ) -> None:
        self.path = path
        self.size = size
        self._clock = clock
        self._free = free
        self._lock = threading.Lock()
        self._full_since: float | None = None
        self._episodes = 0
        self._last_error: str | None = None

    @property
    def full(self) -> bool:
        """True from a refused write until space comes back."""
        return self._full_since is not None

    def held(self) -> int:
        """Bytes the reserve file holds now."""
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def ensure(self) -> bool:
        """Create or complete the reserve if the disk has room for it twice over; True if it is whole."""
        with self._lock:
            return self._ensure()

    def _ensure(self) -> bool:
        have = self.held()
        if have >= self.size:
            return True
        missing = self.size - have
        try:
            if self._free(self.path.parent) < missing + self.size:
                return False
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                # Real blocks, not a sparse file: deleting it must give back space that writes can use.
                os.lseek(fd, have, os.SEEK_SET)
                block = b"\0" * _CHUNK
                while missing > 0:
                    missing -= os.write(fd, block[: min(missing, _CHUNK)])
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            if not is_disk_full(exc):
                log.warning("cannot create the disk reserve %s: %s", self.path, exc)
            self.path.unlink(missing_ok=True)
            return False
        return True

    def release(self, error: str | None = None) -> None:
        """A write was refused for lack of space: give up the reserve so committed sales still fit."""
        with self._lock:
            self._last_error = error or self._last_error
            if self._full_since is not None:
                return
            self._full_since = self._clock()
            self._episodes += 1
            held = self.held()
            self.path.unlink(missing_ok=True)
        log.error(
            "disk full in %s: released the %d KiB reserve so sales can still be written; free space on that disk (%s)",
            self.path.parent,
            held // 1024,
            error or "no detail",
        )

    def check(self) -> None:
        """If the disk filled earlier and has room again, re-create the reserve and clear the state."""
        with self._lock:
            if self._full_since is None:
                if self.held() < self.size:
                    self._ensure()  # e.g. removed by hand, or there was no room at start
                return
            if not self._ensure():
                return
            since = self._full_since
            self._full_since = None
            self._last_error = None
        log.info(
            "disk has room again after %.0f s; the %d KiB reserve is back", self._clock() - since, self.size // 1024
        )

    def facts(self) -> DiskFacts:
        """A snapshot of the disk-space state."""
        try:
            free: int | None = self._free(self.path.parent)
        except OSError:
            free = None
        return DiskFacts(
            full=self.full,
            full_since=self._full_since,
            episodes=self._episodes,
            free_bytes=free,
            reserve_bytes=self.held(),
            reserve_wanted=self.size,
            last_error=self._last_error,
        )


def inspect_disk(data_dir: Path, reserve_wanted: int) -> DiskFacts:
    """The disk-space state seen from another process: a missing or short reserve on a disk with
    too little room to re-create it means the agent ran out of space and has not recovered."""
    reserve = SpaceReserve(data_dir / RESERVE_NAME, reserve_wanted)
    held = reserve.held()
    try:
        free: int | None = free_bytes(data_dir)
    except OSError:
        free = None
    full = reserve_wanted > 0 and held < reserve_wanted and (free is None or free < 2 * reserve_wanted - held)
    return DiskFacts(
        full=full,
        full_since=None,
        episodes=0,
        free_bytes=free,
        reserve_bytes=held,
        reserve_wanted=reserve_wanted,
        last_error=None,
    )
