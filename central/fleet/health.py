"""What a device's newest heartbeat says about it, and the fleet listed a page at a time.

The agent's heartbeat (``edge_agent.agent.Agent.health``) carries ``outbox.pending``, a flat
``health`` snapshot (``queue_depth``, ``oldest_unsent_age_s``, ``clock_offset_s``,
``downlink_version``, ``state``, ``settings_ignored``) and ``sources``: ``{name: {"state": ..., ...}}`` (the till's
entry holds one object per scanner instead). The first release sent ``outbox`` and a top-level
``downlink_version`` only; every reading falls back to those.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from central.fleet.devices import DeviceSummary, summary
from central.fleet.models import Device
from shared.agent_settings import ignored_settings_report
from shared.wire import parse_time

PAGE = 50
# The fleet states in which the newest heartbeat still tells how the device is now; in the others
# (offline, retired, revoked) it only tells how it was when it last reported.
CURRENT_STATES = ("healthy", "degraded")


def _health(beat: dict[str, Any]) -> dict[str, Any]:
    value = beat.get("health")
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def queue_depth(beat: dict[str, Any] | None) -> int | None:
    """Events waiting in the agent's outbox at its last heartbeat, if it said."""
    beat = beat or {}
    depth = _number(_health(beat).get("queue_depth"))
    outbox = beat.get("outbox")
    if depth is None and isinstance(outbox, dict):
        depth = _number(outbox.get("pending"))
    return None if depth is None else int(depth)


def oldest_unsent_s(beat: dict[str, Any] | None) -> float | None:
    """Age in seconds of the oldest event not yet delivered, at the last heartbeat."""
    return _number(_health(beat or {}).get("oldest_unsent_age_s"))


def clock_offset_s(beat: dict[str, Any] | None) -> float | None:
    """Central's clock minus the store PC's, in seconds, as the agent measured it."""
    return _number(_health(beat or {}).get("clock_offset_s"))


def downlink_version(beat: dict[str, Any] | None) -> int | None:
    """The downlink version the agent had applied at its last heartbeat."""
    beat = beat or {}
    version = _number(_health(beat).get("downlink_version"))
    if version is None:
        version = _number(beat.get("downlink_version"))
    return None if version is None else int(version)


def source_states(beat: dict[str, Any] | None) -> list[tuple[str, str]]:
    """Each source's name and state (a till's scanners each under ``till/<scanner>``), by name."""
    sources = (beat or {}).get("sources")
    out: list[tuple[str, str]] = []
    if not isinstance(sources, dict):
        return out
    for name, report in sorted(sources.items()):
        if not isinstance(report, dict):
            continue
        if isinstance(report.get("state"), str):
            out.append((name, report["state"]))
            continue
        for part, sub in sorted(report.items()):
            if isinstance(sub, dict) and isinstance(sub.get("state"), str):
                out.append((f"{name}/{part}", sub["state"]))
    return out


def snapshot_figures(beat: dict[str, Any] | None) -> list[tuple[str, Any]]:
    """Every flat figure of the heartbeat's health snapshot, by key; a time (``last_sync_at``) as a datetime;
    the settings the agent ignores (``settings_ignored``) as one figure, ``name (reason code), ...``.

    The agent writes times as the wire does (``2026-11-23T01:59:30.250Z``); one that does not parse
    is kept as sent.
    """
    out: list[tuple[str, Any]] = []
    for key, value in sorted(_health(beat or {}).items()):
        if key == "settings_ignored" and isinstance(value, dict):
            # One figure: each setting with its reason code, as `edge-agent status` shows them; none: no line.
            ignored = ignored_settings_report(value)
            if ignored:
                out.append((key, ", ".join(f"{name} ({code})" for name, code in ignored.items())))
            continue
        if isinstance(value, dict | list):
            continue
        if key.endswith("_at") and isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = parse_time(value)
        out.append((key, value))
    return out


@dataclass(frozen=True, slots=True)
class Readings:
    """The figures the fleet table shows for one device."""

    version: str
    queue_depth: int | None
    oldest_unsent_s: float | None
    clock_offset_s: float | None
    downlink_version: int | None
    sources: list[tuple[str, str]]
    stale: bool
    """The heartbeat is the last one the device sent before it went offline or out of service, not its present state."""


def readings(device: DeviceSummary) -> Readings:
    """Everything the console shows of one device's newest heartbeat."""
    beat = device.last_heartbeat
    reported = (beat or {}).get("agent_version")
    return Readings(
        reported if isinstance(reported, str) and reported else device.agent_version,
        queue_depth(beat),
        oldest_unsent_s(beat),
        clock_offset_s(beat),
        downlink_version(beat),
        source_states(beat),
        beat is not None and device.state not in CURRENT_STATES,
    )


@dataclass(frozen=True, slots=True)
class Page:
    """One page of the fleet, and the cursor of the next (None on the last page)."""

    devices: list[DeviceSummary]
    next_after: tuple[str, str] | None


def page_devices(
    db: Session,
    now: datetime,
    offline_after: float,
    *,
    after: tuple[str, str] | None = None,
    stores: Collection[str] | None = None,
    limit: int = PAGE,
) -> Page:
    """Devices by (store, device id) after the cursor ``after``, at most ``limit``; only ``stores`` if given."""
    query = select(Device).order_by(Device.store_id, Device.device_id).limit(limit + 1)
    if after is not None:
        query = query.where(tuple_(Device.store_id, Device.device_id) > tuple_(*after))
    if stores is not None:
        query = query.where(Device.store_id.in_(sorted(stores)))
    rows = list(db.scalars(query))
    more = len(rows) > limit
    rows = rows[:limit]
    offline_at = now - timedelta(seconds=offline_after)
    devices = [summary(d, offline_at) for d in rows]
    return Page(devices, (rows[-1].store_id, rows[-1].device_id) if more and rows else None)


def find_device(db: Session, device_id: str, now: datetime, offline_after: float) -> DeviceSummary | None:
    """One device with its fleet state, or None."""
    row = db.scalars(select(Device).where(Device.device_id == device_id)).first()
    return None if row is None else summary(row, now - timedelta(seconds=offline_after))
