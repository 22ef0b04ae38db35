"""The central database schema as typed SQLAlchemy models; ``migrations/`` creates exactly this."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Deterministic constraint names, identical on SQLite and PostgreSQL, so migrations can name them.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-numbers a column declared exactly INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")
Money = Numeric(14, 2)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back as an aware UTC datetime.

    SQLite has no time zone type and would hand back naive values, so they are stored as naive UTC
    there (which also keeps text comparison in SQL correct) and tagged UTC on the way out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where an aware UTC datetime is required")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base carrying the naming convention."""

    metadata = MetaData(naming_convention=NAMING)


def table(model: type[Base]) -> Table:
    """The Core table behind a model, for bulk statements on the hot path."""
    return cast(Table, model.__table__)


class Device(Base):
    """An enrolled edge agent and what central last heard from it."""

    __tablename__ = "devices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64), unique=True)
    store_id: Mapped[str] = mapped_column(String(32))
    public_key: Mapped[str] = mapped_column(String(64))
    hostname: Mapped[str] = mapped_column(String(255), default="")
    agent_version: Mapped[str] = mapped_column(String(64), default="")
    status: Mapped[str] = mapped_column(String(16), default="active")
    enrolled_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_seq: Mapped[int | None] = mapped_column(BigInteger)
    last_heartbeat: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class EnrollToken(Base):
    """A single-use enrollment token, stored only as its SHA-256 digest."""

    __tablename__ = "enroll_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    store_id: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    device_id: Mapped[str | None] = mapped_column(String(64), ForeignKey("devices.device_id"))


class Event(Base):
    """Every event ever accepted; ``(device_id, event_id)`` is the permanent dedupe key."""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("device_id", "event_id"),
        Index("ix_events_device_id_seq", "device_id", "seq"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # No foreign key to devices: ingest has already authenticated the device, devices are never
    # deleted, and a per-row check would be the costliest part of inserting a batch on PostgreSQL.
    device_id: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[str] = mapped_column(String(36))
    seq: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(64))
    store_id: Mapped[str] = mapped_column(String(32))
    observed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    batch_id: Mapped[str] = mapped_column(String(36))


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


class MergeLedger(Base):
    """Append-only record of every merge, so that a merge can be explained and later undone."""

    __tablename__ = "merge_ledger"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    kept_customer_id: Mapped[int] = mapped_column(Integer, ForeignKey("customers.id"))
    merged_customer_id: Mapped[int] = mapped_column(Integer, ForeignKey("customers.id"))
    reason: Mapped[str] = mapped_column(Text)
    event_id: Mapped[str | None] = mapped_column(String(36))


class User(Base):
    """A console user; ``role`` decides what they may see (only "admin" exists so far)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(32), default="admin")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuditLog(Base):
    """Who did or read what, and when; every read of personal data leaves a row."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(255), default="")
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)
