"""Consent tables: every decision a customer took, from any source, kept whole (never updated).

The current answer for a customer, purpose and channel is derived from these rows when asked
(:mod:`central.customers.consent_gate`): the latest decision by observed time wins, so duplicates
and late or reordered deliveries cannot change it, and merges and splits need no copying.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from central.models import Base, BigId, UTCDateTime

ALL_CHANNELS = "all"
"""``consent_decisions.channel`` of a decision that covers every channel."""
GUARDIAN = "guardian"
"""``scope`` of a decision taken by a minor's guardian: the only kind of grant a minor's consent needs."""


class ConsentDecision(Base):
    """One consent given or withdrawn, by one event or one console/API call.

    ``customer_id`` is the customer the decision was recorded for; when it came with an event,
    ``event_pk`` lets it follow that event's owner through later merges and splits.
    ``(origin, origin_id)`` names the decision once and for all: an agent's or source's device id
    and event id, or ``console``/``api`` and the id given to (or chosen for) the call.
    """

    __tablename__ = "consent_decisions"
    __table_args__ = (
        UniqueConstraint("origin", "origin_id"),
        Index("ix_consent_decisions_customer_id_purpose", "customer_id", "purpose"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    customer_id: Mapped[int] = mapped_column(Integer)
    event_pk: Mapped[int | None] = mapped_column(BigInteger, index=True)
    purpose: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(16))
    granted: Mapped[bool] = mapped_column(Boolean)
    observed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    source: Mapped[str] = mapped_column(String(16))
    notice_version: Mapped[str] = mapped_column(String(32))
    scope: Mapped[str] = mapped_column(String(64))
    origin: Mapped[str] = mapped_column(String(64))
    origin_id: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str | None] = mapped_column(String(128))
