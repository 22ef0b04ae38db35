"""Hourly presence aggregates: what one agent heard in one local clock hour, ready to merge centrally.

Distinct counts are HyperLogLog sketches over the day's pseudonyms, so central can union the sketches
of several agents in one store; plain counts (visits, passes, dwell) are this agent's own. Which hour
a figure belongs to: sightings and devices by when they were heard, passers-by by when the device was
first heard, visitors and visits by when the visit began, dwell and zones by when the visit ended.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from edge_agent.presence.calendar import StoreCalendar
from shared.hyperloglog import HyperLogLog
from shared.wire import format_time

DWELL_BOUNDS = (60, 120, 300, 600, 1200, 1800, 3600, 7200)  # seconds; a last bucket holds longer visits


def wire_time(at: float) -> str:
    """Epoch seconds in the wire's timestamp form (UTC, milliseconds)."""
    return format_time(datetime.fromtimestamp(at, UTC))


@dataclass(slots=True)
class ZoneTally:
    """Dwell and visitors of one zone in one hour."""

    sketch: HyperLogLog
    dwell_s: float = 0.0
    visits: int = 0


@dataclass(slots=True)
class HourBucket:
    """Everything counted for one local clock hour."""

    start: float
    end: float
    precision: int
    sightings: int = 0
    devices: HyperLogLog = field(init=False)
    randomized_devices: HyperLogLog = field(init=False)
    passers_by: HyperLogLog = field(init=False)
    passes: int = 0
    visitors: HyperLogLog = field(init=False)
    visits: int = 0
    repeat_visits: int = 0
    randomized_visits: int = 0
    dwell_counts: list[int] = field(default_factory=lambda: [0] * (len(DWELL_BOUNDS) + 1))
    dwell_total_s: float = 0.0
    dwell_visits: int = 0
    zones: dict[str, ZoneTally] = field(default_factory=dict)

    def __post_init__(self) -> None:
        p = self.precision
        self.devices = HyperLogLog(p)
        self.randomized_devices = HyperLogLog(p)
        self.passers_by = HyperLogLog(p)
        self.visitors = HyperLogLog(p)

    def add_dwell(self, seconds: float, zones: tuple[tuple[str, float], ...], device_hash: int) -> None:
        """Count one finished visit's dwell, overall and per zone."""
        index = 0
        while index < len(DWELL_BOUNDS) and seconds >= DWELL_BOUNDS[index]:
            index += 1
        self.dwell_counts[index] += 1
        self.dwell_total_s += seconds
        self.dwell_visits += 1
        for zone, zone_seconds in zones:
            tally = self.zones.get(zone)
            if tally is None:
                tally = self.zones[zone] = ZoneTally(HyperLogLog(self.precision))
            tally.dwell_s += zone_seconds
            tally.visits += 1
            tally.sketch.add_hash(device_hash)

    def payload(self, calendar: StoreCalendar, medium: str) -> dict[str, Any]:
        """The ``presence.aggregate`` payload of this hour."""
        return {
            "medium": medium,
            "hour_start": calendar.local(self.start).isoformat(),
            "hour_end": calendar.local(self.end).isoformat(),
            "sightings": self.sightings,
            "devices": self.devices.to_wire(),
            "randomized_devices": self.randomized_devices.to_wire(),
            "passers_by": {"passes": self.passes, "devices": self.passers_by.to_wire()},
            "visitors": {
                "visits": self.visits,
                "repeat_visits": self.repeat_visits,
                "randomized_visits": self.randomized_visits,
                "devices": self.visitors.to_wire(),
            },
            "dwell": {
                "bounds_s": list(DWELL_BOUNDS),
                "counts": list(self.dwell_counts),
                "visits": self.dwell_visits,
                "total_s": round(self.dwell_total_s, 1),
            },
            "zones": {
                zone: {"dwell_s": round(t.dwell_s, 1), "visits": t.visits, "devices": t.sketch.to_wire()}
                for zone, t in sorted(self.zones.items())
            },
        }
