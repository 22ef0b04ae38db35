"""Privacy tables: erasures done, the keyed hashes of the identifiers they removed, and the key of those hashes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ColumnElement, ForeignKey, Integer, String, UniqueConstraint, exists
from sqlalchemy.orm import Mapped, QueryableAttribute, mapped_column

from central.models import Base, UTCDateTime


class Erasure(Base):
    """One customer erased: when, by whom, why (a ticket, not the person), and the rows changed per table.

    Written in the transaction that erases, so its presence means the erasure is complete.
    """

    __tablename__ = "erasures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(Integer, unique=True)
    erased_at: Mapped[datetime] = mapped_column(UTCDateTime)
    operator: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(String(500))
    counts: Mapped[dict[str, Any]] = mapped_column(JSON)


class ErasedIdentifier(Base):
    """An identifier of an erased customer, kept only as a keyed hash: evidence observed before
    ``erased_at`` that names it links nothing, so a store's late upload cannot bring the person back."""

    __tablename__ = "erased_identifiers"
    __table_args__ = (UniqueConstraint("digest", "erasure_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Found by the unique (digest, erasure_id) index, whose first column it is.
    digest: Mapped[str] = mapped_column(String(64))
    erasure_id: Mapped[int] = mapped_column(Integer, ForeignKey("erasures.id"))
    erased_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ErasureKey(Base):
    """The one key the identifier hashes of erasures are made with, drawn at random at the first erasure."""

    __tablename__ = "erasure_key"
    __table_args__ = (CheckConstraint("id = 1", name="one_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    key: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


def not_erased(customer_id: ColumnElement[int] | QueryableAttribute[int]) -> ColumnElement[bool]:
    """True for a customer no erasure names: lists and exports show live customers that are not erased."""
    return ~exists().where(Erasure.customer_id == customer_id)
