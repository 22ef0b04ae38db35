"""The POS source: reads the till's serial output in line mode and turns each line into an event.

The port is any pyserial URL, so the same code reads ``/dev/ttyUSB0`` in a store, a pseudo-terminal
in tests and ``socket://`` from a serial-over-IP box. Every chunk read is journaled before it is
parsed (see journal.py); each complete line becomes a ``pos.receipt`` event or a quarantine row.
An unplugged cable or a vanished device is retried with exponential backoff, forever.

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
from edge_agent.parsing.lines import LineSplitter, Piece
from edge_agent.parsing.receipt_line import LineError, decode_line, parse_receipt_line
from edge_agent.privacy import PanRedactor
from edge_agent.sources.backlog import ChunkBacklog
from edge_agent.sources.port_reader import PortReader
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
    ) -> None:
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
        self._splitter = LineSplitter(max_line_bytes)
        self.backlog = ChunkBacklog(journal, max_unjournaled_bytes, on_disk_full=on_disk_full)
        self.staging = staging or ReadStaging(None)
        self._unreported_drops = 0  # lines dropped and not yet reported to central

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
        self._splitter = LineSplitter(self.max_line_bytes, start_offset=committed)
        replayed = 0
        for offset, data in self.journal.replay(committed):
            if offset != self._splitter.offset:
                log.warning("%s: journal gap at %d (expected %d)", self.name, offset, self._splitter.offset)
                self._splitter = LineSplitter(self.max_line_bytes, start_offset=offset)
            self._handle(self._splitter.feed(data))
            replayed += len(data)
        if replayed:
            log.info("%s: replayed %d journaled bytes after an unclean stop", self.name, replayed)
        rescued = 0
        for offset, data in self.staging.leftovers():
            # Read just before a kill and maybe not journaled: whatever lies past the journal's end.
            skip = self._splitter.offset - offset
            if skip >= len(data):
                continue
            if skip < 0:
                log.warning("%s: staging gap at %d (expected %d)", self.name, offset, self._splitter.offset)
                self._splitter = LineSplitter(self.max_line_bytes, start_offset=offset)
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
        reader = PortReader(port, READ_TIMEOUT)
        while not self._stop.is_set():
            self._before_read()
            data = reader.read()
            if data:
                # Nothing between the read and this write may let another thread run (staging.py).
                self.staging.stage(self._splitter.offset, data)
                self._take(data)
            elif len(self.backlog):
                self.backlog.flush()
                self._journal_state()

    def feed(self, data: bytes) -> None:
        """Journal a chunk read from the device (or hold it while the disk is full), then parse it."""
        self._before_read()
        self.staging.stage(self._splitter.offset, data)
        self._take(data)

    def _before_read(self) -> None:
        """Tidy the journal and, once it holds everything, the staging file: no system call is left
        for the moment between a read and the staging write."""
        self.backlog.prepare()
        if not len(self.backlog):
            self.staging.clear()

    def _take(self, data: bytes) -> None:
        self.health.bytes_read += len(data)
        kept = self.backlog.write(self._splitter.offset, data)
        self._journal_state()
        if kept:
            self._handle(self._splitter.feed(data))
        else:
            self._drop(data)

    def _drop(self, data: bytes) -> None:
        """Held bytes are at their bound and the disk is still full: lose this chunk, but count it."""
        lost = self._splitter.feed(data)  # keeps line boundaries and offsets right for what follows
        if not self.health.dropped_bytes:
            log.error("%s: disk full and %d bytes held in memory; dropping input", self.name, self.backlog.held_bytes)
        self.health.dropped_bytes += len(data)
        self.health.dropped_lines += len(lost)
        self._unreported_drops += len(lost)

    def _journal_state(self) -> None:
        self.health.unjournaled_bytes = self.backlog.held_bytes
        self.health.journal_error = self.backlog.error
        if self._unreported_drops and not len(self.backlog):
            # The journal takes writes again: tell central what was lost, as a gap it can show.
            gap = {"reason": "disk_pressure", "shed": {"pos.receipt": self._unreported_drops}}
            self._emit(Capture.of("agent.gap", {**gap, "from_seq": None, "to_seq": None}, timestamp(self._clock)))
            self._unreported_drops = 0

    def _handle(self, pieces: list[Piece]) -> None:
        for piece in pieces:
            self._emit(self._record(piece))

    def _record(self, piece: Piece) -> Record:
        try:
            if piece.overflow:
                raise LineError("line_too_long")
            receipt = parse_receipt_line(decode_line(piece.raw, self.encoding))
        except LineError as exc:
            self.health.quarantined += 1
            reasons = self.health.quarantined_by_reason
            reasons[exc.reason] = reasons.get(exc.reason, 0) + 1
            return Quarantined(
                source=self.name,
                reason=exc.reason,
                raw=self._redactor.raw(piece.raw),
                received_at=self._clock(),
                offset=piece.end,
            )
        self.health.events += 1
        return Capture.of(
            kind="pos.receipt",
            payload=self._redactor.payload(receipt.payload()),
            observed_at=timestamp(self._clock),
            source=self.name,
            offset=piece.end,
        )

    def _set_state(self, state: str, detail: str) -> None:
        if (state, detail) != (self.health.state, self.health.detail):
            level = logging.WARNING if state == "waiting" else logging.INFO
            log.log(level, "%s: %s%s", self.name, state, f" ({detail})" if detail else "")
        self.health.state = state
        self.health.detail = detail
