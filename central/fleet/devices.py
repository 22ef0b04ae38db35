"""What central knows of each enrolled agent, for the API and the console."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from central.fleet.models import Device
from shared.wire import format_time


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else format_time(moment)


@dataclass(frozen=True, slots=True)
class DeviceSummary:
    """An enrolled agent and when central last heard from it."""

    device_id: str
    store_id: str
    hostname: str
    agent_version: str
    status: str
    enrolled_at: datetime
    last_seen_at: datetime | None
    last_seq: int | None
    last_heartbeat: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "store_id": self.store_id,
            "hostname": self.hostname,
            "agent_version": self.agent_version,
            "status": self.status,
            "enrolled_at": _time(self.enrolled_at),
            "last_seen_at": _time(self.last_seen_at),
            "last_seq": self.last_seq,
            "last_heartbeat": self.last_heartbeat,
        }


def list_devices(db: Session) -> list[DeviceSummary]:
    """Every enrolled device, by store then device id."""
    devices = db.scalars(select(Device).order_by(Device.store_id, Device.device_id))
    return [
        DeviceSummary(
            device_id=d.device_id,
            store_id=d.store_id,
            hostname=d.hostname,
            agent_version=d.agent_version,
            status=d.status,
            enrolled_at=d.enrolled_at,
            last_seen_at=d.last_seen_at,
            last_seq=d.last_seq,
            last_heartbeat=d.last_heartbeat,
        )
        for d in devices
    ]
