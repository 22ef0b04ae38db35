"""Serial and USB-CDC barcode scanners: one payload per line on a pyserial port (``/dev/ttyACM0``, ``loop://``).

A scanner in serial or CDC-ACM mode sends each payload followed by CR, LF or CR LF (configurable on
the scanner; all three are accepted), with an AIM symbology identifier in front if it is set to send
one, and GS1 group separators as the raw byte 0x1D. Bytes are ASCII in practice; anything else is
read as Latin-1 so that no byte is lost before the classifier sees it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import serial

log = logging.getLogger(__name__)
MAX_PAYLOAD = 4096  # far above a QR member code (~320 characters); longer input is noise


def split_payloads(buffer: bytes) -> tuple[list[str], bytes]:
    """The finished payloads in ``buffer`` (empty lines dropped) and the unfinished rest."""
    payloads = []
    start = 0
    for i, byte in enumerate(buffer):
        if byte in (0x0D, 0x0A):
            if i > start:
                payloads.append(buffer[start:i].decode("latin-1"))
            start = i + 1
    rest = buffer[start:]
    if len(rest) > MAX_PAYLOAD:
        rest = b""
    return payloads, rest


class SerialScanner:
    """One serial scanner: a thread reading its port until stopped, reopening it after errors."""

    def __init__(
        self,
        url: str,
        on_payload: Callable[[str], object],
        *,
        baudrate: int = 9600,
        opener: Callable[..., Any] = serial.serial_for_url,
        max_delay: float = 30.0,
    ) -> None:
        self.url = url
        self.on_payload = on_payload
        self.baudrate = baudrate
        self.opener = opener
        self.max_delay = max_delay
        self.state = "starting"
        self.detail = ""
        self.payloads = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.port: Any = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="scanner:serial", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def health(self) -> dict[str, Any]:
        return {"state": self.state, "detail": self.detail, "payloads": self.payloads, "port": self.url}

    def run(self) -> None:
        delay = 1.0
        while not self._stop.is_set():
            try:
                self._read_port()
                delay = 1.0
            except (serial.SerialException, OSError, ValueError) as exc:
                self.state, self.detail = "down", f"cannot read {self.url}: {exc}; check the cable and the URL"
                log.warning("scanner %s", self.detail)
                self._stop.wait(delay)
                delay = min(delay * 2, self.max_delay)

    def _read_port(self) -> None:
        port = self.port = self.opener(self.url, baudrate=self.baudrate, timeout=0.1)
        try:
            self.state, self.detail = "up", ""
            rest = b""
            while not self._stop.is_set():
                data = port.read(max(1, port.in_waiting))
                if not data:
                    continue
                payloads, rest = split_payloads(rest + data)
                for payload in payloads:
                    self.payloads += 1
                    self.on_payload(payload)
        finally:
            port.close()
