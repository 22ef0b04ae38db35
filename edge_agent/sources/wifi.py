"""Wi-Fi presence source: probe requests from a monitor-mode interface, a pcap file or a FIFO.

``target`` picks the input, as pyserial's URL picks a port:

* a network interface name (``wlan1mon``): a raw ``AF_PACKET`` socket on an interface already in
  monitor mode (``iw dev wlan1 interface add wlan1mon type monitor``), each frame with its radiotap
  header; needs CAP_NET_RAW.
* a path: a pcap or pcapng file written by an external capture tool (replayed once, its own
  timestamps driving the engine) or a FIFO (``mkfifo``; read live as frames arrive; a tool that
  restarts should write a pcapng, whose new section header the reader takes in its stride).

Each probe request's source address goes straight to the station, which pseudonymizes it. Damaged
frames are counted by reason, never raised: a radio hears plenty of garbage. A pcapng naming its
interfaces (a tool merging several radios) gives each interface's name as the anchor (reader).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import stat
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from edge_agent.backoff import Backoff
from edge_agent.parsing.pcap import CaptureProblem, CaptureReader, CaptureRecord
from edge_agent.parsing.wifi import LINKTYPE_IEEE802_11_RADIOTAP, ProbeRequest, WifiRejected, decode_packet

log = logging.getLogger(__name__)

ETH_P_ALL = 0x0003
CHUNK = 65536


class Listener(Protocol):
    """Where heard probe requests go (a :class:`~edge_agent.presence.station.PresenceStation`)."""

    def heard(self, at: float, address: str | bytes, anchor: str, rssi: float, randomized: bool | None = None) -> None:
        """A device address heard by ``anchor``."""

    def replaying(self, on: bool) -> None:
        """A capture file starts or stops driving time."""

    def finish(self, at: float | None = None) -> None:
        """End of a capture file: end every visit."""


class WifiSource:
    """Reads one Wi-Fi input in its own thread and hands probe requests to the station."""

    def __init__(
        self,
        target: str,
        listener: Listener,
        *,
        anchor: str = "reader",
        reconnect_max_delay: float = 30.0,
        clock: Callable[[], float] = time.time,
        socket_factory: Callable[[str], socket.socket] | None = None,
    ) -> None:
        self.target = target
        self._listener = listener
        self.anchor = anchor
        self._clock = clock
        self._socket_factory = socket_factory or _monitor_socket
        self._backoff = Backoff(0.5, reconnect_max_delay)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.state = "starting"
        self.frames = 0
        self.probes = 0
        self.rejected: Counter[str] = Counter()
        self.last_error: str | None = None
        self._announced = False  # replaying(True) already said by start()

    # -- one frame, the part a fuzzer reaches ------------------------------------------------------
    def frame(self, linktype: int, data: bytes, at: float, fcs_bytes: int = 0, interface: str = "") -> None:
        """Decode one captured frame and pass a probe request on; anything else is counted by reason."""
        self.frames += 1
        try:
            result = decode_packet(linktype, data, fcs_bytes)
        except Exception:  # the parser is fuzzed never to raise; a radio must not stop the agent if it does
            log.exception("wifi: a frame could not be decoded")
            result = WifiRejected("decoder_error")
        if isinstance(result, WifiRejected):
            self.rejected[result.reason] += 1
            return
        self._probe(result, at, interface or self.anchor)

    def _probe(self, probe: ProbeRequest, at: float, anchor: str) -> None:
        if probe.signal_dbm is None:
            self.rejected["no_signal"] += 1
            return
        self.probes += 1
        self._listener.heard(at, probe.source, anchor, float(probe.signal_dbm), probe.locally_administered)

    def record(self, item: CaptureRecord | CaptureProblem) -> None:
        """One item of a capture stream."""
        if isinstance(item, CaptureProblem):
            self.rejected[item.reason] += 1
            if item.fatal:
                self.last_error = f"{self.target}: {item.reason}: {item.detail}"
            return
        self.frame(item.linktype, item.data, item.timestamp_ns / 1e9, item.fcs_bytes, item.interface)

    # -- the inputs --------------------------------------------------------------------------------
    def read_stream(self, stream: BinaryIO, *, replay: bool) -> float | None:
        """Feed a whole pcap/pcapng stream (file or FIFO) to the station; the last timestamp seen."""
        reader = CaptureReader()
        last: float | None = None
        while not self._stop.is_set():
            chunk = stream.read(CHUNK) if replay else _read_some(stream, self._stop)
            if chunk is None:
                continue
            if not chunk:
                break
            for item in reader.feed(chunk):
                self.record(item)
                if isinstance(item, CaptureRecord):
                    last = item.timestamp_ns / 1e9
            if reader.failed:
                break
        for problem in reader.close():
            self.record(problem)
        return last

    def _run_file(self, path: Path) -> None:
        fifo = stat.S_ISFIFO(path.stat().st_mode)
        if not fifo:
            if not self._announced:
                self._listener.replaying(True)
                self._announced = True
            try:
                with path.open("rb") as stream:
                    self.state = "replaying"
                    last = self.read_stream(stream, replay=True)
                if not self._stop.is_set() and last is not None:
                    self._listener.finish(last)
            finally:
                self._announced = False
                self._listener.replaying(False)
            self.state = "finished"
            log.info("wifi: replayed %s: %d frames, %d probe requests", path, self.frames, self.probes)
            return
        while not self._stop.is_set():
            # Read-write, so the FIFO always has a writer (this process): a capture tool may open,
            # close and reopen it at any moment without ever meeting a missing reader (EPIPE) or
            # making us see end-of-file. A stream that becomes unreadable is started over.
            fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
            with os.fdopen(fd, "rb", buffering=0) as stream:
                self.state = "reading"
                self.read_stream(stream, replay=False)
            if not self._stop.is_set():
                log.warning("wifi: the capture in %s became unreadable; reading it afresh", path)

    def _run_socket(self) -> None:
        while not self._stop.is_set():
            try:
                sock = self._socket_factory(self.target)
            except OSError as exc:
                self.state = "interface_unavailable"
                self.last_error = _socket_problem(self.target, exc)
                delay = self._backoff.next_delay()
                if self._backoff.failures == 1:
                    log.warning("wifi: %s; retrying", self.last_error)
                self._stop.wait(delay)
                continue
            self._backoff.reset()
            self.state = "reading"
            log.info("wifi: capturing probe requests on %s", self.target)
            try:
                with sock:
                    sock.settimeout(0.5)
                    while not self._stop.is_set():
                        try:
                            data = sock.recv(CHUNK)
                        except TimeoutError:
                            continue
                        self.frame(LINKTYPE_IEEE802_11_RADIOTAP, data, self._clock())
            except OSError as exc:  # the interface went away (dongle unplugged, driver reset)
                self.state = "interface_lost"
                self.last_error = _socket_problem(self.target, exc)
                log.warning("wifi: %s; reopening", self.last_error)

    def run(self) -> None:
        """Read until stopped (or, for a capture file, until its end)."""
        path = Path(self.target)
        if "/" in self.target or path.exists():
            try:
                self._run_file(path)
            except OSError as exc:
                if self._announced:
                    self._announced = False
                    self._listener.replaying(False)
                self.state = "failed"
                self.last_error = f"cannot read the capture {self.target}: {exc.strerror or exc}"
                log.error("wifi: %s", self.last_error)
        else:
            self._run_socket()

    def start(self) -> None:
        """Run in a daemon thread."""
        # Say a replay is coming before the thread runs, so no wall-clock tick gets in first.
        path = Path(self.target)
        if path.is_file():
            self._listener.replaying(True)
            self._announced = True
        self._thread = threading.Thread(target=self.run, name="wifi-source", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop reading (a file being replayed stops where it is)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def join(self, timeout: float | None = None) -> None:
        """Wait for the reading thread (tests, replays)."""
        if self._thread is not None:
            self._thread.join(timeout)

    def as_dict(self) -> dict[str, Any]:
        """Health counters: state, frames, probe requests, rejections by reason."""
        return {
            "state": self.state,
            "frames": self.frames,
            "probe_requests": self.probes,
            "rejected_by_reason": dict(self.rejected.most_common(16)),
            "last_error": self.last_error,
        }


def _monitor_socket(interface: str) -> socket.socket:
    """A raw socket receiving every frame of a monitor-mode interface (radiotap first)."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    try:
        sock.bind((interface, ETH_P_ALL))
    except OSError:
        sock.close()
        raise
    return sock


def _socket_problem(interface: str, exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return f"no permission for a raw socket on {interface}: run the agent with CAP_NET_RAW"
    if exc.errno == 19:  # ENODEV
        return (
            f"no interface {interface}: create it in monitor mode (iw dev <phy> interface add {interface} type monitor)"
        )
    return f"raw socket on {interface} failed: {exc.strerror or exc}"


def _read_some(stream: BinaryIO, stop: threading.Event) -> bytes | None:
    """Up to CHUNK bytes of a non-blocking FIFO; None if nothing came within half a second, b"" at EOF."""
    ready, _, _ = select.select([stream], [], [], 0.5)
    if not ready:
        return None
    with contextlib.suppress(BlockingIOError):
        return os.read(stream.fileno(), CHUNK)
    return None
