"""Ingest tables: every accepted event, deduplicated forever on (device_id, event_id).

Agents' events are keyed by their device id; events from online sources and backfills by
``source:<name>`` and the source's own event id (up to 64 characters).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from central.models import Base, BigId, UTCDateTime


class Event(Base):
    """Every event ever accepted; ``(device_id, event_id)`` is the permanent dedupe key."""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("device_id", "event_id"),
        Index("ix_events_device_id_seq", "device_id", "seq"),
        # Complaint triggers look up recent complaints; the partial index holds only those events.
        Index(
            "ix_events_complaints",
            "received_at",
            postgresql_where=text("kind = 'service.complaint'"),
            sqlite_where=text("kind = 'service.complaint'"),
        ),
        # The console overview counts new members per store and day from this index alone.
        Index("ix_events_kind_observed_at_store_id", "kind", "observed_at", "store_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # No foreign key to devices: ingest has already authenticated the device, devices are never
    # deleted, and a per-row check would be the costliest part of inserting a batch on PostgreSQL.
    device_id: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(64))
    store_id: Mapped[str] = mapped_column(String(32))
    observed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    batch_id: Mapped[str] = mapped_column(String(36))
    # The identity envelope as sent (raw values; the identifier registry normalizes them).
    identifiers: Mapped[dict[str, str] | None] = mapped_column(JSON(none_as_null=True))
    app_id: Mapped[str | None] = mapped_column(String(64))
    attributes: Mapped[dict[str, str] | None] = mapped_column(JSON(none_as_null=True))
    # Which customer an event belongs to lives in one place, identity's event_customers, which
    # merges and splits keep current.
