"""Customer facts: receipts, the product catalogue, purchase statistics and built-in tags."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Date, Float, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from central.models import Base, BigId, Money, UTCDateTime

_COPIES = text("reprint_of IS NOT NULL")


class Receipt(Base):
    """A till receipt taken from a ``pos.receipt`` event, linked to a customer when one was named.

    A reprint (the same store, register and receipt number again, see central.customers.reprints)
    is kept with ``reprint_of`` naming the first copy and a ``flag``; it has no customer and counts
    nowhere. So is the same receipt loaded again from another source (``duplicate_source``). A
    receipt from an online source or a backfill (``device_id`` ``source:<name>``) that names a store
    takes the customer its event is linked to and counts in ``receipts_count`` as an agent's does
    (a till receipt however it reached central, decision 0091); one naming no store has no customer.
    """

    __tablename__ = "receipts"
    __table_args__ = (
        Index("ix_receipts_store_number", "store_id", "receipt_no"),
        Index("ix_receipts_device_time", "device_id", "observed_at"),
        # Copies only, a small part of the receipts: a counted receipt's copies (the timeline), and
        # the receipts set aside per store and day (central.customers.set_aside).
        Index("ix_receipts_reprint_of", "reprint_of", postgresql_where=_COPIES, sqlite_where=_COPIES),
        Index(
            "ix_receipts_copies_store_time", "store_id", "observed_at", postgresql_where=_COPIES, sqlite_where=_COPIES
        ),
        Index("ix_receipts_receipt_no", "receipt_no"),  # the console's search by receipt number
    )

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
    register: Mapped[str] = mapped_column(String(32), default="", server_default="")
    printed_at: Mapped[str | None] = mapped_column(String(40))
    reprint_of: Mapped[int | None] = mapped_column(BigInteger)
    flag: Mapped[str | None] = mapped_column(String(32))


class OnlineOrder(Base):
    """An online order of one source (``order_no`` of its ``order.online`` events), counted once.

    ``event_pk`` is the order's sale: its earliest event, the only one the statistics count, and
    only while ``counted`` (it has a total and its newest status is neither void nor unpaid). The
    status is the newest event's (``status_at``, ``status_pk``); ``flag`` is ``order_total_differs``
    when an event of the order gave another total than the sale's. See central.customers.orders.
    """

    __tablename__ = "online_orders"
    __table_args__ = (UniqueConstraint("device_id", "order_no"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64))
    order_no: Mapped[str] = mapped_column(String(64))
    event_pk: Mapped[int] = mapped_column(BigInteger, unique=True)
    observed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    total: Mapped[Decimal] = mapped_column(Money)
    status: Mapped[str] = mapped_column(String(32))
    status_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status_pk: Mapped[int] = mapped_column(BigInteger)
    counted: Mapped[bool] = mapped_column(Boolean)
    events: Mapped[int] = mapped_column(Integer)
    flag: Mapped[str | None] = mapped_column(String(32))


class Product(Base):
    """One product of the catalogue HQ loads: its SKU, GTIN, name, category path and brand."""

    __tablename__ = "products"

    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    gtin: Mapped[str | None] = mapped_column(String(14), index=True)
    name: Mapped[str] = mapped_column(String(256))
    category: Mapped[str] = mapped_column(String(255))
    brand: Mapped[str | None] = mapped_column(String(128))
    loaded_at: Mapped[datetime] = mapped_column(UTCDateTime)


class UnknownSku(Base):
    """A SKU sold that the catalogue does not hold, with how many sale lines named it."""

    __tablename__ = "unknown_skus"

    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    lines: Mapped[int] = mapped_column(BigInteger)


class UnknownSkuSighting(Base):
    """Sale lines of one SKU the catalogue did not hold, as one ingest transaction found them.

    Ingest appends these rows (at the end of the table's key) instead of adding to
    ``unknown_skus`` in place, where every new SKU lands at a random place of the key and dirties a
    page of its own; :func:`central.customers.statistics.fold_unknown_skus` moves them into
    ``unknown_skus`` in bulk.
    """

    __tablename__ = "unknown_sku_sightings"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    sku: Mapped[str] = mapped_column(String(64))
    lines: Mapped[int] = mapped_column(BigInteger)


class CustomerStats(Base):
    """A customer's purchase statistics, kept current by ingest (amounts in cents).

    A purchase is a sale (``pos.receipt``, ``pos.sale``, ``order.online``) whose total is positive;
    amounts add every sale's total, so returns recorded as negative sales reduce them. Times of day
    and weekdays are counted in the chain's local time (``customers.utc_offset_minutes``).
    """

    __tablename__ = "customer_stats"

    customer_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    purchases: Mapped[int] = mapped_column(Integer)
    spent: Mapped[int] = mapped_column(BigInteger)
    first_purchase_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_purchase_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    store_purchases: Mapped[int] = mapped_column(Integer)
    store_spent: Mapped[int] = mapped_column(BigInteger)
    online_purchases: Mapped[int] = mapped_column(Integer)
    online_spent: Mapped[int] = mapped_column(BigInteger)
    app_purchases: Mapped[int] = mapped_column(Integer)
    app_spent: Mapped[int] = mapped_column(BigInteger)
    mini_program_purchases: Mapped[int] = mapped_column(Integer)
    mini_program_spent: Mapped[int] = mapped_column(BigInteger)
    night_purchases: Mapped[int] = mapped_column(Integer)
    morning_purchases: Mapped[int] = mapped_column(Integer)
    afternoon_purchases: Mapped[int] = mapped_column(Integer)
    evening_purchases: Mapped[int] = mapped_column(Integer)
    mon_purchases: Mapped[int] = mapped_column(Integer)
    tue_purchases: Mapped[int] = mapped_column(Integer)
    wed_purchases: Mapped[int] = mapped_column(Integer)
    thu_purchases: Mapped[int] = mapped_column(Integer)
    fri_purchases: Mapped[int] = mapped_column(Integer)
    sat_purchases: Mapped[int] = mapped_column(Integer)
    sun_purchases: Mapped[int] = mapped_column(Integer)


class CustomerDay(Base):
    """A customer's purchases and amount on one local day: the rolling windows are sums of these."""

    __tablename__ = "customer_days"

    customer_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    purchases: Mapped[int] = mapped_column(Integer)
    spent: Mapped[int] = mapped_column(BigInteger)


class CustomerStore(Base):
    """A customer's purchases and amount in one store (online sources count under the store id they name).

    An online sale that names no store (store id '') is counted in ``customer_stats`` only.
    """

    __tablename__ = "customer_stores"
    __table_args__ = (Index("ix_customer_stores_store_id", "store_id"),)

    customer_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    store_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    purchases: Mapped[int] = mapped_column(Integer)
    spent: Mapped[int] = mapped_column(BigInteger)
    last_purchase_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CustomerCategory(Base):
    """How many of a customer's purchases held a product of one category, and when the first and last were."""

    __tablename__ = "customer_categories"

    customer_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    category: Mapped[str] = mapped_column(String(255), primary_key=True)
    purchases: Mapped[int] = mapped_column(Integer)
    first_purchase_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_purchase_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CustomerTag(Base):
    """A built-in tag of a customer: its value, the inputs that gave it and its definition's version."""

    __tablename__ = "customer_tags"
    # The overview counts tiers and the RFM grid from this index alone.
    __table_args__ = (Index("ix_customer_tags_tag_value_customer_id", "tag", "value", "customer_id"),)

    customer_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tag: Mapped[str] = mapped_column(String(300), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON)
    version: Mapped[str] = mapped_column(String(32))
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CustomerNote(Base):
    """A note a console user wrote on a customer (complaints are ``service.complaint`` events instead)."""

    __tablename__ = "customer_notes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    customer_id: Mapped[int] = mapped_column(Integer, index=True)
    author: Mapped[str] = mapped_column(String(128))
    text: Mapped[str] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class StoreAlert(Base):
    """A store's figure that dropped on a day (``central.customers.alerts``), recorded once and sent once."""

    __tablename__ = "store_alerts"
    __table_args__ = (UniqueConstraint("store_id", "day", "kind"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    store_id: Mapped[str] = mapped_column(String(32))
    day: Mapped[date] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(32))
    value: Mapped[int] = mapped_column(Integer)
    baseline: Mapped[float] = mapped_column(Float)
    # pending (to send), delivered, dead (gave up), unsent (no webhook configured)
    status: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(500))


class OverviewFigure(Base):
    """One cell of the overview's tier or RFM figures, for the chain (``store_id`` empty) or one store.

    Written by every tag recompute (``central.customers.dashboard.snapshot``), since the tiers and
    scores change only then; ``total`` is the tier's spending in cents, or the RFM cell's sum of M scores.
    """

    __tablename__ = "overview_figures"
    __table_args__ = (Index("ix_overview_figures_figure_store_id", "figure", "store_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    figure: Mapped[str] = mapped_column(String(16))
    store_id: Mapped[str] = mapped_column(String(32))
    a: Mapped[str] = mapped_column(String(32))  # the tier, or the R score
    b: Mapped[str] = mapped_column(String(32))  # empty, or the F score
    customers: Mapped[int] = mapped_column(BigInteger)
    total: Mapped[int] = mapped_column(BigInteger)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class NewMemberDay(Base):
    """Sign-ups in one store on one past local day, recounted hourly by the ``store_alerts`` job.

    A row with an empty ``store_id`` marks a day as counted (even one without sign-ups), so the
    overview counts only the days not yet here (today, or all before the job's first run) from events.
    """

    __tablename__ = "new_member_days"

    store_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    members: Mapped[int] = mapped_column(Integer)
