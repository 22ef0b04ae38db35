"""Identity tables: customers, their identifiers, the append-only ledger, review items and what follows.

``identity_ledger`` is the history every other identity table can be rebuilt from: one row per
link, unlink, merge and un-merge, with the evidence event and who or what caused it.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ColumnElement,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    literal_column,
)
from sqlalchemy.orm import Mapped, mapped_column

from central.models import Base, BigId, Money, UTCDateTime

# identifiers.state
LINKED = "linked"  # belongs to customer_id and links evidence to it
SUSPICIOUS = "suspicious"  # seen with too many customers: links nothing until a reviewer decides
REMOVED = "removed"  # tombstone: removed by an operator, never attached again
TRUSTED = "trusted"  # a reviewer said it is genuine: links, and is not flagged again

# identity_ledger.action
LINK = "link"  # identifier_id now belongs to customer_id (anchor_identifier_id: the evidence it came through)
UNLINK = "unlink"  # identifier_id belongs to nobody (rule: removed, suspicious, reassigned)
MERGE = "merge"  # other_customer_id now lives on as customer_id
UNMERGE = "unmerge"  # other_customer_id is its own customer again (a split)


class Customer(Base):
    """One person as far as central can tell; a merged-away row stays, pointing at its survivor.

    ``merged_into`` always names the live survivor directly (chains are collapsed when merging),
    and ``version`` grows whenever the customer's identifiers change, so that concurrent batches
    notice they decided on a stale picture.
    """

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    receipts_count: Mapped[int] = mapped_column(Integer, default=0)
    total_spent: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    merged_into: Mapped[int | None] = mapped_column(Integer, ForeignKey("customers.id"), index=True)
    version: Mapped[int] = mapped_column(Integer, default=0)


class Identifier(Base):
    """A normalized identifier value; at most one customer holds it at a time."""

    __tablename__ = "identifiers"
    __table_args__ = (UniqueConstraint("kind", "value"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    value: Mapped[str] = mapped_column(String(255))
    customer_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("customers.id"), index=True)
    state: Mapped[str] = mapped_column(String(16), default=LINKED)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # How many identifiers this value brought to its customer, in all and on partners_day (UTC date).
    partners_total: Mapped[int] = mapped_column(Integer, default=0)
    partners_today: Mapped[int] = mapped_column(Integer, default=0)
    partners_day: Mapped[str] = mapped_column(String(10), default="")


class LedgerEntry(Base):
    """Append-only: every link, unlink, merge and un-merge, with its rule and evidence."""

    __tablename__ = "identity_ledger"
    __table_args__ = (
        Index("ix_identity_ledger_customer_id", "customer_id"),
        Index("ix_identity_ledger_other_customer_id", "other_customer_id"),
        Index("ix_identity_ledger_identifier_id", "identifier_id"),
    )

    # No foreign keys: the ledger is written on the ingest hot path and its rows are never deleted.
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    action: Mapped[str] = mapped_column(String(16))
    rule: Mapped[str] = mapped_column(String(32))
    identifier_id: Mapped[int | None] = mapped_column(Integer)
    anchor_identifier_id: Mapped[int | None] = mapped_column(Integer)
    customer_id: Mapped[int | None] = mapped_column(Integer)
    other_customer_id: Mapped[int | None] = mapped_column(Integer)
    event_pk: Mapped[int | None] = mapped_column(BigInteger)
    source: Mapped[str | None] = mapped_column(String(64))
    store_id: Mapped[str | None] = mapped_column(String(32))
    operator: Mapped[str | None] = mapped_column(String(128))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class ReviewItem(Base):
    """Evidence resolution would not act on alone: a conflict, a suspicious value, a weak match."""

    __tablename__ = "review_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # One open item per subject: a reason and the customers or value it concerns.
    key: Mapped[str] = mapped_column(String(255), unique=True)
    reason: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_by: Mapped[str | None] = mapped_column(String(128))
    customer_id: Mapped[int | None] = mapped_column(Integer, index=True)
    other_customer_id: Mapped[int | None] = mapped_column(Integer, index=True)
    identifier_id: Mapped[int | None] = mapped_column(Integer)
    event_pk: Mapped[int | None] = mapped_column(BigInteger)
    source: Mapped[str | None] = mapped_column(String(64))
    store_id: Mapped[str | None] = mapped_column(String(32))
    score: Mapped[float | None] = mapped_column(Float)
    evidence: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class EventCustomer(Base):
    """Which customer an event belongs to, and the identifier that said so (splits follow it)."""

    __tablename__ = "event_customers"

    event_pk: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    customer_id: Mapped[int] = mapped_column(Integer, index=True)
    identifier_id: Mapped[int] = mapped_column(Integer, index=True)


class RecomputeMark(Base):
    """A customer whose derived data (statistics, tags, segments) must be recomputed after a merge or split."""

    __tablename__ = "recompute_marks"

    customer_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    marked_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str] = mapped_column(String(32))


class AttributeObservation(Base):
    """One profile attribute as one event stated it; the golden record is chosen from these."""

    __tablename__ = "attribute_observations"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_pk: Mapped[int] = mapped_column(BigInteger, index=True)
    customer_id: Mapped[int] = mapped_column(Integer, index=True)
    attribute: Mapped[str] = mapped_column(String(32))
    value: Mapped[str] = mapped_column(String(255))
    source: Mapped[str] = mapped_column(String(64))
    verified: Mapped[bool] = mapped_column(Boolean)
    observed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class GoldenAttribute(Base):
    """The surviving value of one attribute of a customer, and where it came from."""

    __tablename__ = "golden_attributes"
    __table_args__ = (
        UniqueConstraint("customer_id", "attribute"),
        # Reads by attribute and value: the consent gate's minors (birthdays after a date), the birthday trigger.
        Index("ix_golden_attributes_attribute_value", "attribute", "value"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # No index of its own: the unique (customer_id, attribute) index serves reads by customer.
    customer_id: Mapped[int] = mapped_column(Integer)
    attribute: Mapped[str] = mapped_column(String(32))
    value: Mapped[str] = mapped_column(String(255))
    source: Mapped[str] = mapped_column(String(64))
    verified: Mapped[bool] = mapped_column(Boolean)
    observed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # A name's comparison key (central.identity.names.name_key: width, spaces, case and traditional
    # characters folded), which the search by name compares; None for every other attribute.
    search_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # The key spelled in toneless pinyin (张伟 -> zhangwei), so a name is found by typing its pinyin.
    # Spelling costs about 80 µs a name, so the name_pinyin job fills it after the row is written
    # (None until then); a name in Latin letters is its own spelling and gets it at once.
    pinyin_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # The first letters of the pinyin's syllables (张伟 -> zw), filled with pinyin_key.
    initials_key: Mapped[str | None] = mapped_column(String(255), nullable=True)


# The search by name reads the names' keys in code-point order (central.customers.name_search):
# (attribute, key, id) of the names, by comparison key, pinyin and initials; on PostgreSQL the key COLLATE "C",
# whatever the database's collation. The collation is written as the column's "operator class" text,
# which SQLAlchemy places right after the column, because Alembic compares index columns by name and
# cannot express a collated one.
_NAME: ColumnElement[str] = literal_column("'name'")
_NAME_INDEXES = {
    "ix_golden_attributes_name_key": "search_key",
    "ix_golden_attributes_name_pinyin": "pinyin_key",
    "ix_golden_attributes_name_initials": "initials_key",
}
for _index, _key in _NAME_INDEXES.items():
    Index(
        _index,
        GoldenAttribute.attribute,
        getattr(GoldenAttribute, _key),
        GoldenAttribute.id,
        postgresql_ops={_key: 'COLLATE "C"'},
        postgresql_where=GoldenAttribute.attribute == _NAME,
        sqlite_where=GoldenAttribute.attribute == _NAME,
    )


class MatchKey(Base):
    """A blocking key (birthday plus the first letter of the name's pinyin) for weak-evidence matching."""

    __tablename__ = "match_keys"
    __table_args__ = (UniqueConstraint("block", "customer_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    block: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[int] = mapped_column(Integer, index=True)
