"""Bytes just read from a device, kept in a RAM-backed file until the capture journal has them.

Between taking bytes from a tty (which cannot be peeked) and the journal's write there is sealing
work, and the sealing library releases the interpreter lock; under load another thread can then
keep the source waiting for milliseconds with the bytes only in its memory, and a SIGKILL in that
moment loses them. So the source first appends each chunk, as read, to this file, with one
``write()`` and nothing before it (port_reader.py reads without releasing the lock). The file lives
in memory (``$RUNTIME_DIRECTORY``, which systemd keeps across the service's restarts, else
``/dev/shm``), mode 0600: it survives the process, not a power cut, and never reaches the disk.
It is emptied before each read once the journal holds everything in it; after a kill, the next
start journals what the file holds beyond the journal's end.

Records are ``stream offset (8 bytes) | length (4 bytes) | raw bytes``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import struct
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger(__name__)

_HEADER = struct.Struct(">QI")


def staging_path(data_dir: Path, source: str, configured: str = "", environ: Mapping[str, str] | None = None) -> Path:
    """Where a source's staging file goes: the configured directory, else $RUNTIME_DIRECTORY, else /dev/shm.

    The name carries a hash of the data directory, so agents with different data directories
    sharing /dev/shm (tests, a second till) never meet.
    """
    environ = os.environ if environ is None else environ
    # /dev/shm is shared: the file is opened with O_NOFOLLOW and must be ours (see ReadStaging).
    directory = Path(configured or environ.get("RUNTIME_DIRECTORY", "").split(":")[0] or "/dev/shm")  # noqa: S108
    tag = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:12]
    return directory / f"edge-agent-{tag}-{source}.staging"


class ReadStaging:
    """The staging file of one source; only that source's thread uses it."""

    def __init__(self, path: Path | None, limit_bytes: int = 16 * 1024 * 1024) -> None:
        self.path = path
        self.limit_bytes = limit_bytes  # while the disk stays full the file grows; past this, stop staging
        self._fd: int | None = None
        self._size = 0
        if path is None:
            return
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
            st = os.fstat(self._fd)
            if st.st_uid != os.geteuid():
                os.close(self._fd)
                raise OSError(f"{path} belongs to uid {st.st_uid}, not to this agent")
            os.fchmod(self._fd, 0o600)
            self._size = st.st_size
        except OSError as exc:  # no RAM-backed directory: the journal alone protects what is read
            log.warning("cannot use %s to stage bytes read (%s); a kill may lose the bytes of one read", path, exc)
            self._fd = None

    def stage(self, offset: int, data: bytes) -> None:
        """Keep ``data`` (stream position ``offset``) here: the first thing done after a read."""
        if self._fd is None or self._size > self.limit_bytes:
            return
        try:
            self._size += os.write(self._fd, _HEADER.pack(offset, len(data)) + data)
        except OSError:  # memory is full: carry on without the extra protection
            self._size = os.fstat(self._fd).st_size

    def clear(self) -> None:
        """Forget what is staged (the journal has it)."""
        if self._fd is not None and self._size:
            os.ftruncate(self._fd, 0)
            self._size = 0

    def leftovers(self) -> list[tuple[int, bytes]]:
        """What a killed predecessor staged, as (offset, data) in stream order."""
        if self._fd is None or not self._size:
            return []
        content = os.pread(self._fd, self._size, 0)
        out, pos = [], 0
        while pos + _HEADER.size <= len(content):
            offset, length = _HEADER.unpack_from(content, pos)
            data = content[pos + _HEADER.size : pos + _HEADER.size + length]
            if not data:
                break
            out.append((offset, data))  # a record cut short by the kill still holds real bytes
            pos += _HEADER.size + length
        return out

    def close(self, *, remove: bool) -> None:
        """Close; ``remove`` deletes the file (a clean stop with everything journaled)."""
        if self._fd is None:
            return
        os.close(self._fd)
        self._fd = None
        if remove and self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
