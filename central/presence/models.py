"""Presence tables: each agent's visits and hourly aggregates, as the agents sent them.

One row per ``presence.aggregate`` event. An agent restarted within an hour sends that hour in two
parts, and several agents may cover one store, so the API sums counts and merges the HyperLogLog
sketches of every row of a store and hour; nothing here is ever a device identifier.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from central.models import Base, BigId, UTCDateTime


class PresenceVisit(Base):
    """One visit of a device with a global address (randomized ones only count in the hours)."""

    __tablename__ = "presence_visits"
    __table_args__ = (
        Index("ix_presence_visits_store_id_started_at", "store_id", "started_at"),
        # A customer's visits, for the console's customer timeline.
        Index("ix_presence_visits_customer_id_started_at", "customer_id", "started_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_pk: Mapped[int] = mapped_column(BigId, ForeignKey("events.id"), unique=True)
    store_id: Mapped[str] = mapped_column(String(32))
    device_id: Mapped[str] = mapped_column(String(64))
    medium: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime] = mapped_column(UTCDateTime)
    dwell_s: Mapped[float] = mapped_column(Float)
    repeat: Mapped[bool] = mapped_column(Boolean)
    zones: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    # The member whose app beacon made this visit, for members whose location consent is on; set
    # only by that route (never by linking addresses), NULL for every anonymous visit.
    customer_id: Mapped[int | None] = mapped_column(Integer)


class PresenceHour(Base):
    """One agent's ``presence.aggregate`` for one local clock hour (or part of one)."""

    __tablename__ = "presence_hours"
    __table_args__ = (Index("ix_presence_hours_store_id_hour_start", "store_id", "hour_start"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_pk: Mapped[int] = mapped_column(BigId, ForeignKey("events.id"), unique=True)
    store_id: Mapped[str] = mapped_column(String(32))
    device_id: Mapped[str] = mapped_column(String(64))
    medium: Mapped[str] = mapped_column(String(16))
    hour_start: Mapped[datetime] = mapped_column(UTCDateTime)
    hour_local: Mapped[str] = mapped_column(String(40))  # the store's local hour start, with its offset
    sightings: Mapped[int] = mapped_column(Integer)
    passes: Mapped[int] = mapped_column(Integer)
    visits: Mapped[int] = mapped_column(Integer)
    repeat_visits: Mapped[int] = mapped_column(Integer)
    randomized_visits: Mapped[int] = mapped_column(Integer)
    dwell_total_s: Mapped[float] = mapped_column(Float)
    dwell_visits: Mapped[int] = mapped_column(Integer)
    dwell_bounds: Mapped[list[int]] = mapped_column(JSON)
    dwell_counts: Mapped[list[int]] = mapped_column(JSON)
    # {"devices", "randomized_devices", "passers_by", "visitors": sketch} and "zones": {zone: {...}}
    sketches: Mapped[dict[str, Any]] = mapped_column(JSON)
    zones: Mapped[dict[str, Any]] = mapped_column(JSON)
