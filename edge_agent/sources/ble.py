"""BLE presence source: bleak scans the configured adapter and hands every advertisement to the station.

Scanning is passive where BlueZ supports it (advertisement monitors: BlueZ >= 5.56 started with
``--experimental``), so phones are not asked for scan responses; elsewhere it falls back to active
scanning once and says so. Duplicate reports are on (``DuplicateData``), so a device in view keeps
delivering RSSI instead of being reported once.

BlueZ can stop delivering advertisements without any error (a controller firmware hiccup, an
adapter unplugged and plugged back). A watchdog restarts the scanner when nothing has been heard for
``watchdog`` seconds; a scanner that cannot start is retried with a backoff chosen by the class of
its error (:func:`classify`): adapter missing, adapter off, BlueZ unreachable, BlueZ busy, other.

Each advertisement's address goes straight to the station, which pseudonymizes it (decision 0045).
Rotating identifiers (Exposure Notification, Eddystone-EID) are hashed the same way and only counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from edge_agent.backoff import Backoff
from edge_agent.parsing.ble import EddystoneEid, ExposureNotification, decode
from edge_agent.parsing.ble_ad import BleRejected, from_bleak

log = logging.getLogger(__name__)

# Advertisement-monitor patterns for passive scanning (BlueZ matches any): the flags every phone and
# beacon sends, Apple's manufacturer prefix (iBeacon), Eddystone's and Exposure Notification's services.
PASSIVE_PATTERNS: tuple[tuple[int, int, bytes], ...] = (
    (0, 0x01, b"\x06"),
    (0, 0x01, b"\x1a"),
    (0, 0x01, b"\x02"),
    (0, 0x01, b"\x1e"),
    (0, 0xFF, b"\x4c\x00"),
    (0, 0x16, b"\xaa\xfe"),
    (0, 0x16, b"\x6f\xfd"),
)


@dataclass(frozen=True, slots=True)
class ErrorClass:
    """How one kind of failure is retried and what the technician is told."""

    name: str
    min_delay: float
    max_delay: float
    advice: str


ERROR_CLASSES = {
    c.name: c
    for c in (
        ErrorClass(
            "adapter_missing", 2.0, 60.0, "no Bluetooth adapter {adapter}: plug it in, check `bluetoothctl list`"
        ),
        ErrorClass("adapter_off", 2.0, 60.0, "adapter {adapter} is off or not ready: `bluetoothctl power on`"),
        ErrorClass(
            "bluez_unavailable",
            5.0,
            300.0,
            "BlueZ cannot be reached on the system D-Bus: `systemctl status bluetooth`",
        ),
        ErrorClass("busy", 0.5, 10.0, "BlueZ is busy with another operation on {adapter}"),
        ErrorClass("failed", 1.0, 120.0, "scanning on {adapter} failed"),
    )
}


def classify(exc: BaseException) -> str:
    """The class of a scanner failure: a key of :data:`ERROR_CLASSES`, or ``passive_unsupported``."""
    text = " ".join(str(a) for a in getattr(exc, "args", ()))
    dbus_error = getattr(exc, "dbus_error", "") or ""
    reason = getattr(exc, "reason", None)
    if "passive scanning" in text:
        return "passive_unsupported"
    if dbus_error in ("org.bluez.Error.NotReady", "org.bluez.Error.NotPowered") or "powered off" in text.lower():
        return "adapter_off"
    if dbus_error == "org.bluez.Error.InProgress":
        return "busy"
    if dbus_error.startswith("org.freedesktop.DBus.Error.") and dbus_error.endswith(
        ("ServiceUnknown", "NoReply", "NameHasNoOwner", "Disconnected")
    ):
        return "bluez_unavailable"
    if ("adapter" in text and "not found" in text) or "No Bluetooth adapters found" in text:
        return "adapter_missing"
    if reason is not None:
        name = getattr(reason, "name", str(reason))
        return {"POWERED_OFF": "adapter_off", "NO_BLUETOOTH": "adapter_missing"}.get(name, "bluez_unavailable")
    if isinstance(exc, ConnectionError | FileNotFoundError | EOFError):
        return "bluez_unavailable"  # the system bus socket is missing or closed
    return "failed"


class Listener(Protocol):
    """Where advertisements go (a :class:`~edge_agent.presence.station.PresenceStation`)."""

    def heard(self, at: float, address: str | bytes, anchor: str, rssi: float, randomized: bool | None = None) -> None:
        """A device address heard by ``anchor``."""

    def heard_id(self, at: float, rotating_id: bytes, anchor: str, rssi: float) -> None:
        """A rotating identifier heard by ``anchor``."""


class Scanner(Protocol):
    """What the source needs of ``bleak.BleakScanner``."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


ScannerFactory = Callable[[Callable[[Any, Any], None], str, str], Scanner]


def bleak_scanner(callback: Callable[[Any, Any], None], adapter: str, mode: str) -> Scanner:
    """A BleakScanner on ``adapter`` in ``mode`` with duplicate reports on."""
    from bleak import BleakScanner
    from bleak.args.bluez import BlueZScannerArgs, OrPattern
    from bleak.assigned_numbers import AdvertisementDataType

    bluez = BlueZScannerArgs(filters={"DuplicateData": True, "Transport": "le"})
    if adapter:
        bluez["adapter"] = adapter
    if mode == "passive":
        bluez["or_patterns"] = [OrPattern(s, AdvertisementDataType(t), p) for s, t, p in PASSIVE_PATTERNS]
        scanner: Scanner = BleakScanner(detection_callback=callback, scanning_mode="passive", bluez=bluez)
    else:
        scanner = BleakScanner(detection_callback=callback, scanning_mode="active", bluez=bluez)
    return scanner


class BleSource:
    """Runs a bleak scanner in its own thread and event loop, restarting it when it fails or goes quiet."""

    def __init__(
        self,
        listener: Listener,
        *,
        adapter: str = "hci0",
        anchor: str = "reader",
        mode: str = "passive",
        watchdog: float = 60.0,
        scanner_factory: ScannerFactory = bleak_scanner,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._listener = listener
        self.adapter = adapter
        self.anchor = anchor
        self.mode = mode
        self.watchdog = watchdog
        self._factory = scanner_factory
        self._clock = clock
        self._monotonic = monotonic
        self._backoffs = {name: Backoff(c.min_delay, c.max_delay) for name, c in ERROR_CLASSES.items()}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_heard = 0.0
        self.state = "starting"
        self.advertisements = 0
        self.restarts = 0
        self.rejected: Counter[str] = Counter()
        self.frames: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.last_error: str | None = None

    # -- one advertisement, the part a fuzzer reaches ----------------------------------------------
    def advertisement(self, device: Any, adv: Any) -> None:
        """bleak's detection callback: one advertisement of one device."""
        self._last_heard = self._monotonic()
        self.advertisements += 1
        try:
            self._advertisement(device, adv)
        except Exception as exc:  # a strange report must not stop the scanner's callbacks
            self.rejected["bad_report"] += 1
            self.last_error = f"an advertisement could not be read: {type(exc).__name__}"

    def _advertisement(self, device: Any, adv: Any) -> None:
        at = self._clock()
        rssi = adv.rssi
        # -127 is BLE's "no RSSI available" (BlueZ reports it for a device announced without a reading).
        if not isinstance(rssi, int) or isinstance(rssi, bool) or not -127 < rssi <= 20:
            self.rejected["no_rssi"] += 1
            return
        decoded = decode(
            from_bleak(
                adv.manufacturer_data or {},
                adv.service_data or {},
                list(adv.service_uuids or ()),
                adv.local_name if isinstance(adv.local_name, str) else None,
                adv.tx_power if isinstance(adv.tx_power, int) else None,
            )
        )
        if not isinstance(decoded, BleRejected):
            for frame in decoded.frames:
                self.frames[frame.kind] += 1
                if isinstance(frame, ExposureNotification):
                    self._listener.heard_id(at, frame.rolling_proximity_identifier, self.anchor, float(rssi))
                    return
                if isinstance(frame, EddystoneEid):
                    self._listener.heard_id(at, frame.eid, self.anchor, float(rssi))
                    return
        self._listener.heard(at, device.address, self.anchor, float(rssi), _random_address(device))

    # -- the scanner's life ------------------------------------------------------------------------
    async def _scan_once(self) -> None:
        """Start a scanner, keep it while advertisements flow, stop it when they do not."""
        scanner = self._factory(self.advertisement, self.adapter, self.mode)
        await scanner.start()
        self.state = f"scanning ({self.mode})"
        started = self._last_heard = self._monotonic()
        try:
            while not self._stop.is_set():
                await asyncio.sleep(min(1.0, self.watchdog / 4))
                if self._last_heard > started:
                    for backoff in self._backoffs.values():
                        backoff.reset()
                if self._monotonic() - self._last_heard >= self.watchdog:
                    self.restarts += 1
                    self.state = "restarting"
                    log.warning(
                        "ble: nothing heard on %s for %.0f s; restarting the scanner", self.adapter, self.watchdog
                    )
                    return
        finally:
            with contextlib.suppress(Exception):  # the adapter may be gone already
                await scanner.stop()

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                await self._scan_once()
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                kind = classify(exc)
            if kind == "passive_unsupported":
                log.warning(
                    "ble: BlueZ on this PC cannot scan passively (needs 5.56+ with --experimental); scanning actively"
                )
                self.mode = "active"
                continue
            self.errors[kind] += 1
            error = ERROR_CLASSES[kind]
            self.state = kind
            self.last_error = error.advice.format(adapter=self.adapter)
            backoff = self._backoffs[kind]
            if backoff.failures == 0:
                log.warning("ble: %s; retrying", self.last_error)
            delay = backoff.next_delay()
            deadline = self._monotonic() + delay
            while not self._stop.is_set() and self._monotonic() < deadline:
                await asyncio.sleep(min(0.2, delay))

    def run(self) -> None:
        """Scan until stopped (blocks; the agent runs it in a thread)."""
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._run())
        finally:
            # bleak's BlueZ manager keeps a task watching the bus; end it with the loop.
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.wait(pending))
            loop.close()
            self.state = "stopped"

    def start(self) -> None:
        """Scan in a daemon thread."""
        self._thread = threading.Thread(target=self.run, name="ble-source", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop scanning."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def as_dict(self) -> dict[str, Any]:
        """Health counters: state, advertisements, restarts, errors by class, frames by kind."""
        return {
            "state": self.state,
            "adapter": self.adapter,
            "advertisements": self.advertisements,
            "restarts": self.restarts,
            "errors_by_class": dict(self.errors),
            "frames_by_kind": dict(self.frames),
            "rejected_by_reason": dict(self.rejected),
            "last_error": self.last_error,
        }


def _random_address(device: Any) -> bool | None:
    """BlueZ's AddressType ("public" or "random"); None (decide from the address) when not given."""
    details = getattr(device, "details", None)
    props = details.get("props") if isinstance(details, dict) else None
    kind = props.get("AddressType") if isinstance(props, dict) else None
    return None if kind is None else kind == "random"
