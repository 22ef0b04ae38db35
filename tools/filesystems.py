"""Small real filesystems for disk-full tests: a tmpfs of a few MiB, filled and freed on demand.

Mounting needs root (or CAP_SYS_ADMIN); :func:`mount_problem` says why it cannot be done here so
a test can skip on a developer machine and fail under CI.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

FILLER = ".filler"


class SmallFilesystem:
    """A tmpfs mounted at ``path``; :meth:`fill` takes every free byte, :meth:`free` gives them back."""

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.size = size
        self._fillers = 0

    def free_bytes(self) -> int:
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def fill(self) -> int:
        """Write filler files until the filesystem refuses; return how many bytes they took."""
        taken = 0
        self._fillers += 1
        block = b"\0" * 65536
        with open(self.path / f"{FILLER}{self._fillers}", "wb", buffering=0) as fh:
            for size in (65536, 4096, 512, 1):
                while True:
                    try:
                        written = fh.write(block[:size])
                    except OSError as exc:
                        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                            raise
                        break
                    taken += written or 0
                    if not written:
                        break
        return taken

    def free(self) -> None:
        """Delete every filler file."""
        for filler in self.path.glob(f"{FILLER}*"):
            filler.unlink()


def mount_problem(probe_dir: Path) -> str | None:
    """None if a tmpfs can be mounted here, else the reason it cannot."""
    target = probe_dir / ".mount-probe"
    target.mkdir(exist_ok=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(target)], capture_output=True, text=True
    )
    if result.returncode != 0:
        target.rmdir()
        return f"cannot mount a tmpfs for a disk-full test ({result.stderr.strip() or 'mount failed'}); run as root"
    subprocess.run(["umount", "-l", str(target)], check=False)
    target.rmdir()
    return None


@contextlib.contextmanager
def small_filesystem(path: Path, size: int) -> Iterator[SmallFilesystem]:
    """Mount a ``size``-byte tmpfs at ``path`` (created if needed) for the life of the block."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)], check=True)
    try:
        yield SmallFilesystem(path, size)
    finally:
        # Lazy: a process the test started may still hold a file open while it is being stopped.
        subprocess.run(["umount", "-l", str(path)], check=False)
