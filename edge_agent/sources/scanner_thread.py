"""What every scanner source shares: a thread that reads until stopped and reopens its input with backoff."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class ScannerThread:
    """Base of the scanner sources: ``_read`` reads one opened input until it fails or the thread stops."""

    errors: tuple[type[BaseException], ...] = (OSError,)

    def __init__(self, name: str, on_payload: Callable[[str], object], *, max_delay: float = 30.0) -> None:
        self.name = name
        self.on_payload = on_payload
        self.max_delay = max_delay
        self.state = "starting"
        self.detail = ""
        self.payloads = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name=f"scanner:{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def health(self) -> dict[str, Any]:
        return {"state": self.state, "detail": self.detail, "payloads": self.payloads, **self._where()}

    def run(self) -> None:
        """Read until stopped; after a failure wait 1 s, doubling up to ``max_delay``, then reopen."""
        delay = 1.0
        while not self._stop.is_set():
            try:
                self._read()
                delay = 1.0
            except self.errors as exc:
                self._set_state("down", self._failure(exc))
                self._stop.wait(delay)
                delay = min(delay * 2, self.max_delay)

    def _read(self) -> None:
        raise NotImplementedError

    def _where(self) -> dict[str, str]:
        """What the health report names the input by."""
        raise NotImplementedError

    def _failure(self, exc: BaseException) -> str:
        """A line a technician can act on."""
        raise NotImplementedError

    def _emit(self, payload: str | None) -> None:
        if payload:
            self.payloads += 1
            self.on_payload(payload)

    def _set_state(self, state: str, detail: str) -> None:
        if (state, detail) != (self.state, self.detail):
            log.log(logging.WARNING if state == "down" else logging.INFO, "scanner %s %s %s", self.name, state, detail)
        self.state, self.detail = state, detail
