"""Serial and USB-CDC barcode scanners: one payload per line on a pyserial port (``/dev/ttyACM0``, ``loop://``).

A scanner in serial or CDC-ACM mode sends each payload followed by CR, LF or CR LF (configurable on
the scanner; all three are accepted), with an AIM symbology identifier in front if it is set to send
one, and GS1 group separators as the raw byte 0x1D. Bytes are ASCII in practice; anything else is
read as Latin-1 so that no byte is lost before the classifier sees it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import serial

from edge_agent.sources.scanner_thread import ScannerThread

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


class SerialScanner(ScannerThread):
    """One serial scanner: a thread reading its port until stopped, reopening it after errors."""

    errors = (serial.SerialException, OSError, ValueError)

    def __init__(
        self,
        url: str,
        on_payload: Callable[[str], object],
        *,
        baudrate: int = 9600,
        opener: Callable[..., Any] = serial.serial_for_url,
        max_delay: float = 30.0,
    ) -> None:
        super().__init__("serial", on_payload, max_delay=max_delay)
        self.url = url
        self.baudrate = baudrate
        self.opener = opener
        self.port: Any = None

    def _where(self) -> dict[str, str]:
        return {"port": self.url}

    def _failure(self, exc: BaseException) -> str:
        return f"cannot read {self.url}: {exc}; check the cable and the URL"

    def _read(self) -> None:
        port = self.port = self.opener(self.url, baudrate=self.baudrate, timeout=0.1)
        try:
            self._set_state("up", "")
            rest = b""
            while not self._stop.is_set():
                data = port.read(max(1, port.in_waiting))
                if not data:
                    continue
                payloads, rest = split_payloads(rest + data)
                for payload in payloads:
                    self._emit(payload)
        finally:
            port.close()
