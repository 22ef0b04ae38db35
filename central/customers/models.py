"""Customer facts: purchases taken from till receipts."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from central.models import Base, BigId, Money, UTCDateTime


class Receipt(Base):
    """A till receipt taken from a ``pos.receipt`` event, linked to a customer when one was named."""

    __tablename__ = "receipts"

    # event_pk and customer_id are references without FOREIGN KEY constraints: both are written by
    # the ingest transaction that creates their targets, events and customers are never deleted (a
    # merged customer stays), and on PostgreSQL the two per-row checks cost as much as the insert.
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_pk: Mapped[int] = mapped_column(BigInteger, unique=True)
    device_id: Mapped[str] = mapped_column(String(64))
    store_id: Mapped[str] = mapped_column(String(32))
    receipt_no: Mapped[str] = mapped_column(String(64))
    total: Mapped[Decimal] = mapped_column(Money)
    observed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    customer_id: Mapped[int | None] = mapped_column(Integer, index=True)
