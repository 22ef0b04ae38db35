"""The POS source: reads the till's serial output and turns what it printed into events.

The port is any pyserial URL, so the same code reads ``/dev/ttyUSB0`` in a store, a pseudo-terminal
in tests and ``socket://`` from a serial-over-IP box. Every chunk read is journaled before it is
parsed (see journal.py); then the stream of the configured ``pos.mode`` (pos_streams.py) turns
complete lines, or complete printed receipts, into ``pos.receipt`` events or quarantine rows. In
``escpos`` mode a receipt the printer neither cut nor reset ends when the port stays quiet for
``pos.idle_gap`` seconds; in a stream that frames its receipts with a reset and a cut, a receipt
stays open across such a pause and ends at its cut, or after ``pos.max_receipt_pause`` seconds of
quiet. An unplugged cable or a vanished device is retried with exponential
backoff, forever.

If the disk refuses a journal write, the chunk is held in memory and written later (backlog.py);
reading and parsing go on. Only past ``capture.max_unjournaled_bytes`` of held bytes are chunks
dropped; their lines are counted and reported to central in an ``agent.gap`` event.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import serial

from edge_agent.journal import CaptureJournal
from edge_agent.outbox import Capture, Quarantined, Record
from edge_agent.privacy import PanRedactor
from edge_agent.sources.backlog import ChunkBacklog
from edge_agent.sources.port_reader import PortReader
from edge_agent.sources.pos_streams import LineStream, PosStream, StreamFactory
from edge_agent.sources.staging import ReadStaging
from shared.wire import timestamp

log = logging.getLogger(__name__)

READ_TIMEOUT = 0.5


@dataclass
class SourceHealth:
    """What a source reports to heartbeats and `edge-agent doctor`."""

    state: str = "starting"
    detail: str = ""
    bytes_read: int = 0
    events: int = 0
    quarantined: int = 0
    reconnects: int = 0
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)
    unjournaled_bytes: int = 0  # read but held in memory: the journal refuses writes (disk full)
    journal_error: str | None = None
    dropped_bytes: int = 0  # read past the memory bound while the disk stayed full, and lost
    dropped_lines: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "detail": self.detail,
            "bytes_read": self.bytes_read,
            "events": self.events,
            "quarantined": self.quarantined,
            "quarantined_by_reason": dict(self.quarantined_by_reason),
            "reconnects": self.reconnects,
            "unjournaled_bytes": self.unjournaled_bytes,
            "journal_error": self.journal_error,
            "dropped_bytes": self.dropped_bytes,
            "dropped_lines": self.dropped_lines,
        }


def open_port(url: str, baudrate: int) -> Any:
    """Open a pyserial URL exclusively, without discarding bytes the kernel already holds.

    pyserial's POSIX ``open()`` flushes the input queue; after a restart that would throw away
    receipts the POS printed while the agent was down, so the flush is skipped for this port.
    ``exclusive`` takes an advisory lock: two readers would each get half of every receipt.
    """
    port = serial.serial_for_url(url, baudrate=baudrate, timeout=READ_TIMEOUT, exclusive=True, do_not_open=True)
    if hasattr(port, "_reset_input_buffer"):
        port._reset_input_buffer = lambda: None
    port.open()
    return port


class SerialPosSource:
    """Reads one POS port on its own thread until stopped."""

    name = "pos"

    def __init__(
        self,
        *,
        url: str,
        baudrate: int,
        journal: CaptureJournal,
        emit: Callable[[Record], None],
        redactor: PanRedactor,
        encoding: str = "auto",
        max_line_bytes: int = 65536,
        reconnect_max_delay: float = 30.0,
        clock: Callable[[], float] = time.time,
        opener: Callable[[str, int], Any] = open_port,
        max_unjournaled_bytes: int = 8 * 1024 * 1024,
        on_disk_full: Callable[[str], None] | None = None,
        staging: ReadStaging | None = None,
        stream: StreamFactory | None = None,
        idle_gap: float = 2.0,
        monotonic: Callable[[], float] = time.monotonic,
        max_receipt_pause: float = 600.0,
    ) -> None:
        """``stream`` makes the reader of the configured ``pos.mode`` (default: line mode with
        ``encoding`` and ``max_line_bytes``); ``idle_gap`` is the quiet time that ends a receipt, and
        ``max_receipt_pause`` the quiet time that ends even one the stream holds open across a pause."""
        self.url = url
        self.baudrate = baudrate
        self.journal = journal
        self._emit = emit
        self._redactor = redactor
        self.encoding = encoding
        self.max_line_bytes = max_line_bytes
        self.reconnect_max_delay = reconnect_max_delay
        self._clock = clock
        self._opener = opener
        self.health = SourceHealth()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._make_stream: StreamFactory = stream or (
            lambda offset: LineStream(
                offset, redactor=redactor, encoding=encoding, max_line_bytes=max_line_bytes, clock=clock
            )
        )
        self._stream: PosStream = self._make_stream(0)
        self.idle_gap = idle_gap
        self.max_receipt_pause = max_receipt_pause
        self._paused = False  # the idle gap was reported since the last read: the pause may run too long
        self._monotonic = monotonic
        self._last_read = monotonic()
        self._unended = False  # bytes were read since the last idle gap was reported
        self.backlog = ChunkBacklog(journal, max_unjournaled_bytes, on_disk_full=on_disk_full)
        self.staging = staging or ReadStaging(None)
        self._unreported_drops = 0  # lines dropped and not yet reported to central

    @property
    def offset(self) -> int:
        """Stream position just past the last byte read from the device."""
        return self._stream.offset

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name=f"source-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        # Keep the staged bytes only if the journal does not have them all (the disk was full).
        self.staging.close(remove=not len(self.backlog))

    def recover(self, committed: int) -> int:
        """Replay journaled bytes past ``committed`` into events; return how many bytes were replayed."""
        self._stream = self._make_stream(committed)
        replayed = 0
        for offset, data in self.journal.replay(committed):
            if offset != self._stream.offset:
                log.warning("%s: journal gap at %d (expected %d)", self.name, offset, self._stream.offset)
                self._stream = self._make_stream(offset)
            self._handle(self._stream.feed(data))
            self._unended = True
            replayed += len(data)
        if replayed:
            log.info("%s: replayed %d journaled bytes after an unclean stop", self.name, replayed)
        rescued = 0
        for offset, data in self.staging.leftovers():
            # Read just before a kill and maybe not journaled: whatever lies past the journal's end.
            skip = self._stream.offset - offset
            if skip >= len(data):
                continue
            if skip < 0:
                log.warning("%s: staging gap at %d (expected %d)", self.name, offset, self._stream.offset)
                self._stream = self._make_stream(offset)
                skip = 0
            self._take(data[skip:])
            rescued += len(data) - skip
        if rescued:
            log.info(
                "%s: recovered %d bytes read just before an unclean stop from %s", self.name, rescued, self.staging.path
            )
        self._before_read()
        return replayed + rescued

    def run(self) -> None:
        delay = 0.5
        while not self._stop.is_set():
            try:
                port = self._opener(self.url, self.baudrate)
            except (serial.SerialException, OSError, ValueError) as exc:
                self._set_state("waiting", f"cannot open {self.url}: {exc}")
                self._stop.wait(delay)
                delay = min(delay * 2, self.reconnect_max_delay)
                continue
            delay = 0.5
            self._set_state("reading", f"reading {self.url}")
            try:
                self._read(port)
            except (serial.SerialException, OSError) as exc:
                self.health.reconnects += 1
                self._set_state("waiting", f"{self.url} failed: {exc}")
                self._stop.wait(delay)
            finally:
                with contextlib.suppress(serial.SerialException, OSError):
                    port.close()
        self._set_state("stopped", "")

    def _read(self, port: Any) -> None:
        reader = PortReader(port, READ_TIMEOUT, self.staging)
        while not self._stop.is_set():
            self._before_read()
            data = reader.read(self._stream.offset)  # read into the staging file (staging.py)
            if data:
                if not reader.staged:  # a port without a file descriptor: staged once in hand
                    self.staging.stage(self._stream.offset, data)
                self._take(data)
                continue
            if len(self.backlog):
                self.backlog.flush()
                self._journal_state()
            self.check_idle()

    def check_idle(self) -> None:
        """End the receipt in progress if the port has been quiet for the idle gap (or, one the stream
        holds open across a pause, for ``max_receipt_pause``)."""
        quiet = self._monotonic() - self._last_read
        if self._unended and quiet >= self.idle_gap:
            self._unended = False
            self._paused = True
            self._handle(self._stream.idle())
        if self._paused and quiet >= self.max_receipt_pause:
            self._paused = False
            self._handle(self._stream.expire())

    def feed(self, data: bytes) -> None:
        """Journal a chunk read from the device (or hold it while the disk is full), then parse it."""
        self._before_read()
        self.staging.stage(self._stream.offset, data)
        self._take(data)

    def _before_read(self) -> None:
        """Tidy the journal and, once it holds everything, the staging file, before the next read
        lands in it."""
        self.backlog.prepare()
        if not len(self.backlog):
            self.staging.clear()

    def _take(self, data: bytes) -> None:
        self.health.bytes_read += len(data)
        self._last_read = self._monotonic()
        self._unended = True
        self._paused = False
        kept = self.backlog.write(self._stream.offset, data)
        self._journal_state()
        if kept:
            self._handle(self._stream.feed(data))
        else:
            self._drop(data)

    def _drop(self, data: bytes) -> None:
        """Held bytes are at their bound and the disk is still full: lose this chunk, but count it."""
        lost = self._stream.lost(data)
        if not self.health.dropped_bytes:
            log.error("%s: disk full and %d bytes held in memory; dropping input", self.name, self.backlog.held_bytes)
        self.health.dropped_bytes += len(data)
        self.health.dropped_lines += lost
        self._unreported_drops += lost

    def _journal_state(self) -> None:
        self.health.unjournaled_bytes = self.backlog.held_bytes
        self.health.journal_error = self.backlog.error
        if self._unreported_drops and not len(self.backlog):
            # The journal takes writes again: tell central what was lost, as a gap it can show.
            gap = {"reason": "disk_pressure", "shed": {"pos.receipt": self._unreported_drops}}
            self._emit(Capture.of("agent.gap", {**gap, "from_seq": None, "to_seq": None}, timestamp(self._clock)))
            self._unreported_drops = 0

    def _handle(self, records: list[Record]) -> None:
        health = self.health
        for record in records:
            if isinstance(record, Quarantined):
                health.quarantined += 1
                reasons = health.quarantined_by_reason
                reasons[record.reason] = reasons.get(record.reason, 0) + 1
            else:
                health.events += 1
            self._emit(record)

    def _set_state(self, state: str, detail: str) -> None:
        if (state, detail) != (self.health.state, self.health.detail):
            level = logging.WARNING if state == "waiting" else logging.INFO
            log.log(level, "%s: %s%s", self.name, state, f" ({detail})" if detail else "")
        self.health.state = state
        self.health.detail = detail
