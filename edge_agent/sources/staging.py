"""Bytes read from a device land in a RAM-backed file, by the read itself, before the journal has them.

A tty cannot be peeked: ``read()`` takes bytes out of the kernel. If they land in the process's
own memory, a SIGKILL before they are written somewhere else loses them, and that moment cannot
be made short: returning from the ``read`` system call is where the kernel preempts a thread that
woke the writer on the other end, and on a loaded machine the thread may then wait for a CPU for
tens of milliseconds (the kill-storm test lost whole 4 KiB reads that way). So the read goes
straight into this file: the file is mapped into memory and the port is read into the mapping
(port_reader.py), so when ``read()`` returns, the bytes are already in the file, and no moment is
left in which they exist only in the process.

The file lives in memory (``$RUNTIME_DIRECTORY``, which systemd keeps across the service's
restarts, else ``/dev/shm``), mode 0600: it survives the process, not a power cut, and never
reaches the disk. It is emptied before each read once the journal holds everything in it; after a
kill, the next start journals what the file holds beyond the journal's end.

The file starts with a format mark; records follow each other after it; the rest is zeros::

    stream offset (8) | claimed length (4) | read length (4) | tag (8) | claimed bytes

A record is claimed before the read with its read length ``PENDING`` and its first bytes set to
the tag (random), and settled after it. A record a kill left pending was read in full if the
read overwrote the tag, and not read at all if the tag is still there (the read had not happened).
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import logging
import mmap
import os
import re
import struct
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger(__name__)

_MARK = b"EAstage2"  # a file without it (another format, or not ours) is set aside, never parsed
_HEADER = struct.Struct(">QII8s")
_TAG = 8
PENDING = 0xFFFFFFFF
MAX_READ = 65536  # the most one read asks for (port_reader.py)


MEMORY_FILESYSTEMS = frozenset({"tmpfs", "ramfs"})
_IN_MEMORY = "a directory in memory, such as /run/edge-agent (systemd's RuntimeDirectory=) or /dev/shm"


def staging_dir(configured: str = "", environ: Mapping[str, str] | None = None) -> Path:
    """The directory of the staging files: ``capture.staging_dir``, else $RUNTIME_DIRECTORY, else /dev/shm."""
    environ = os.environ if environ is None else environ
    # /dev/shm is shared: the file is opened with O_NOFOLLOW and must be ours (see ReadStaging).
    return Path(configured or environ.get("RUNTIME_DIRECTORY", "").split(":")[0] or "/dev/shm")  # noqa: S108


def staging_path(data_dir: Path, source: str, configured: str = "", environ: Mapping[str, str] | None = None) -> Path:
    """Where a source's staging file goes, in :func:`staging_dir`.

    The name carries a hash of the data directory, so agents with different data directories
    sharing /dev/shm (tests, a second till) never meet.
    """
    tag = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:12]
    return staging_dir(configured, environ) / f"edge-agent-{tag}-{source}.staging"


def staging_dir_problem(configured: str = "", environ: Mapping[str, str] | None = None) -> str | None:
    """Why the staging directory cannot take staging files (a line starting with the setting's name), or None.

    Only looked at: the agent creates no staging directory, so a typo cannot put clear bytes in a new
    folder on a disk, and a directory it could not use would leave every read unprotected.
    """
    directory = staging_dir(configured, environ)
    name = f"capture.staging_dir {directory}" + ("" if configured else " (its default)")
    if not directory.exists():
        return f"{name} does not exist (the agent creates none): give {_IN_MEMORY}"
    if not directory.is_dir():
        return f"{name} is not a directory: give {_IN_MEMORY}"
    if not os.access(directory, os.W_OK | os.X_OK):
        return (
            f"{name} cannot be written by this user (uid {os.geteuid()}): make it the agent user's (mode 0700),"
            f" or give another {_IN_MEMORY.removeprefix('a ')}"
        )
    return None


def filesystem_type(directory: Path, mountinfo: Path = Path("/proc/self/mountinfo")) -> str | None:
    """The type of the filesystem ``directory`` is on (``tmpfs``, ``ext4``), from the kernel's mount table;
    None if that cannot be read."""
    try:
        table = mountinfo.read_text()
    except OSError:
        return None
    target = os.path.realpath(directory)
    found, kind = "", None
    for line in table.splitlines():  # "36 35 98:0 / /mnt/x rw,noatime master:1 - ext3 /dev/root rw,errors=continue"
        mount, _, rest = line.partition(" - ")
        fields = mount.split()
        if len(fields) < 5 or not rest:
            continue
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])  # "\040" is a space
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(found):  # the deepest mount; of two on one point, the later one
            found, kind = point, rest.split()[0]
    return kind


class ReadStaging:
    """The staging file of one source; only that source's thread uses it."""

    def __init__(self, path: Path | None, limit_bytes: int = 16 * 1024 * 1024) -> None:
        self.path = path
        self.limit_bytes = limit_bytes  # while the disk stays full the file grows; past this, stop staging
        self._capacity = len(_MARK) + limit_bytes + _HEADER.size + MAX_READ  # a read below the limit fits
        self._fd: int | None = None
        self._map: mmap.mmap | None = None
        self._anchor: ctypes.c_char | None = None  # pins the mapping while its address is in use
        self._base = 0
        self._size = len(_MARK)  # where the next record goes
        self._claimed: tuple[int, int] | None = None  # (record start, claimed length) while a read is out
        if path is None:
            return
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            st = os.fstat(fd)
            if st.st_uid != os.geteuid():
                os.close(fd)
                raise OSError(f"{path} belongs to uid {st.st_uid}, not to this agent")
            os.fchmod(fd, 0o600)
            if os.pread(fd, len(_MARK), 0) not in (b"", _MARK, bytes(len(_MARK))):
                os.close(fd)
                fd = self._set_aside(path)
            if os.fstat(fd).st_size < self._capacity:
                os.ftruncate(fd, self._capacity)  # sparse: memory is used only where records are written
            self._fd = fd
            self._map = mmap.mmap(fd, self._capacity, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            self._anchor = ctypes.c_char.from_buffer(self._map)
            self._base = ctypes.addressof(self._anchor)
            self._map[: len(_MARK)] = _MARK
        except (OSError, ValueError) as exc:  # no RAM-backed directory: the journal alone protects what is read
            log.warning("cannot use %s to stage bytes read (%s); a kill may lose the bytes of one read", path, exc)
            self._release()
            return
        self._size += sum(_HEADER.size + claimed for _start, claimed, _data in self._records())
        self._forget_claim(self._size)  # a claim a kill left unread, or half made

    @staticmethod
    def _set_aside(path: Path) -> int:
        """Move a file in another format out of the way (kept for a technician) and start afresh."""
        aside = path.with_name(path.name + ".unknown")
        os.replace(path, aside)
        log.warning("%s is not a staging file of this agent version; moved to %s", path, aside)
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)

    @property
    def enabled(self) -> bool:
        return self._map is not None

    def claim(self, offset: int, length: int) -> int | None:
        """Reserve room for a read of ``length`` bytes at stream position ``offset``; the address to
        read into, or None (staging off, or full while the disk is): then read into memory of your own."""
        if self._map is None or self._size > self.limit_bytes or length > MAX_READ:
            return None
        start = self._size
        at = start + _HEADER.size
        tag = os.urandom(_TAG)
        # Zeros touch every page now, so the kernel's copy into them cannot fault (and, with a kill
        # pending, fail after taking the bytes); then the tag, and only then a header for it.
        self._map[at : at + length] = bytes(length)
        self._map[at : at + min(length, _TAG)] = tag[:length]
        self._map[start:at] = _HEADER.pack(offset, length, PENDING, tag)
        self._claimed = (start, length)
        return self._base + at

    def settle(self, got: int) -> bytes:
        """After the read into the claimed room: record how much it took (0 or less: nothing) and
        return those bytes."""
        assert self._map is not None and self._claimed is not None
        start, length = self._claimed
        self._claimed = None
        at = start + _HEADER.size
        if got <= 0:
            self._forget_claim(start)  # nothing was taken from the port: no record
            return b""
        got = min(got, length)
        self._map[start + 12 : start + 16] = got.to_bytes(4, "big")
        self._size = at + length
        return self._map[at : at + got]

    def _forget_claim(self, start: int) -> None:
        """Zero the header and tag of a claim that took nothing, so no stale bytes follow the records."""
        assert self._map is not None
        end = min(start + _HEADER.size + _TAG, self._capacity)
        self._map[start:end] = bytes(end - start)

    def stage(self, offset: int, data: bytes) -> None:
        """Keep ``data`` (stream position ``offset``), read by other means than :meth:`claim`."""
        address = self.claim(offset, len(data))
        if address is None:
            return
        ctypes.memmove(address, data, len(data))
        self.settle(len(data))

    def clear(self) -> None:
        """Forget what is staged (the journal has it)."""
        first = len(_MARK)
        if self._map is not None and self._size > first:
            self._map[first : first + _HEADER.size] = bytes(_HEADER.size)  # first: a kill now leaves no records
            self._map[first + _HEADER.size : self._size] = bytes(self._size - first - _HEADER.size)
            self._size = first

    def _records(self) -> list[tuple[int, int, bytes]]:
        """(record start, claimed length, bytes read) for each record, in stream order."""
        assert self._map is not None
        out, pos = [], len(_MARK)
        while pos + _HEADER.size <= self._capacity:
            _offset, claimed, got, tag = _HEADER.unpack_from(self._map, pos)
            if not claimed or claimed > MAX_READ or pos + _HEADER.size + claimed > self._capacity:
                break
            at = pos + _HEADER.size
            if got == PENDING:  # the kill came while the read was out: did it take the bytes?
                if self._map[at : at + min(claimed, _TAG)] == tag[:claimed]:
                    break
                got = claimed
            out.append((pos, claimed, self._map[at : at + min(got, claimed)]))
            pos = at + claimed
        return out

    def leftovers(self) -> list[tuple[int, bytes]]:
        """What a killed predecessor staged, as (offset, data) in stream order."""
        if self._map is None or self._size == len(_MARK):
            return []
        return [(_HEADER.unpack_from(self._map, start)[0], data) for start, _claimed, data in self._records()]

    def _release(self) -> None:
        self._anchor = None
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def close(self, *, remove: bool) -> None:
        """Close; ``remove`` deletes the file (a clean stop with everything journaled)."""
        if self._fd is None:
            return
        self._release()
        if remove and self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
