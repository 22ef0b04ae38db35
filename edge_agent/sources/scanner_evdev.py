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
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge_agent.parsing.keyboard import EVENT_SIZE, InputEvent, KeyboardDecoder, parse_events

log = logging.getLogger(__name__)


class EvdevScanner:
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
        self.path = path
        self.on_payload = on_payload
        self.decoder = KeyboardDecoder(layout)
        self.grab = grab
        self.idle_flush = idle_flush
        self.on_event = on_event
        self.clock = clock
        self.max_delay = max_delay
        self.state = "starting"
        self.detail = ""
        self.payloads = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name=f"scanner:{Path(self.path).name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def health(self) -> dict[str, Any]:
        return {"state": self.state, "detail": self.detail, "payloads": self.payloads, "device": self.path}

    def run(self) -> None:
        """Read until stopped, reopening the device after it goes away."""
        delay = 1.0
        while not self._stop.is_set():
            try:
                self._read_device()
                delay = 1.0
            except OSError as exc:
                self._set_state("down", f"cannot read {self.path}: {exc.strerror or exc}; is the scanner plugged in?")
                self._stop.wait(delay)
                delay = min(delay * 2, self.max_delay)

    def _read_device(self) -> None:
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

    def _emit(self, payload: str | None) -> None:
        if payload:
            self.payloads += 1
            self.on_payload(payload)

    def _set_state(self, state: str, detail: str) -> None:
        if (state, detail) != (self.state, self.detail):
            log.log(logging.WARNING if state == "down" else logging.INFO, "scanner %s %s %s", self.path, state, detail)
        self.state, self.detail = state, detail


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
