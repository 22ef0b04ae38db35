"""Purchase statistics kept current inside the ingest transaction that stores the sales.

Ingest calls :func:`record_sales` once per transaction with the events it has just stored (only
fresh ones: duplicates never reach it). The sales' owners come from ``event_customers``, their
categories from the catalogue, and each statistics table receives one multi-row upsert that adds
this batch's counts and amounts and widens first/last purchase times. Addition and min/max do not
care about order, so the tables equal a full recompute whatever order sales arrive in.

Customers a merge or split marked (``recompute_marks``) are not added to: up to
``customers.marks_per_batch`` of them are recomputed from their events by the set-based SQL in
:mod:`central.customers.rebuild`, which already sees this batch's sales, and their marks cleared.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import current_app, has_app_context
from sqlalchemy import Connection, delete, select

from central import bulk
from central.customers import rebuild
from central.customers.models import (
    CustomerCategory,
    CustomerDay,
    CustomerStats,
    CustomerStore,
    Product,
    UnknownSku,
)
from central.customers.sales import CHANNELS, DAYPARTS, WEEKDAYS, Sale, sale_of
from central.identity.models import EventCustomer, RecomputeMark
from central.models import table

# (event_pk, kind, store_id, observed_at in UTC, payload) of a freshly stored event.
StoredEvent = tuple[int, str, str, datetime, dict[str, Any]]
DEFAULT_OFFSET_MINUTES = 480
DEFAULT_MARKS_PER_BATCH = 500
_marks = table(RecomputeMark)
_owners = table(EventCustomer)
_products = table(Product)

STAT_COLUMNS = (
    "purchases",
    "spent",
    *[f"{c}_{what}" for c in CHANNELS for what in ("purchases", "spent")],
    *[f"{p}_purchases" for p in DAYPARTS],
    *[f"{d}_purchases" for d in WEEKDAYS],
)


@dataclass(frozen=True)
class _Table:
    """A statistics table as an upsert target: its key, added columns and min/max columns."""

    table: Any
    keys: tuple[str, ...]
    sums: tuple[str, ...]
    lows: tuple[str, ...] = ()
    highs: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.keys, *self.sums, *self.lows, *self.highs)


_STATS = _Table(table(CustomerStats), ("customer_id",), STAT_COLUMNS, ("first_purchase_at",), ("last_purchase_at",))
_DAYS = _Table(table(CustomerDay), ("customer_id", "day"), ("purchases", "spent"))
_STORES = _Table(table(CustomerStore), ("customer_id", "store_id"), ("purchases", "spent"), (), ("last_purchase_at",))
_CATEGORIES = _Table(
    table(CustomerCategory), ("customer_id", "category"), ("purchases",), ("first_purchase_at",), ("last_purchase_at",)
)
_UNKNOWN = _Table(table(UnknownSku), ("sku",), ("lines",))


def settings() -> tuple[int, int]:
    """(UTC offset in minutes, marks recomputed per transaction) from the app's settings, or the defaults."""
    if has_app_context() and "CENTRAL" in current_app.config:
        config = current_app.config["CENTRAL"]
        return config.customers_utc_offset_minutes, config.customers_marks_per_batch
    return DEFAULT_OFFSET_MINUTES, DEFAULT_MARKS_PER_BATCH


def record_sales(
    conn: Connection, events: Iterable[StoredEvent], *, offset_minutes: int | None = None, marks: int | None = None
) -> None:
    """Add the sales among freshly stored ``events`` to their customers' statistics; recompute marked ones."""
    default_offset, default_marks = settings()
    offset = default_offset if offset_minutes is None else offset_minutes
    sales = [s for e in events if (s := sale_of(*e, offset)) is not None]
    marked = _take_marks(conn, default_marks if marks is None else marks)
    if sales:
        _add(conn, sales, set(marked))
    if marked:
        rebuild.rebuild_customers(conn, marked, offset)
        conn.execute(delete(_marks).where(_marks.c.customer_id.in_(marked)))


def _take_marks(conn: Connection, limit: int) -> list[int]:
    rows = conn.execute(select(_marks.c.customer_id).order_by(_marks.c.marked_at, _marks.c.customer_id).limit(limit))
    return [r[0] for r in rows]


# Positions in a customer_stats row: customer_id, the STAT_COLUMNS, first and last purchase.
_CHANNEL_INDEX = {c: 3 + 2 * i for i, c in enumerate(CHANNELS)}
_DAYPART_BASE = 3 + 2 * len(CHANNELS)
_WEEKDAY_BASE = _DAYPART_BASE + len(DAYPARTS)
_BLANK = (0,) * len(STAT_COLUMNS)


def _add(conn: Connection, sales: Sequence[Sale], marked: set[int]) -> None:
    owners = dict(
        bulk.select_matching(conn, _owners, ("event_pk",), [(s.event_pk,) for s in sales], ("event_pk", "customer_id"))
    )
    skus = sorted({sku for s in sales for sku in s.skus})
    categories = dict(bulk.select_matching(conn, _products, ("sku",), [(k,) for k in skus], ("sku", "category")))
    # Each table's rows, key columns first, as the upsert will bind them (this loop is the hot path:
    # plain lists and dict look-ups, no helper calls per sale).
    unknown: dict[str, list[Any]] = {}
    stats: dict[int, list[Any]] = {}
    days: dict[tuple[int, Any], list[Any]] = {}
    stores: dict[tuple[int, str], list[Any]] = {}
    kinds: dict[tuple[int, str], list[Any]] = {}
    # SQLite gets its values in stored form, converted once per sale rather than once per row.
    sqlite = conn.dialect.name != "postgresql"
    for sale in sales:
        for sku in sale.skus:
            if sku not in categories:
                if sku in unknown:
                    unknown[sku][1] += 1
                else:
                    unknown[sku] = [sku, 1]
        customer = owners.get(sale.event_pk)
        if customer is None or customer in marked:
            continue
        amount = sale.cents
        bought = 1 if amount > 0 else 0
        row = stats.get(customer)
        if row is None:
            row = stats[customer] = [customer, *_BLANK, None, None]
        row[1] += bought
        row[2] += amount
        channel = _CHANNEL_INDEX[sale.channel]
        row[channel] += bought
        row[channel + 1] += amount
        row[_DAYPART_BASE + sale.daypart] += bought
        row[_WEEKDAY_BASE + sale.weekday] += bought
        day: Any = sale.day.isoformat() if sqlite else sale.day
        entry = days.get((customer, day))
        if entry is None:
            days[customer, day] = [customer, day, bought, amount]
        else:
            entry[2] += bought
            entry[3] += amount
        store = stores.get((customer, sale.store_id))
        if store is None:
            store = stores[customer, sale.store_id] = [customer, sale.store_id, bought, amount, None]
        else:
            store[2] += bought
            store[3] += amount
        if not bought:
            continue
        at: Any = _stored_time(sale.at) if sqlite else sale.at
        if row[-2] is None or at < row[-2]:
            row[-2] = at
        if row[-1] is None or at > row[-1]:
            row[-1] = at
        if store[4] is None or at > store[4]:
            store[4] = at
        for category in {categories[k] for k in sale.skus if k in categories}:
            entry = kinds.get((customer, category))
            if entry is None:
                kinds[customer, category] = [customer, category, 1, at, at]
                continue
            entry[2] += 1
            if at < entry[3]:
                entry[3] = at
            if at > entry[4]:
                entry[4] = at
    _upsert(conn, _STATS, stats)
    _upsert(conn, _DAYS, days)
    _upsert(conn, _STORES, stores)
    _upsert(conn, _CATEGORIES, kinds)
    _upsert(conn, _UNKNOWN, unknown)


def _stored_time(at: datetime) -> str:
    """SQLite's stored text of a UTC instant (:func:`central.bulk.sqlite_time`), without its cache's cost."""
    if at.tzinfo is UTC:
        return at.isoformat(" ", "microseconds")[:26]
    return bulk.sqlite_time(at)


def _upsert(conn: Connection, target: _Table, values: dict[Any, list[Any]]) -> None:
    """Add ``values`` (key -> row of key, added, low and high columns) to ``target`` in one statement."""
    if not values:
        return
    rows = list(values.values())
    name = target.table.name
    columns = target.columns
    conflict = ", ".join(target.keys)
    if conn.dialect.name == "postgresql":
        # Sorted by key: concurrent transactions lock rows in the same order and cannot deadlock.
        # (SQLite has one writer at a time, so there the order is free.)
        rows.sort()
        updates = [f"{c} = t.{c} + EXCLUDED.{c}" for c in target.sums]
        updates += [f"{c} = LEAST(t.{c}, EXCLUDED.{c})" for c in target.lows]
        updates += [f"{c} = GREATEST(t.{c}, EXCLUDED.{c})" for c in target.highs]
        source, document = bulk.pg_source(target.table, columns, rows, conn.dialect)
        conn.exec_driver_sql(
            f"INSERT INTO {name} AS t ({', '.join(columns)}) {source}"
            f" ON CONFLICT ({conflict}) DO UPDATE SET {', '.join(updates)}",
            (document,),
        )
        return
    updates = [f"{c} = {c} + excluded.{c}" for c in target.sums]
    # SQLite's scalar min()/max() return NULL if either side is NULL; times are fixed-width UTC text.
    updates += [f"{c} = coalesce(min({c}, excluded.{c}), {c}, excluded.{c})" for c in target.lows]
    updates += [f"{c} = coalesce(max({c}, excluded.{c}), {c}, excluded.{c})" for c in target.highs]
    marks = ", ".join("?" for _ in columns)
    conn.exec_driver_sql(
        f"INSERT INTO {name} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608 - our own names
        f" ON CONFLICT ({conflict}) DO UPDATE SET {', '.join(updates)}",
        list(map(tuple, rows)),  # already in SQLite's stored form (see _add); SQLAlchemy wants tuples
    )
