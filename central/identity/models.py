"""Identity tables: customers, the identifiers that name them, and the merge ledger."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from central.models import Base, Money, UTCDateTime


class Customer(Base):
    """One person as far as central can tell; a merged-away row stays, pointing at its survivor."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    receipts_count: Mapped[int] = mapped_column(Integer, default=0)
    total_spent: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    merged_into: Mapped[int | None] = mapped_column(Integer, ForeignKey("customers.id"))


class Identifier(Base):
    """A normalized phone or member card that belongs to exactly one customer."""

    __tablename__ = "identifiers"
    __table_args__ = (UniqueConstraint("kind", "value"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[int] = mapped_column(Integer, ForeignKey("customers.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class MergeLedger(Base):
    """Append-only record of every merge, so that a merge can be explained and later undone."""

    __tablename__ = "merge_ledger"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    kept_customer_id: Mapped[int] = mapped_column(Integer, ForeignKey("customers.id"))
    merged_customer_id: Mapped[int] = mapped_column(Integer, ForeignKey("customers.id"))
    reason: Mapped[str] = mapped_column(Text)
    event_id: Mapped[str | None] = mapped_column(String(36))
