"""Coupon tables: campaigns, issued codes, applied redemptions, and redemptions flagged for review."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from central.models import Base, BigId, Money, UTCDateTime

_REVOKED = text("revoked_at IS NOT NULL")


class CouponCampaign(Base):
    """A coupon campaign: its value, validity, how often it may be redeemed in all and offline per store.

    ``redeemed`` counts the redemptions applied; a conditional update keeps it at most
    ``max_redemptions``. ``stores`` is None for every store, or the list of store ids it runs in.
    """

    __tablename__ = "coupon_campaigns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    value: Mapped[Decimal] = mapped_column(Money)
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime)
    valid_to: Mapped[datetime] = mapped_column(UTCDateTime)
    max_redemptions: Mapped[int] = mapped_column(BigInteger)
    redeemed: Mapped[int] = mapped_column(BigInteger, default=0)
    offline_budget: Mapped[int] = mapped_column(Integer)
    stores: Mapped[list[str] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(128))


class CouponCode(Base):
    """An issued code: its serial (signed into the code), campaign, and member if it was claimed by one."""

    __tablename__ = "coupon_codes"
    # The unique index also counts each campaign's codes for the liability, and the partial one its
    # revoked codes (central.campaigns.liability), without reading the table.
    __table_args__ = (
        UniqueConstraint("campaign_id", "member_id"),
        Index("ix_coupon_codes_revoked", "campaign_id", postgresql_where=_REVOKED, sqlite_where=_REVOKED),
    )

    serial: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(Integer, ForeignKey("coupon_campaigns.id"))
    member_id: Mapped[str | None] = mapped_column(String(64))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CouponRedemption(Base):
    """A code's one redemption: UNIQUE(serial) is what makes a single-use code redeemable once.

    ``status`` is ``applied`` (counted in the campaign) or ``over_limit`` (the campaign was full when
    it arrived; a conflict row flags it for review).
    """

    __tablename__ = "coupon_redemptions"
    # The campaign pages count each campaign's applied redemptions from the first index alone, and
    # the applied ones in a period (central.campaigns.liability) from the second.
    __table_args__ = (
        Index("ix_coupon_redemptions_campaign_id_status", "campaign_id", "status"),
        Index("ix_coupon_redemptions_status_observed_at", "status", "observed_at", "campaign_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    serial: Mapped[int] = mapped_column(BigInteger, unique=True)
    campaign_id: Mapped[int] = mapped_column(Integer)  # ix_coupon_redemptions_campaign_id_status serves it
    event_pk: Mapped[int] = mapped_column(BigInteger)
    device_id: Mapped[str] = mapped_column(String(64))
    store_id: Mapped[str] = mapped_column(String(32))
    observed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    applied_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16))


class CouponConflict(Base):
    """A redemption central did not accept as it came: flagged for review with the event it came in.

    ``kind``: ``double_redemption`` (the code was already redeemed), ``over_redemption`` (the
    campaign was full), ``forged``, ``unknown_code``, ``revoked``, ``outside_validity``.
    """

    __tablename__ = "coupon_conflicts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    campaign_id: Mapped[int | None] = mapped_column(Integer, index=True)
    serial: Mapped[int | None] = mapped_column(BigInteger, index=True)
    event_pk: Mapped[int] = mapped_column(BigInteger)
    device_id: Mapped[str] = mapped_column(String(64))
    store_id: Mapped[str] = mapped_column(String(32))
    observed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    flagged_at: Mapped[datetime] = mapped_column(UTCDateTime)
    detail: Mapped[str] = mapped_column(String(255))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_by: Mapped[str | None] = mapped_column(String(128))
    resolution: Mapped[str | None] = mapped_column(String(255))
