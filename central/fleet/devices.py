"""What central knows of each enrolled agent (the fleet view), and revoking or retiring one.

A device's fleet state is, in this order: ``revoked`` or ``retired`` (its status), ``offline`` (no
heartbeat for ``fleet.offline_after`` seconds, or never), ``degraded`` (its newest heartbeat says so:
``health.state == "degraded"`` or ``health.degraded == true``), else ``healthy``. Apart from its
state, a device shows the settings of central's downlink it ignores (``settings_ignored``: each
name with a reason code from :data:`shared.agent_settings.IGNORED_REASONS`, never the value).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from central import audit
from central.db import rows_changed
from central.fleet.models import Device
from shared.agent_settings import ignored_settings_report
from shared.wire import format_time

STATES = ("healthy", "degraded", "offline", "retired", "revoked")
# Which status may follow which: revoked is final, a retired PC may still be revoked (say it was stolen).
_ALLOWED = {"revoked": ("active", "retired"), "retired": ("active",)}


class DeviceError(ValueError):
    """A device that does not exist or cannot take the requested status; the message says which.

    ``reason`` is a stable code (``unknown_device``, ``bad_transition``, ``device_changed``) and
    ``status`` the device's status when that was what stood in the way: the console words it from them.
    """

    def __init__(self, message: str, reason: str, status: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else format_time(moment)


def fleet_state(
    status: str, heartbeat_at: datetime | None, heartbeat: dict[str, Any] | None, offline_at: datetime
) -> str:
    """The device's state in the fleet view (see the module docstring); ``offline_at`` is now minus the limit."""
    if status in ("revoked", "retired"):
        return status
    if heartbeat_at is None or heartbeat_at < offline_at:
        return "offline"
    health = (heartbeat or {}).get("health")
    if isinstance(health, dict) and (health.get("state") == "degraded" or health.get("degraded") is True):
        return "degraded"
    return "healthy"


@dataclass(frozen=True, slots=True)
class DeviceSummary:
    """An enrolled agent, its fleet state, and when central last heard from it."""

    device_id: str
    store_id: str
    hostname: str
    agent_version: str
    status: str
    state: str
    enrolled_at: datetime
    last_seen_at: datetime | None
    heartbeat_at: datetime | None
    last_seq: int | None
    last_heartbeat: dict[str, Any] | None
    status_changed_at: datetime | None
    status_reason: str

    @property
    def health(self) -> dict[str, Any] | None:
        """The health object of the newest heartbeat, if it had one."""
        value = (self.last_heartbeat or {}).get("health")
        return value if isinstance(value, dict) else None

    @property
    def settings_ignored(self) -> dict[str, str]:
        """Central's settings the agent said at its newest heartbeat it does not apply: {name: reason code}.

        Read from ``health.settings_ignored`` (agents of earlier releases send none: empty), bounded
        and checked as the agent bounds it, so a heartbeat can show nothing else here.
        """
        value = (self.health or {}).get("settings_ignored")
        return ignored_settings_report(value) if isinstance(value, dict) else {}

    def to_json(self) -> dict[str, Any]:
        beat = self.last_heartbeat or {}
        return {
            "device_id": self.device_id,
            "store_id": self.store_id,
            "hostname": self.hostname,
            "agent_version": self.agent_version,
            "status": self.status,
            "state": self.state,
            "enrolled_at": _time(self.enrolled_at),
            "last_seen_at": _time(self.last_seen_at),
            "heartbeat_at": _time(self.heartbeat_at),
            "last_seq": self.last_seq,
            "health": self.health,
            "sources": beat.get("sources"),
            "downlink_version": beat.get("downlink_version"),
            "settings_ignored": self.settings_ignored,
            "last_heartbeat": self.last_heartbeat,
            "status_changed_at": _time(self.status_changed_at),
            "status_reason": self.status_reason,
        }


def summary(d: Device, offline_at: datetime) -> DeviceSummary:
    """A device row as the fleet view shows it."""
    return DeviceSummary(
        device_id=d.device_id,
        store_id=d.store_id,
        hostname=d.hostname,
        agent_version=d.agent_version,
        status=d.status,
        state=fleet_state(d.status, d.heartbeat_at, d.last_heartbeat, offline_at),
        enrolled_at=d.enrolled_at,
        last_seen_at=d.last_seen_at,
        heartbeat_at=d.heartbeat_at,
        last_seq=d.last_seq,
        last_heartbeat=d.last_heartbeat,
        status_changed_at=d.status_changed_at,
        status_reason=d.status_reason,
    )


def list_devices(
    db: Session, now: datetime, offline_after: float = 300.0, *, state: str | None = None
) -> list[DeviceSummary]:
    """Every enrolled device with its fleet state (optionally only those in ``state``), by store then id."""
    offline_at = now - timedelta(seconds=offline_after)
    out = []
    for d in db.scalars(select(Device).order_by(Device.store_id, Device.device_id)):
        found = summary(d, offline_at)
        if state is None or found.state == state:
            out.append(found)
    return out


def set_status(db: Session, device_id: str, status: str, *, reason: str, now: datetime, actor: str) -> str:
    """Revoke or retire a device; return its previous status. The caller commits.

    Takes effect on the device's next request on every central instance: authentication reads the
    status from the database each time.
    """
    allowed_from = _ALLOWED[status]
    previous = db.scalar(select(Device.status).where(Device.device_id == device_id))
    if previous is None:
        raise DeviceError(f"no device {device_id!r} (list them with `central-server devices`)", "unknown_device")
    if previous == status:
        return previous
    if previous not in allowed_from:
        raise DeviceError(f"device {device_id} is {previous}; it cannot become {status}", "bad_transition", previous)
    changed = rows_changed(
        db.execute(
            update(Device)
            .where(Device.device_id == device_id, Device.status == previous)
            .values(status=status, status_changed_at=now, status_reason=reason[:255])
        )
    )
    if changed != 1:
        raise DeviceError(f"device {device_id} changed while it was being updated; try again", "device_changed")
    audit.record(
        db,
        at=now,
        actor=actor,
        action=f"device.{'revoke' if status == 'revoked' else 'retire'}",
        subject=device_id,
        detail={"previous": previous, "reason": reason[:255]},
    )
    return previous


def rotate_key(db: Session, device_id: str, public_key: str, *, now: datetime) -> bool:
    """Register a new public key for an active device; False if it already was its key. The caller commits."""
    current = db.scalar(select(Device.public_key).where(Device.device_id == device_id, Device.status == "active"))
    if current is None:
        raise DeviceError(f"no active device {device_id!r}", "unknown_device")
    if current == public_key:
        return False
    db.execute(
        update(Device)
        .where(Device.device_id == device_id, Device.status == "active")
        .values(public_key=public_key, key_rotated_at=now)
    )
    audit.record(
        db,
        at=now,
        actor=f"device:{device_id}",
        action="device.rotate_key",
        subject=device_id,
        detail={"previous_key_sha256_prefix": _fingerprint(current), "new_key_sha256_prefix": _fingerprint(public_key)},
    )
    return True


def _fingerprint(public_key: str) -> str:
    return hashlib.sha256(public_key.encode("ascii")).hexdigest()[:16]
