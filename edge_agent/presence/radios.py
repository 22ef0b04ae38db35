"""The agent's presence radios: a station and a source per configured medium, built from ``presence.*``."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from edge_agent.config import AgentConfig
from edge_agent.presence.calendar import StoreCalendar
from edge_agent.presence.engine import EngineSettings, PresenceEngine
from edge_agent.presence.member_beacons import BeaconDocumentError, resolver_from
from edge_agent.presence.pseudonyms import Pseudonymizer, load_secret
from edge_agent.presence.station import PresenceStation
from edge_agent.records import Capture
from edge_agent.sources.ble import BleSource, ScannerFactory, bleak_scanner
from edge_agent.sources.wifi import WifiSource

log = logging.getLogger(__name__)


class PresenceSettingError(ValueError):
    """A presence setting that cannot be used; the message names the setting."""


def parse_zones(text: str) -> dict[str, str]:
    """``presence.zones``: ``anchor=zone`` pairs separated by commas."""
    zones: dict[str, str] = {}
    for position, item in enumerate(text.split(","), 1):
        item = item.strip()
        if not item:
            continue
        anchor, sep, zone = (part.strip() for part in item.partition("="))
        if not sep or not anchor or not zone:
            raise PresenceSettingError(
                f"presence.zones: item {position} ({item!r}) is not `anchor=zone` (e.g. `door=front, aisles=aisles`)"
            )
        if len(zone) > 64 or len(anchor) > 64:
            raise PresenceSettingError(f"presence.zones: item {position}: names are at most 64 characters")
        zones[anchor] = zone
    return zones


def store_timezone(name: str) -> tzinfo:
    """``presence.timezone``: an IANA zone, or the PC's own when empty."""
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise PresenceSettingError(
                f"presence.timezone: {name!r} is not an IANA time zone (e.g. Asia/Shanghai)"
            ) from None
    with contextlib.suppress(OSError, ZoneInfoNotFoundError, ValueError):
        target = str(Path("/etc/localtime").resolve())
        if "zoneinfo/" in target:
            return ZoneInfo(target.split("zoneinfo/", 1)[1])
    return datetime.now().astimezone().tzinfo or UTC


def engine_settings(config: AgentConfig, medium: str) -> EngineSettings:
    """The engine's thresholds from the agent's settings."""
    if config.presence_exit_dbm > config.presence_enter_dbm:
        raise PresenceSettingError("presence.exit_dbm must not be above presence.enter_dbm (hysteresis)")
    exit_after = config.presence_exit_after
    forget_after = max(300.0, exit_after)
    return EngineSettings(
        placements=parse_zones(config.presence_zones),
        medium=medium,
        enter_dbm=config.presence_enter_dbm,
        exit_dbm=config.presence_exit_dbm,
        floor_dbm=config.presence_floor_dbm,
        min_dwell=config.presence_min_dwell,
        exit_after=exit_after,
        forget_after=forget_after,
        settle=max(900.0, 600.0, config.presence_min_dwell + exit_after, forget_after),
    )


class PresenceRadios:
    """The configured presence sources, their stations, and the periodic tick."""

    def __init__(
        self,
        config: AgentConfig,
        emit: Callable[[Capture], None],
        *,
        clock: Callable[[], float] = time.time,
        scanner_factory: ScannerFactory = bleak_scanner,
    ) -> None:
        self.stations: dict[str, PresenceStation] = {}
        self.wifi: WifiSource | None = None
        self.ble: BleSource | None = None
        if not (config.presence_wifi or config.presence_ble_adapter):
            return
        calendar = StoreCalendar(store_timezone(config.presence_timezone))
        secret = load_secret(config.presence_secret_path)

        def station(medium: str) -> PresenceStation:
            engine = PresenceEngine(engine_settings(config, medium), calendar, clock=clock)
            return PresenceStation(engine, Pseudonymizer(secret, calendar, clock=clock), emit, clock=clock)

        if config.presence_wifi:
            self.stations["wifi"] = station("wifi")
            self.wifi = WifiSource(
                config.presence_wifi, self.stations["wifi"], anchor=config.presence_reader, clock=clock
            )
        if config.presence_ble_adapter:
            self.stations["ble"] = station("ble")
            self.ble = BleSource(
                self.stations["ble"],
                adapter=config.presence_ble_adapter,
                anchor=config.presence_reader,
                mode=config.presence_ble_scanning,
                watchdog=config.presence_ble_watchdog,
                scanner_factory=scanner_factory,
                clock=clock,
            )

    @property
    def enabled(self) -> bool:
        """Any presence source configured."""
        return bool(self.stations)

    def use_beacons(self, document: Any) -> None:
        """Take the downlink's ``member_beacons`` document (None: resolve nobody) for the BLE station."""
        station = self.stations.get("ble")
        if station is None:
            return
        try:
            resolver = resolver_from(document)
        except BeaconDocumentError as exc:
            log.warning("%s; member beacons stay anonymous until central sends a usable one", exc)
            resolver = resolver_from(None)
        station.use_beacons(resolver)

    def start(self) -> None:
        """Start the sources."""
        for source in (self.wifi, self.ble):
            if source is not None:
                source.start()

    def tick(self) -> None:
        """End visits and settle hours on the wall clock; forward the events."""
        for station in self.stations.values():
            station.tick()

    def stop(self) -> None:
        """Stop the sources and emit what is open (visits end, the current hour is sent as it stands)."""
        for source in (self.wifi, self.ble):
            if source is not None:
                source.stop()
        for station in self.stations.values():
            station.finish()

    def states(self) -> dict[str, Callable[[], str]]:
        """Each source's state, read when asked (for the health monitor)."""
        out: dict[str, Callable[[], str]] = {}
        wifi, ble = self.wifi, self.ble
        if wifi is not None:
            out["wifi"] = lambda: wifi.state
        if ble is not None:
            out["ble"] = lambda: ble.state
        return out

    def health(self) -> dict[str, dict[str, Any]]:
        """Per source: its own counters and its station's."""
        out: dict[str, dict[str, Any]] = {}
        if self.wifi is not None:
            out["wifi"] = {**self.wifi.as_dict(), **self.stations["wifi"].as_dict()}
        if self.ble is not None:
            out["ble"] = {**self.ble.as_dict(), **self.stations["ble"].as_dict()}
        return out


ARPHRD_IEEE80211_RADIOTAP = 803  # /sys/class/net/<if>/type of an interface in monitor mode


def doctor_checks(config: AgentConfig, sys_root: Path = Path("/sys")) -> list[tuple[bool, str]]:
    """What `edge-agent doctor` says about the presence settings and radios (``sys_root`` for tests)."""
    if not (config.presence_wifi or config.presence_ble_adapter):
        return [(True, "presence: off (no presence.wifi, no presence.ble_adapter)")]
    checks: list[tuple[bool, str]] = []
    try:
        engine_settings(config, "wifi")
        store_timezone(config.presence_timezone)
    except PresenceSettingError as exc:
        checks.append((False, str(exc)))
    target = config.presence_wifi
    if target and ("/" in target or Path(target).exists()):
        path = Path(target)
        kind = "FIFO" if path.is_fifo() else "capture file"
        readable = path.exists() and os.access(path, os.R_OK)
        checks.append(
            (readable, f"presence.wifi: {kind} {path}" + ("" if readable else " does not exist or is unreadable"))
        )
    elif target:
        net = sys_root / "class" / "net" / target
        if not net.exists():
            checks.append(
                (False, f"presence.wifi: no interface {target} (iw dev <phy> interface add {target} type monitor)")
            )
        else:
            kind = (net / "type").read_text().strip()
            monitor = kind == str(ARPHRD_IEEE80211_RADIOTAP)
            advice = "" if monitor else f" is not in monitor mode (type {kind}): iw dev {target} set type monitor"
            checks.append((monitor, f"presence.wifi: interface {target}" + (advice or " in monitor mode")))
    adapter = config.presence_ble_adapter
    if adapter:
        present = (sys_root / "class" / "bluetooth" / adapter).exists()
        advice = "" if present else " not found: plug it in, check `bluetoothctl list` and `rfkill list`"
        checks.append((present, f"presence.ble_adapter: {adapter}" + (advice or " present")))
    return checks
