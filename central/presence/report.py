"""Footfall, capture rate, dwell distribution and zone heat per store and hour, merged across agents.

Rows of one store, medium and hour (several agents, or one agent's hour sent in parts around a
restart) are combined: counts are summed, HyperLogLog sketches are merged, so a device heard by
two agents of the store is counted once (when they share the store's presence secret, decision
0045). Wi-Fi and BLE are reported apart: the same phone has unrelated pseudonyms on each.

* ``visitors``: distinct devices that came in (merged sketch); ``visits``: visits counted.
* ``passers_by``: distinct devices heard that never came in.
* ``capture_rate``: visitors / (visitors + passers-by), the share of the passing traffic that came in.
* ``dwell``: visits per dwell bucket (``bounds_s`` are the bucket edges), their mean.
* ``zones``: per zone, seconds spent, visits and distinct visitors (heat).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from central.presence.models import PresenceHour
from shared.hyperloglog import HyperLogLog, SketchError

SKETCHES = ("devices", "randomized_devices", "passers_by", "visitors")


@dataclass
class _Zone:
    dwell_s: float = 0.0
    visits: int = 0
    sketch: HyperLogLog | None = None


@dataclass
class HourFigures:
    """One store's figures for one medium and hour (or, for totals, a whole period)."""

    medium: str
    hour_start: str = ""
    agents: set[str] = field(default_factory=set)
    sightings: int = 0
    passes: int = 0
    visits: int = 0
    repeat_visits: int = 0
    randomized_visits: int = 0
    dwell_total_s: float = 0.0
    dwell_visits: int = 0
    dwell_bounds: list[int] = field(default_factory=list)
    dwell_counts: list[int] = field(default_factory=list)
    sketches: dict[str, HyperLogLog] = field(default_factory=dict)
    zones: dict[str, _Zone] = field(default_factory=dict)
    bad_sketches: int = 0

    def _merge_sketch(self, target: dict[str, HyperLogLog], name: str, wire: Any) -> None:
        if wire is None:
            return
        try:
            sketch = HyperLogLog.from_wire(wire)
        except SketchError:
            self.bad_sketches += 1
            return
        mine = target.get(name)
        if mine is None:
            target[name] = sketch
        elif mine.p == sketch.p:
            mine.merge(sketch)
        else:
            self.bad_sketches += 1

    def add(self, row: PresenceHour) -> None:
        """Fold one stored row in."""
        self.agents.add(row.device_id)
        self.sightings += row.sightings
        self.passes += row.passes
        self.visits += row.visits
        self.repeat_visits += row.repeat_visits
        self.randomized_visits += row.randomized_visits
        self.dwell_total_s += row.dwell_total_s
        self.dwell_visits += row.dwell_visits
        if not self.dwell_bounds:
            self.dwell_bounds = list(row.dwell_bounds)
            self.dwell_counts = [0] * len(row.dwell_counts)
        if list(row.dwell_bounds) == self.dwell_bounds and len(row.dwell_counts) == len(self.dwell_counts):
            self.dwell_counts = [a + b for a, b in zip(self.dwell_counts, row.dwell_counts, strict=True)]
        for name in SKETCHES:
            self._merge_sketch(self.sketches, name, row.sketches.get(name))
        for zone, tally in (row.zones or {}).items():
            mine = self.zones.setdefault(zone, _Zone())
            mine.dwell_s += float(tally.get("dwell_s", 0.0))
            mine.visits += int(tally.get("visits", 0))
            holder: dict[str, HyperLogLog] = {} if mine.sketch is None else {"z": mine.sketch}
            self._merge_sketch(holder, "z", tally.get("devices"))
            mine.sketch = holder.get("z")

    def count(self, name: str) -> int:
        """A distinct count from the merged sketch (0 when no agent sent one)."""
        sketch = self.sketches.get(name)
        return 0 if sketch is None else sketch.count()

    def to_json(self) -> dict[str, Any]:
        """The figures as the API answers them."""
        visitors, passers = self.count("visitors"), self.count("passers_by")
        traffic = visitors + passers
        out: dict[str, Any] = {"medium": self.medium}
        if self.hour_start:
            out["hour_start"] = self.hour_start
        out.update(
            {
                "agents": len(self.agents),
                "sightings": self.sightings,
                "devices": self.count("devices"),
                "randomized_devices": self.count("randomized_devices"),
                "visitors": visitors,
                "passers_by": passers,
                "capture_rate": round(visitors / traffic, 4) if traffic else None,
                "visits": self.visits,
                "passes": self.passes,
                "repeat_visits": self.repeat_visits,
                "randomized_visits": self.randomized_visits,
                "dwell": {
                    "bounds_s": self.dwell_bounds,
                    "counts": self.dwell_counts,
                    "visits": self.dwell_visits,
                    "total_s": round(self.dwell_total_s, 1),
                    "mean_s": round(self.dwell_total_s / self.dwell_visits, 1) if self.dwell_visits else None,
                },
                "zones": {
                    zone: {
                        "dwell_s": round(z.dwell_s, 1),
                        "visits": z.visits,
                        "visitors": 0 if z.sketch is None else z.sketch.count(),
                    }
                    for zone, z in sorted(self.zones.items())
                },
            }
        )
        if self.bad_sketches:
            out["unreadable_sketches"] = self.bad_sketches
        return out


def summarize(rows: Iterable[PresenceHour]) -> dict[str, Any]:
    """Per medium and hour, and per medium over the whole period, from a store's stored rows."""
    hours: dict[tuple[str, datetime], HourFigures] = {}
    totals: dict[str, HourFigures] = {}
    for row in rows:
        key = (row.medium, row.hour_start)
        figures = hours.get(key)
        if figures is None:
            figures = hours[key] = HourFigures(row.medium, row.hour_local)
        figures.add(row)
        totals.setdefault(row.medium, HourFigures(row.medium)).add(row)
    return {
        "hours": [hours[key].to_json() for key in sorted(hours)],
        "totals": {medium: figures.to_json() for medium, figures in sorted(totals.items())},
    }
