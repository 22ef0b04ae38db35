"""Freshly accepted ``presence.visit`` and ``presence.aggregate`` events become presence rows.

Called by batch ingest inside the batch's transaction, with only the events it actually inserted,
so a replayed batch adds no row twice. The payloads were already cleaned against their schemas.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Connection

from central import bulk
from central.models import table
from central.presence.models import PresenceHour, PresenceVisit
from shared import wire

KINDS = frozenset({"presence.visit", "presence.aggregate"})
_visits = table(PresenceVisit)
_hours = table(PresenceHour)
_VISIT_COLUMNS = (
    "event_pk",
    "store_id",
    "device_id",
    "medium",
    "started_at",
    "ended_at",
    "dwell_s",
    "repeat",
    "zones",
    "customer_id",
)
_HOUR_COLUMNS = (
    "event_pk",
    "store_id",
    "device_id",
    "medium",
    "hour_start",
    "hour_local",
    "sightings",
    "passes",
    "visits",
    "repeat_visits",
    "randomized_visits",
    "dwell_total_s",
    "dwell_visits",
    "dwell_bounds",
    "dwell_counts",
    "sketches",
    "zones",
)
_EMPTY: dict[str, Any] = {}


def _time(text: str) -> datetime | None:
    try:
        return wire.parse_time(text).astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def presence_problem(kind: str, payload: dict[str, Any]) -> str | None:
    """Why central cannot store a presence event the schema accepted (unreadable times), or None."""
    if kind == "presence.visit":
        names = ("started_at", "ended_at")
    elif kind == "presence.aggregate":
        names = ("hour_start", "hour_end")
    else:
        return None
    for name in names:
        if _time(payload[name]) is None:
            return f"invalid_payload:{name}"
    return None


def store_presence(
    conn: Connection,
    device_id: str,
    events: Sequence[tuple[int, str, str, dict[str, Any]]],
    customers: Mapping[int, int] | None = None,
) -> None:
    """Store ``(event pk, kind, store id, payload)`` presence events as visits and hours.

    ``customers`` names, by event pk, the member visits that may be attached to a customer
    (central.presence.beacons decided it under location consent); every other visit stays anonymous.
    """
    attached = customers or {}
    visits: list[tuple[Any, ...]] = []
    hours: list[tuple[Any, ...]] = []
    for pk, kind, store_id, p in events:
        medium = p.get("medium", "")
        if kind == "presence.visit":
            visits.append(
                (
                    pk,
                    store_id,
                    device_id,
                    medium,
                    _time(p["started_at"]),
                    _time(p["ended_at"]),
                    float(p["dwell_s"]),
                    bool(p.get("repeat", False)),
                    p.get("zones", []),
                    attached.get(pk),
                )
            )
        elif kind == "presence.aggregate":
            passers = p.get("passers_by", _EMPTY)
            visitors = p.get("visitors", _EMPTY)
            dwell = p.get("dwell", _EMPTY)
            sketches = {
                "devices": p.get("devices"),
                "randomized_devices": p.get("randomized_devices"),
                "passers_by": passers.get("devices"),
                "visitors": visitors.get("devices"),
            }
            hours.append(
                (
                    pk,
                    store_id,
                    device_id,
                    medium,
                    _time(p["hour_start"]),
                    p["hour_start"],
                    p.get("sightings", 0),
                    passers.get("passes", 0),
                    visitors.get("visits", 0),
                    visitors.get("repeat_visits", 0),
                    visitors.get("randomized_visits", 0),
                    float(dwell.get("total_s", 0.0)),
                    dwell.get("visits", 0),
                    dwell.get("bounds_s", []),
                    dwell.get("counts", []),
                    {k: v for k, v in sketches.items() if v is not None},
                    p.get("zones", {}),
                )
            )
    bulk.insert(conn, _visits, _VISIT_COLUMNS, visits)
    bulk.insert(conn, _hours, _HOUR_COLUMNS, hours)
