"""Campaign tables: triggers, the ledger of occasions they fired on, webhook calls, export rows, issued coupons.

``trigger_occasions`` is what makes firing exactly-once: UNIQUE (trigger_id, customer_id,
occasion), inserted with ``ON CONFLICT DO NOTHING`` in the same transaction that queues the
action. A restart, a second run or a second instance finds the row and does nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from central.models import Base, BigId, UTCDateTime

# trigger_occasions.grp
ACTION = "action"
CONTROL = "control"  # the random control group: recorded, given no action

# webhook_deliveries.status
PENDING = "pending"
DELIVERED = "delivered"
DEAD = "dead"


class Trigger(Base):
    """A declared trigger: when it fires (``kind`` and ``params``) and what it does (``action``)."""

    __tablename__ = "triggers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    action: Mapped[str] = mapped_column(String(32))
    action_params: Mapped[dict[str, Any]] = mapped_column(JSON)
    control_percent: Mapped[float] = mapped_column(Float)
    enabled: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(128))


class TriggerOccasion(Base):
    """A trigger fired for a customer on an occasion (a birthday's year, a first purchase...); never fires twice."""

    __tablename__ = "trigger_occasions"
    # The unique key also serves every lookup by trigger (its prefix) and the anti-join of firing.
    __table_args__ = (
        UniqueConstraint("trigger_id", "customer_id", "occasion"),
        # The campaign pages count each trigger's firings by group, and its last, from this index alone.
        Index("ix_trigger_occasions_trigger_id_grp_fired_at", "trigger_id", "grp", "fired_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    trigger_id: Mapped[int] = mapped_column(Integer)
    customer_id: Mapped[int] = mapped_column(Integer, index=True)
    occasion: Mapped[str] = mapped_column(String(300))
    grp: Mapped[str] = mapped_column(String(8))
    fired_at: Mapped[datetime] = mapped_column(UTCDateTime)
    instance: Mapped[str] = mapped_column(String(128))


class WebhookDelivery(Base):
    """One webhook call: its body, attempts so far, when to try next, and how it ended.

    A call comes from a trigger (``trigger_id``) or carries a chunk of a segment's export (``segment_id``).
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    occasion_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    trigger_id: Mapped[int | None] = mapped_column(Integer)
    segment_id: Mapped[int | None] = mapped_column(Integer)
    url: Mapped[str] = mapped_column(String(2048))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(500))


class ExportEntry(Base):
    """A customer a trigger added to its export list, for marketing to download."""

    __tablename__ = "trigger_exports"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    occasion_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    trigger_id: Mapped[int] = mapped_column(Integer, index=True)
    customer_id: Mapped[int] = mapped_column(Integer)
    occasion: Mapped[str] = mapped_column(String(300))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime)


class TriggerCoupon(Base):
    """The coupon code a trigger's ``coupon`` action issued on an occasion (for the effect report)."""

    __tablename__ = "trigger_coupons"

    occasion_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    trigger_id: Mapped[int] = mapped_column(Integer, index=True)
    customer_id: Mapped[int] = mapped_column(Integer)
    campaign_id: Mapped[int] = mapped_column(Integer)
    serial: Mapped[int] = mapped_column(BigInteger, unique=True)


class ReportSnapshot(Base):
    """A report the console shows, as last computed: a trigger's effect or a coupon campaign's figures by tier.

    Written by the ``reports`` job (and by a console user's "refresh now"), read by the campaign
    pages: computing either report reads every occasion or every code (a third of a second at
    50,000 occasions or 100,000 codes), too slow for each page view. ``figures`` holds the report's
    counts (:mod:`central.campaigns.snapshots`); ``subject_id`` is the trigger's or the campaign's id.
    """

    __tablename__ = "report_snapshots"

    report: Mapped[str] = mapped_column(String(32), primary_key=True)
    subject_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    figures: Mapped[dict[str, Any]] = mapped_column(JSON)
