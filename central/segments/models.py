"""Segment tables: the saved rules, the members at the last evaluation, and every entry and exit."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from central.models import Base, BigId, UTCDateTime

# segment_membership_events.change
ENTERED = "entered"
LEFT = "left"


class Segment(Base):
    """A saved segment: its rule, version and fingerprint, channel, webhook target and last evaluation.

    ``version`` moves on only when the rule's meaning changes (its fingerprint); ``evaluated_version``
    is the version the members in ``segment_members`` were computed with.
    """

    __tablename__ = "segments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(String(500))
    rule: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(80))
    version: Mapped[int] = mapped_column(Integer)
    purpose: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(16))
    webhook_url: Mapped[str | None] = mapped_column(String(2048))
    webhook_secret: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(128))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_by: Mapped[str] = mapped_column(String(128))
    evaluated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    evaluated_version: Mapped[int | None] = mapped_column(Integer)
    members: Mapped[int] = mapped_column(Integer)


class SegmentMember(Base):
    """A customer in a segment at its last evaluation, and since when."""

    __tablename__ = "segment_members"

    segment_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entered_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SegmentMembershipEvent(Base):
    """A customer entering or leaving a segment at an evaluation (append-only history)."""

    __tablename__ = "segment_membership_events"
    __table_args__ = (Index("ix_segment_membership_events_segment_id_id", "segment_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    segment_id: Mapped[int] = mapped_column(Integer)
    customer_id: Mapped[int] = mapped_column(Integer, index=True)
    change: Mapped[str] = mapped_column(String(8))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer)
