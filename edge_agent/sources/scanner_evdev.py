"""Keyboard-wedge barcode scanners read from their Linux input device (``/dev/input/by-id/...-event-kbd``).

The device is read as raw ``struct input_event`` records from its file descriptor (waiting with
``select``, so stopping is prompt), decoded with the configured keyboard layout; each payload goes
to ``on_payload``. With ``grab`` the device is taken exclusively through the ``evdev`` library
(``EVIOCGRAB``), so the scanned digits do not also land in whatever window has the focus on the
till. A scanner unplugged is reopened with backoff; the idle gap flushes a payload a scanner sent
without a terminator.
"""

from __future__ import annotations

import logging
import os
import select
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge_agent.parsing.keyboard import EVENT_SIZE, InputEvent, KeyboardDecoder, parse_events
from edge_agent.sources.scanner_thread import ScannerThread

log = logging.getLogger(__name__)


class EvdevScanner(ScannerThread):
    """One wedge scanner: a thread reading its input device until stopped."""

    def __init__(
        self,
        path: str,
        on_payload: Callable[[str], object],
        *,
        layout: str = "us",
        grab: bool = False,
        idle_flush: float = 0.3,
        on_event: Callable[[InputEvent], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_delay: float = 30.0,
    ) -> None:
        super().__init__(Path(path).name, on_payload, max_delay=max_delay)
        self.path = path
        self.decoder = KeyboardDecoder(layout)
        self.grab = grab
        self.idle_flush = idle_flush
        self.on_event = on_event
        self.clock = clock

    def _where(self) -> dict[str, str]:
        return {"device": self.path}

    def _failure(self, exc: BaseException) -> str:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        return f"cannot read {self.path}: {reason}; is the scanner plugged in?"

    def _read(self) -> None:
        fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        holder = self._grab(fd) if self.grab else None
        try:
            self._set_state("up", "")
            rest = b""
            last = self.clock()
            while not self._stop.is_set():
                ready, _, _ = select.select([fd], [], [], 0.1)
                if not ready:
                    if self.decoder.pending and self.clock() - last >= self.idle_flush:
                        self._emit(self.decoder.flush())
                    continue
                data = os.read(fd, EVENT_SIZE * 64)
                if not data:
                    raise OSError(f"{self.path} closed")
                events, rest = parse_events(rest + data)
                last = self.clock()
                for event in events:
                    if self.on_event is not None:
                        self.on_event(event)
                    self._emit(self.decoder.feed(event))
        finally:
            if holder is not None:
                holder.ungrab()
            os.close(fd)

    def _grab(self, fd: int) -> Any:
        # The evdev library issues EVIOCGRAB; another reader (the desktop) then sees no keys.
        import evdev

        device = evdev.InputDevice(self.path)
        device.grab()
        return device


def key_name(event: InputEvent) -> tuple[str, str]:
    """The evdev names of an event's type and code (``EV_KEY``, ``KEY_A``), for technicians and tests."""
    from evdev import ecodes

    type_name = ecodes.EV.get(event.type, str(event.type))
    by_type = {ecodes.EV_KEY: ecodes.KEY, ecodes.EV_MSC: ecodes.MSC, ecodes.EV_SYN: ecodes.SYN}
    names = by_type.get(event.type, {})
    code_name = names.get(event.code, str(event.code))
    if isinstance(code_name, list):  # several names for one code: the first is the canonical one
        code_name = code_name[0]
    return str(type_name), str(code_name)
