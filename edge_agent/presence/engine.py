"""The presence engine: pseudonymous sightings in, ``presence.visit`` and ``presence.aggregate`` out.

Each device (the day's pseudonym) gets a time-weighted RSSI average per anchor (a reader, or a beacon whose
placement is known); the strongest recent anchor gives its level and zone. Hysteresis turns the level
into inside/outside: in at ``enter_dbm``, and out once it has stayed under ``exit_dbm`` or gone unheard
for ``exit_after`` seconds, the visit ending at the last moment it was heard inside. A visit that
lasts ``min_dwell`` makes its device a visitor; a device heard above ``floor_dbm`` that never becomes
one is a passer-by. Visits of randomized addresses only feed the hourly aggregates; the others are
also emitted one by one, without any device identifier (a member-app beacon the store resolved
names its member, and nothing else).

Pure: time comes from the sightings and from the injected clock (for :meth:`PresenceEngine.tick`
when nothing is heard); no I/O. Events are collected and taken with :meth:`PresenceEngine.drain`.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from edge_agent.presence.aggregates import HourBucket, wire_time
from edge_agent.presence.calendar import StoreCalendar

DEFAULT_ZONE = "store"


class Sighting(NamedTuple):
    """One reading: a device heard by an anchor (reader or placed beacon) at some strength."""

    at: float  # epoch seconds
    device: bytes  # the day's pseudonym, at least 8 uniformly random bytes
    randomized: bool
    anchor: str
    rssi: float
    member: str | None = None  # a member-app beacon the store resolved (location consent on)


@dataclass(frozen=True, slots=True)
class EngineSettings:
    """Thresholds and timings; the defaults suit a small shop with readers a few metres apart."""

    placements: Mapping[str, str] = field(default_factory=dict)  # anchor -> zone
    medium: str = "wifi"
    enter_dbm: float = -70.0
    exit_dbm: float = -78.0
    floor_dbm: float = -90.0  # weaker readings are ignored: the street far away, another floor
    smoothing_s: float = 10.0  # time constant of the running average, in seconds
    min_weight: float = 0.2  # least weight of a new reading (frames of one burst arrive together)
    exit_after: float = 60.0  # seconds out (weak or unheard) before a visit ends
    min_dwell: float = 120.0  # seconds inside that make a visitor
    passerby_window: float = 600.0  # heard this long without becoming a visitor: a passer-by
    forget_after: float = 300.0  # unheard this long: the device is forgotten
    anchor_stale: float = 30.0  # an anchor unheard this long no longer decides the zone
    settle: float = 900.0  # an hour's aggregate is emitted this long after the hour ends
    scan_interval: float = 1.0
    sketch_precision: int = 12

    def __post_init__(self) -> None:
        if self.exit_dbm > self.enter_dbm:
            raise ValueError("exit_dbm must not be above enter_dbm (hysteresis)")
        if self.smoothing_s <= 0 or not 0 < self.min_weight <= 1:
            raise ValueError("smoothing_s must be positive and min_weight in (0, 1]")
        if self.forget_after < self.exit_after:
            raise ValueError("forget_after must be at least exit_after")
        if self.settle < max(self.passerby_window, self.min_dwell + self.exit_after, self.forget_after):
            raise ValueError("settle must cover passerby_window, min_dwell + exit_after and forget_after")


@dataclass(frozen=True, slots=True)
class Visit:
    """A finished visit. ``device`` stays in memory; the emitted event carries no identifier."""

    device: bytes
    randomized: bool
    started_at: float
    ended_at: float
    zones: tuple[tuple[str, float], ...]  # (zone, seconds) in order of first entry
    repeat: bool
    peak_dbm: float
    member: str | None = None

    @property
    def dwell(self) -> float:
        """Seconds from entering to the last moment heard inside."""
        return self.ended_at - self.started_at


@dataclass(frozen=True, slots=True)
class PresenceEvent:
    """An event for the outbox: kind, observation time (wire form) and payload."""

    kind: str
    observed_at: str
    payload: dict[str, Any]


class _Track:
    __slots__ = (
        "anchors",
        "enter_at",
        "first_seen",
        "hash",
        "inside",
        "key",
        "last_inside",
        "last_seen",
        "member",
        "passerby",
        "peak",
        "qualified",
        "randomized",
        "repeat",
        "visitor",
        "zone",
        "zone_dwell",
        "zone_since",
    )

    def __init__(self, at: float, device: bytes, randomized: bool, member: str | None = None) -> None:
        self.key = device
        self.member = member
        self.anchors: dict[str, list[float]] = {}
        self.first_seen = at
        self.last_seen = at
        self.hash = int.from_bytes(device[:8], "big")
        self.randomized = randomized
        self.inside = False
        self.qualified = False
        self.visitor = False
        self.passerby = False
        self.repeat = False
        self.enter_at = 0.0
        self.last_inside = 0.0
        self.zone = DEFAULT_ZONE
        self.zone_since = 0.0
        self.zone_dwell: dict[str, float] = {}
        self.peak = -200.0


class PresenceEngine:
    """Tracks devices in view and turns them into visits and hourly aggregates."""

    def __init__(
        self,
        settings: EngineSettings,
        calendar: StoreCalendar,
        clock: Callable[[], float] = time.time,
        on_visit: Callable[[Visit], None] | None = None,
    ) -> None:
        self.settings = settings
        self._calendar = calendar
        self._clock = clock
        self._on_visit = on_visit
        self._tracks: OrderedDict[bytes, _Track] = OrderedDict()
        self._buckets: dict[float, HourBucket] = {}
        self._open_from: float | None = None  # start of the earliest hour not yet emitted
        self._bucket = HourBucket(0.0, 0.0, settings.sketch_precision)  # the current hour's, cached
        self._day_end = 0.0
        self._day_visitors: set[bytes] = set()
        self._next_scan = 0.0
        self._events: list[PresenceEvent] = []
        self.sightings = 0
        self.ignored_weak = 0
        self.late = 0  # counts attributed to a later hour because theirs was already emitted

    @property
    def devices_in_view(self) -> int:
        """Devices currently tracked."""
        return len(self._tracks)

    def drain(self) -> list[PresenceEvent]:
        """Events produced since the last call."""
        events, self._events = self._events, []
        return events

    def observe_many(self, sightings: Iterable[Sighting]) -> None:
        """Feed sightings in time order."""
        observe = self.observe
        for sighting in sightings:
            observe(sighting)

    def observe(self, s: Sighting) -> None:
        """Feed one sighting."""
        cfg = self.settings
        at = s.at
        if at >= self._next_scan:
            self.advance(at)
        if s.rssi < cfg.floor_dbm:
            self.ignored_weak += 1
            return
        self.sightings += 1
        bucket = self._bucket
        if not bucket.start <= at < bucket.end:
            bucket = self._bucket = self._bucket_for(at)
        bucket.sightings += 1
        device = s.device
        tracks = self._tracks
        t = tracks.get(device)
        if t is None:
            t = tracks[device] = _Track(at, device, s.randomized, s.member)
            first_this_hour = True
        else:
            tracks.move_to_end(device)
            first_this_hour = t.last_seen < bucket.start
        if first_this_hour:
            bucket.devices.add_hash(t.hash)
            if t.randomized:
                bucket.randomized_devices.add_hash(t.hash)
        if at > t.last_seen:
            t.last_seen = at
        reading = t.anchors.get(s.anchor)
        if reading is None:
            t.anchors[s.anchor] = [s.rssi, at]
        else:
            # Weight by the time since this anchor last heard the device: phones probe in bursts of
            # frames milliseconds apart, then go quiet for tens of seconds.
            weight = 1.0 - math.exp((reading[1] - at) / cfg.smoothing_s)
            reading[0] += (weight if weight > cfg.min_weight else cfg.min_weight) * (s.rssi - reading[0])
            reading[1] = at
        if len(t.anchors) == 1:
            anchor = s.anchor
            level = t.anchors[anchor][0]
        else:
            anchor, level = self._strongest(t, at)
        if t.inside and at - t.last_inside >= cfg.exit_after:
            self._close(t, t.last_inside)
        if t.inside:
            if level >= cfg.exit_dbm and at > t.last_inside:  # readers' queues may deliver slightly out of order
                t.last_inside = at
                if level > t.peak:
                    t.peak = level
                zone = cfg.placements.get(anchor, DEFAULT_ZONE)
                if zone != t.zone:
                    t.zone_dwell[t.zone] = t.zone_dwell.get(t.zone, 0.0) + at - t.zone_since
                    t.zone, t.zone_since = zone, at
                if not t.qualified and at - t.enter_at >= cfg.min_dwell:
                    self._qualify(t)
        elif level >= cfg.enter_dbm:
            t.inside = True
            t.enter_at = t.last_inside = t.zone_since = at
            t.zone = cfg.placements.get(anchor, DEFAULT_ZONE)
            t.zone_dwell = {}
            t.peak = level
        elif not t.visitor and not t.passerby and at - t.first_seen >= cfg.passerby_window:
            self._passerby(t)

    def tick(self) -> None:
        """Let time pass to the injected clock's now: end visits, forget devices, emit finished hours."""
        self.advance(self._clock())

    def advance(self, now: float) -> None:
        """Process timeouts and settled hours up to ``now``."""
        cfg = self.settings
        self._next_scan = now + cfg.scan_interval
        if now >= self._day_end:
            self._day_end = self._calendar.day_window(now)[1]
            self._day_visitors.clear()  # the pseudonyms change with the salt; repeats start over
        if self._open_from is None:
            self._open_from = self._calendar.hour_window(now)[0]
        quiet_before = now - cfg.exit_after
        forget_before = now - cfg.forget_after
        gone: list[bytes] = []
        for device, t in self._tracks.items():
            if t.last_seen > quiet_before:
                break  # ordered by last sighting: everyone after this was heard recently
            if t.inside:
                self._close(t, t.last_inside)
            if t.last_seen <= forget_before:
                gone.append(device)
        for device in gone:
            t = self._tracks.pop(device)
            if not t.visitor and not t.passerby:
                self._passerby(t)
        self._emit_settled(now)

    def flush(self, now: float | None = None) -> None:
        """End every visit and emit every open hour, as at shutdown."""
        moment = self._clock() if now is None else now
        for t in self._tracks.values():
            if t.inside:
                self._close(t, t.last_inside)
            if not t.visitor and not t.passerby:
                self._passerby(t)
        self._tracks.clear()
        self._emit_settled(float("inf"), until=moment)

    def _strongest(self, t: _Track, at: float) -> tuple[str, float]:
        fresh_after = at - self.settings.anchor_stale
        best, level = "", -1000.0
        for name, (value, seen) in t.anchors.items():
            if seen >= fresh_after and value > level:
                best, level = name, value
        return best, level

    def _bucket_for(self, at: float) -> HourBucket:
        if self._open_from is None:
            self._open_from = self._calendar.hour_window(at)[0]
        if at < self._open_from:
            self.late += 1
            at = self._open_from
        start, end = self._calendar.hour_window(at)
        bucket = self._buckets.get(start)
        if bucket is None:
            bucket = self._buckets[start] = HourBucket(start, end, self.settings.sketch_precision)
        return bucket

    def _qualify(self, t: _Track) -> None:
        t.qualified = t.visitor = True
        bucket = self._bucket_for(t.enter_at)
        bucket.visits += 1
        bucket.visitors.add_hash(t.hash)
        if t.randomized:
            bucket.randomized_visits += 1
            t.repeat = False
        else:
            t.repeat = t.key in self._day_visitors
            bucket.repeat_visits += t.repeat
            self._day_visitors.add(t.key)

    def _passerby(self, t: _Track) -> None:
        t.passerby = True
        bucket = self._bucket_for(t.first_seen)
        bucket.passes += 1
        bucket.passers_by.add_hash(t.hash)

    def _close(self, t: _Track, end: float) -> None:
        t.inside = False
        if end > t.zone_since:
            t.zone_dwell[t.zone] = t.zone_dwell.get(t.zone, 0.0) + end - t.zone_since
        if not t.qualified:
            if end - t.enter_at < self.settings.min_dwell:
                return
            self._qualify(t)
        t.qualified = False
        zones = tuple((zone, seconds) for zone, seconds in t.zone_dwell.items() if seconds > 0)
        self._bucket_for(end).add_dwell(end - t.enter_at, zones, t.hash)
        visit = Visit(t.key, t.randomized, t.enter_at, end, zones, t.repeat, t.peak, t.member)
        if self._on_visit is not None:
            self._on_visit(visit)
        if not t.randomized:
            self._events.append(PresenceEvent("presence.visit", wire_time(end), self._visit_payload(visit)))

    def _visit_payload(self, visit: Visit) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "medium": self.settings.medium,
            "started_at": wire_time(visit.started_at),
            "ended_at": wire_time(visit.ended_at),
            "dwell_s": round(visit.dwell, 1),
            "zones": [{"zone": zone, "dwell_s": round(seconds, 1)} for zone, seconds in visit.zones],
            "repeat": visit.repeat,
            "peak_dbm": round(visit.peak_dbm),
        }
        if visit.member is not None:
            payload["member_id"] = visit.member
        return payload

    def _emit_settled(self, now: float, until: float | None = None) -> None:
        """Emit, in order, every hour whose end is ``settle`` seconds past (or up to ``until``)."""
        if self._open_from is None:
            return
        cfg = self.settings
        while True:
            start, end = self._calendar.hour_window(self._open_from)
            ready = end + cfg.settle <= now if until is None else start <= until
            if not ready:
                return
            bucket = self._buckets.pop(start, None) or HourBucket(start, end, cfg.sketch_precision)
            payload = bucket.payload(self._calendar, cfg.medium)
            self._events.append(PresenceEvent("presence.aggregate", wire_time(end), payload))
            self._open_from = end
            if self._bucket.start == start:
                self._bucket = HourBucket(0.0, 0.0, cfg.sketch_precision)
