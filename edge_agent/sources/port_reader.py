"""Reading a serial port so that nothing else runs between taking bytes and journaling them.

A tty has no "peek": bytes read are gone from the kernel, and until the journal's ``write()`` they
exist only in this process. ``os.read`` (and so pyserial) gives up the interpreter lock for the
system call and must win it back afterwards, which under load means waiting for other threads for
milliseconds, with the bytes in hand: a SIGKILL then loses them (the kill-storm test saw 4 KiB
vanish that way at a restart). This reader waits for data with ``select`` (nothing is taken), then
calls libc ``read`` through ``ctypes.PyDLL``, which keeps the lock, so the source goes straight on
to seal and write the chunk: the window shrinks from milliseconds to the few microseconds of that
code path.

Ports without a file descriptor (``loop://``, ``socket://``) are read through pyserial.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import select
import struct
import termios
from typing import Any

import serial

_libc = ctypes.PyDLL(None, use_errno=True)  # PyDLL: the call holds the interpreter lock throughout
_read = _libc.read
_read.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t]
_read.restype = ctypes.c_ssize_t
_RETRY = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR})


class PortReader:
    """Reads whatever a port has, waiting at most ``timeout`` seconds; b"" when nothing came."""

    def __init__(self, port: Any, timeout: float, max_bytes: int = 65536) -> None:
        self.port = port
        self.timeout = timeout
        self.max_bytes = max_bytes
        fd = getattr(port, "fd", None)
        self._fd: int | None = fd if isinstance(fd, int) else None

    @property
    def direct(self) -> bool:
        """True if the port is read by file descriptor without giving up the interpreter lock."""
        return self._fd is not None

    def read(self) -> bytes:
        if self._fd is None:
            data: bytes = self.port.read(max(1, self.port.in_waiting))
            return data
        ready, _, _ = select.select([self._fd], [], [], self.timeout)  # waits without taking anything
        if not ready:
            return b""
        waiting = struct.unpack("i", fcntl.ioctl(self._fd, termios.FIONREAD, b"\0\0\0\0"))[0]
        size = max(1, min(waiting, self.max_bytes))
        buffer = ctypes.create_string_buffer(size)
        got = _read(self._fd, buffer, size)
        if got < 0:
            code = ctypes.get_errno()
            if code in _RETRY:
                return b""
            raise OSError(code, f"read failed: {os.strerror(code)}")
        if got == 0:
            # What pyserial reports too: a disconnected device is always "ready" with nothing to read.
            raise serial.SerialException("device reports readiness to read but returned no data")
        return buffer.raw[:got]
