"""Reading a serial port straight into the staging file, so no read byte exists only in this process.

A tty has no "peek": bytes read are gone from the kernel. Read into the process's memory, they
are lost to a SIGKILL until they are written elsewhere, and that moment can last milliseconds
however short the code in it: the thread is often preempted on its way back from ``read`` (it just
woke the writer at the other end), and under load the interpreter lock or a CPU keeps it waiting.
The kill-storm test lost whole 4 KiB reads that way. So this reader waits for data with ``select``
(nothing is taken), asks the kernel how much is waiting, claims that much room in the staging file
(staging.py, mapped into memory) and calls libc ``read`` into the mapping: when the read returns,
the bytes are in the staging file already.

Ports without a file descriptor (``loop://``, ``socket://``) are read through pyserial, and the
source stages what they return itself.
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

from edge_agent.sources.staging import MAX_READ, ReadStaging

_libc = ctypes.PyDLL(None, use_errno=True)  # PyDLL: the call holds the interpreter lock throughout
_read = _libc.read
_read.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t]
_read.restype = ctypes.c_ssize_t
_RETRY = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR})


class PortReader:
    """Reads whatever a port has, waiting at most ``timeout`` seconds; b"" when nothing came."""

    def __init__(
        self, port: Any, timeout: float, staging: ReadStaging | None = None, max_bytes: int = MAX_READ
    ) -> None:
        self.port = port
        self.timeout = timeout
        self.staging = staging
        self.max_bytes = min(max_bytes, MAX_READ)
        fd = getattr(port, "fd", None)
        self._fd: int | None = fd if isinstance(fd, int) else None
        self.staged = False  # the last read landed in the staging file (else the caller must stage it)

    @property
    def direct(self) -> bool:
        """True if the port is read by file descriptor without giving up the interpreter lock."""
        return self._fd is not None

    def read(self, offset: int = 0) -> bytes:
        """The bytes waiting (b"" after ``timeout``); ``offset`` is their stream position, for staging."""
        self.staged = False
        if self._fd is None:
            data: bytes = self.port.read(max(1, self.port.in_waiting))
            return data
        ready, _, _ = select.select([self._fd], [], [], self.timeout)  # waits without taking anything
        if not ready:
            return b""
        waiting = struct.unpack("i", fcntl.ioctl(self._fd, termios.FIONREAD, b"\0\0\0\0"))[0]
        size = max(1, min(waiting, self.max_bytes))
        address = self.staging.claim(offset, size) if self.staging is not None else None
        if address is None:  # no staging file, or full while the disk is: the old window reopens
            buffer = ctypes.create_string_buffer(size)
            got = _read(self._fd, buffer, size)
            data = buffer.raw[: max(got, 0)]
        else:
            got = _read(self._fd, address, size)
            assert self.staging is not None
            data = self.staging.settle(got)
            self.staged = got > 0
        if got < 0:
            code = ctypes.get_errno()
            if code in _RETRY:
                return b""
            raise OSError(code, f"read failed: {os.strerror(code)}")
        if got == 0:
            # What pyserial reports too: a disconnected device is always "ready" with nothing to read.
            raise serial.SerialException("device reports readiness to read but returned no data")
        return data
