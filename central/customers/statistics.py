"""Purchase statistics kept current inside the ingest transaction that stores the sales.

Ingest calls :func:`record_sales` once per transaction with the events it has just stored (only
fresh ones: duplicates never reach it). The sales' owners come from ``event_customers``, their
categories from the catalogue, and each statistics table receives one multi-row upsert that adds
this batch's counts and amounts and widens first/last purchase times. Addition and min/max do not
care about order, so the tables equal a full recompute whatever order sales arrive in.

Customers a merge or split marked (``recompute_marks``) are not added to: up to
``customers.marks_per_batch`` of them are recomputed from their events by the set-based SQL in
:mod:`central.customers.rebuild`, which already sees this batch's sales, and their marks cleared.

SKUs the catalogue does not hold are appended to ``unknown_sku_sightings`` (one row a SKU and
transaction) and folded into ``unknown_skus`` by :func:`fold_unknown_skus`: by ingest itself each
time the log has grown by ``FOLD_ROWS`` rows, and by the catalogue's load before it reports.
"""

from __future__ import annotations

import functools
import hashlib
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from flask import current_app, has_app_context
from sqlalchemy import Connection, delete
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError

from central import bulk
from central.collector import collector_paused
from central.customers import rebuild
from central.customers.models import (
    CustomerCategory,
    CustomerDay,
    CustomerStats,
    CustomerStore,
    Product,
    UnknownSku,
    UnknownSkuSighting,
)
from central.customers.sales import (
    CHANNELS,
    DAYPART_SECONDS,
    DAYPARTS,
    ONLINE_KIND,
    SALE_KINDS,
    WEEKDAYS,
    cents,
    channel_of,
    day_of,
    local_epoch,
    skus_of,
    weekday_of,
)
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
class StatTable:
    """A statistics table as an upsert target: its key, added columns and min/max columns."""

    table: Any
    keys: tuple[str, ...]
    sums: tuple[str, ...]
    lows: tuple[str, ...] = ()
    highs: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.keys, *self.sums, *self.lows, *self.highs)


_STATS = StatTable(table(CustomerStats), ("customer_id",), STAT_COLUMNS, ("first_purchase_at",), ("last_purchase_at",))
_DAYS = StatTable(table(CustomerDay), ("customer_id", "day"), ("purchases", "spent"))
_STORES = StatTable(
    table(CustomerStore), ("customer_id", "store_id"), ("purchases", "spent"), (), ("last_purchase_at",)
)
_CATEGORIES = StatTable(
    table(CustomerCategory), ("customer_id", "category"), ("purchases",), ("first_purchase_at",), ("last_purchase_at",)
)
CUSTOMER_TABLES = (_STATS, _DAYS, _STORES, _CATEGORIES)  # keyed by customer first
_unknown = table(UnknownSku)
_sightings = table(UnknownSkuSighting)
# Ingest folds the log into unknown_skus each time its ids pass a multiple of this: often enough
# to keep the log small, seldom enough that one fold, sorted by SKU, writes each page of
# unknown_skus about once for the many batches whose new SKUs landed on it.
FOLD_ROWS = 50_000
# Transaction-level advisory lock that lets one PostgreSQL transaction fold at a time.
_FOLD_LOCK = int.from_bytes(hashlib.sha256(b"central:unknown-sku-fold").digest()[:8], "big", signed=True)


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
    sales = [e for e in events if e[1] in SALE_KINDS]
    marked = _take_marks(conn, default_marks if marks is None else marks)
    if sales:
        _add(conn, sales, set(marked), offset)
    if marked:
        rebuild.rebuild_customers(conn, marked, offset)
        conn.execute(delete(_marks).where(_marks.c.customer_id.in_(marked)))


def _take_marks(conn: Connection, limit: int) -> list[int]:
    # Plain SQL: this runs in every ingest transaction, mostly to find nothing, and building the
    # statement through SQLAlchemy's expression layer cost more than the look-up.
    sql = f"SELECT customer_id FROM {_marks.name} ORDER BY marked_at, customer_id LIMIT {int(limit)}"  # noqa: S608
    if conn.dialect.name == "postgresql":
        return [r[0] for r in conn.exec_driver_sql(sql)]
    return [r[0] for r in bulk.sqlite_fetch(conn, sql, ())]


# Positions in a customer_stats row: customer_id, the STAT_COLUMNS, first and last purchase.
_CHANNEL_INDEX = {c: 3 + 2 * i for i, c in enumerate(CHANNELS)}
_STORE_CHANNEL = _CHANNEL_INDEX["store"]
_DAYPART_BASE = 3 + 2 * len(CHANNELS)
_WEEKDAY_BASE = _DAYPART_BASE + len(DAYPARTS)
_BLANK = (0,) * len(STAT_COLUMNS)
_NAIVE_EPOCH = datetime(1970, 1, 1)


def _add(conn: Connection, sales: Sequence[StoredEvent], marked: set[int], offset: int) -> None:
    lines = [skus_of(e[4]) for e in sales]
    owners = _owners_of(conn, [e[0] for e in sales])
    skus = sorted({sku for named in lines for sku in named})
    categories = dict(bulk.select_matching(conn, _products, ("sku",), [(k,) for k in skus], ("sku", "category")))
    with collector_paused():
        _write(conn, _rows(sales, lines, owners, categories, marked, offset, conn.dialect.name != "postgresql"))


def _owners_of(conn: Connection, event_pks: list[int]) -> dict[int, int]:
    """event_pk -> customer_id of the owned events among ``event_pks`` (and maybe of others between them).

    A transaction's events get consecutive keys, so a range of the primary key usually covers them
    with few others (which no sale asks for); the look-up by each key is for keys spread wider.
    """
    low, high = min(event_pks), max(event_pks)
    if high - low >= 2 * len(event_pks):
        pairs = bulk.select_matching(
            conn, _owners, ("event_pk",), [(k,) for k in event_pks], ("event_pk", "customer_id")
        )
        return dict(pairs)
    sql = f"SELECT event_pk, customer_id FROM {_owners.name} WHERE event_pk BETWEEN ? AND ?"  # noqa: S608
    if conn.dialect.name == "postgresql":
        return {pk: customer for pk, customer in conn.exec_driver_sql(sql.replace("?", "%s"), (low, high))}
    return dict(bulk.sqlite_fetch(conn, sql, (low, high)))


def _write(conn: Connection, tables: tuple[dict[Any, list[Any]], ...]) -> None:
    *by_customer, unknown = tables
    for target, rows in zip(CUSTOMER_TABLES, by_customer, strict=True):
        upsert(conn, target, rows)
    if unknown:
        _log_unknown(conn, list(unknown.values()))


def _log_unknown(conn: Connection, rows: list[list[Any]]) -> None:
    """Append this transaction's unknown SKUs (sku, lines) to the log; fold it when its ids pass FOLD_ROWS again."""
    sql = f"INSERT INTO {_sightings.name} (sku, lines)"
    if conn.dialect.name == "postgresql":
        skus, lines = zip(*rows, strict=True)
        conn.exec_driver_sql(
            f"{sql} SELECT * FROM unnest(CAST(%s AS text[]), CAST(%s AS bigint[]))",  # noqa: S608 - our own names
            (bulk.pg_array(skus, "text"), bulk.pg_array(lines, "json")),
        )
        last = conn.exec_driver_sql(f"SELECT currval(pg_get_serial_sequence('{_sightings.name}', 'id'))").scalar_one()
    else:
        if not conn.in_transaction():
            conn.begin()  # as exec_driver_sql would: central's "begin" hook issues BEGIN IMMEDIATE
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(f"{sql} VALUES (?, ?)", rows)
            last = cursor.execute("SELECT last_insert_rowid()").fetchone()[0]
        except sqlite3.Error as exc:
            raise DBAPIError.instance(sql, rows, exc, sqlite3.Error) from exc
        finally:
            cursor.close()
    if (last - len(rows)) // FOLD_ROWS != last // FOLD_ROWS:
        fold_unknown_skus(conn, wait=False)


def fold_unknown_skus(conn: Connection, *, wait: bool = True) -> bool:
    """Add the log of unknown SKUs into ``unknown_skus`` in SKU order, and empty it, in the caller's transaction.

    On PostgreSQL one transaction folds at a time; with ``wait=False`` (ingest) a transaction that
    finds another folding leaves the log to it and returns False. Rows of transactions not yet
    committed stay for the next fold.
    """
    updates = "lines = t.lines + excluded.lines"
    if conn.dialect.name == "postgresql":
        if wait:
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(%s)", (_FOLD_LOCK,))
        elif not conn.exec_driver_sql("SELECT pg_try_advisory_xact_lock(%s)", (_FOLD_LOCK,)).scalar():
            return False
        conn.exec_driver_sql(
            f"WITH moved AS (DELETE FROM {_sightings.name} RETURNING sku, lines)"  # noqa: S608 - our own names
            f" INSERT INTO {_unknown.name} AS t (sku, lines) SELECT sku, SUM(lines) FROM moved GROUP BY sku"
            f" ORDER BY sku ON CONFLICT (sku) DO UPDATE SET {updates}"
        )
        return True
    # One writer at a time on SQLite: the DELETE removes exactly the rows the INSERT read.
    conn.exec_driver_sql(
        f"INSERT INTO {_unknown.name} AS t (sku, lines) SELECT sku, SUM(lines) FROM {_sightings.name}"  # noqa: S608
        f" WHERE true GROUP BY sku ORDER BY sku ON CONFLICT (sku) DO UPDATE SET {updates}"
    )
    conn.exec_driver_sql(f"DELETE FROM {_sightings.name}")  # noqa: S608 - our own names
    return True


def _rows(
    sales: Sequence[StoredEvent],
    lines: Sequence[tuple[str, ...]],
    owners: dict[int, int],
    categories: dict[str, str],
    marked: set[int],
    offset: int,
    sqlite: bool,
) -> tuple[dict[Any, list[Any]], ...]:
    """Each statistics table's rows (key -> key columns first, as the upsert binds them) for ``sales``.

    One pass from each sale's payload to its rows, with no object per sale: this loop is the step's
    hot path. A key met twice in the batch is added up here, so each key is written once per batch.
    SQLite gets its values in stored form (central.bulk.sqlite_time's text for instants, ISO dates).
    """
    unknown: dict[str, list[Any]] = {}
    stats: dict[int, list[Any]] = {}
    days: dict[tuple[int, Any], list[Any]] = {}
    stores: dict[tuple[int, str], list[Any]] = {}
    kinds: dict[tuple[int, str], list[Any]] = {}
    local_day = _sqlite_day if sqlite else _day
    epoch = local_epoch(offset)
    naive_epoch = _NAIVE_EPOCH - timedelta(minutes=offset)  # the same instant, as naive UTC
    for (event_pk, kind, store_id, at, payload), named in zip(sales, lines, strict=True):
        found = [categories.get(sku) for sku in named]
        if None in found:
            for sku, category in zip(named, found, strict=True):
                if category is None:
                    if sku in unknown:
                        unknown[sku][1] += 1
                    else:
                        unknown[sku] = [sku, 1]
        amount = cents(payload["total"])
        customer = owners.get(event_pk)
        if customer is None or customer in marked:
            continue
        bought = 1 if amount > 0 else 0
        local = at - epoch  # local time since local day 0 (see sales.local_epoch)
        day, weekday = local_day(local.days)
        row = stats.get(customer)
        if row is None:
            row = stats[customer] = [customer, *_BLANK, None, None]
        row[1] += bought
        row[2] += amount
        channel = _STORE_CHANNEL if kind != ONLINE_KIND else _CHANNEL_INDEX[channel_of(kind, payload)]
        row[channel] += bought
        row[channel + 1] += amount
        row[_DAYPART_BASE + local.seconds // DAYPART_SECONDS] += bought
        row[weekday] += bought
        entry = days.get((customer, day))
        if entry is None:
            days[customer, day] = [customer, day, bought, amount]
        else:
            entry[2] += bought
            entry[3] += amount
        store = None
        if store_id:  # an online sale that names no store is no store's
            store = stores.get((customer, store_id))
            if store is None:
                store = stores[customer, store_id] = [customer, store_id, bought, amount, None]
            else:
                store[2] += bought
                store[3] += amount
        if not bought:
            continue
        # Fixed-width UTC text compares as the instants do; a naive datetime formats without a zone.
        when: Any = (naive_epoch + local).isoformat(" ", "microseconds") if sqlite else at
        if row[-2] is None or when < row[-2]:
            row[-2] = when
        if row[-1] is None or when > row[-1]:
            row[-1] = when
        if store is not None and (store[4] is None or when > store[4]):
            store[4] = when
        for category in set(found) if len(found) > 1 else found:
            if category is None:
                continue
            entry = kinds.get((customer, category))
            if entry is None:
                kinds[customer, category] = [customer, category, 1, when, when]
                continue
            entry[2] += 1
            if when < entry[3]:
                entry[3] = when
            if when > entry[4]:
                entry[4] = when
    return stats, days, stores, kinds, unknown


# Local day number -> (the day as a customer_days key, its weekday's position in a stats row).
@functools.lru_cache(maxsize=1 << 14)
def _day(number: int) -> tuple[date, int]:
    return day_of(number), _WEEKDAY_BASE + weekday_of(number)


@functools.lru_cache(maxsize=1 << 14)
def _sqlite_day(number: int) -> tuple[str, int]:
    return day_of(number).isoformat(), _WEEKDAY_BASE + weekday_of(number)


def upsert(conn: Connection, target: StatTable, values: dict[Any, list[Any]]) -> None:
    """Add ``values`` (key -> row of key, added, low and high columns) to ``target`` in one statement."""
    if not values:
        return
    rows = list(values.values())
    if conn.dialect.name == "postgresql":
        # Sorted by key: concurrent transactions lock rows in the same order and cannot deadlock.
        # (SQLite has one writer at a time, so there the order is free.)
        rows.sort()
        # One array per column: the server reads each array once, where a JSON document made it
        # parse every row's object and look up each column's key. The lone function scan of
        # unnest yields the rows in the arrays' order, so the sort above still orders the locks.
        sql, kinds = _postgresql_upsert(target, conn.dialect)
        columns = zip(*rows, strict=True)
        conn.exec_driver_sql(sql, tuple(map(bulk.pg_array, columns, kinds)))
        return
    # Straight to the driver: the rows are already in SQLite's stored form (see _add), and sqlite3
    # binds lists as they are, where SQLAlchemy would want each one copied into a tuple first.
    if not conn.in_transaction():
        conn.begin()  # as exec_driver_sql would: central's "begin" hook issues BEGIN IMMEDIATE
    sql = _sqlite_upsert(target)
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(sql, rows)
    except sqlite3.Error as exc:
        raise DBAPIError.instance(sql, rows, exc, sqlite3.Error) from exc
    finally:
        cursor.close()


@functools.cache
def _postgresql_upsert(target: StatTable, dialect: Dialect) -> tuple[str, tuple[str, ...]]:
    """The upsert into ``target`` from one array per column (unnested in order), and each array's kind."""
    types = [bulk.pg_record_type(target.table, c, dialect) for c in target.columns]
    kinds = tuple(bulk.pg_array_kind(target.table.c[c]) for c in target.columns)
    arrays = ", ".join(f"CAST(%s AS {kind}[])" for kind in types)
    updates = [f"{c} = t.{c} + EXCLUDED.{c}" for c in target.sums]
    updates += [f"{c} = LEAST(t.{c}, EXCLUDED.{c})" for c in target.lows]
    updates += [f"{c} = GREATEST(t.{c}, EXCLUDED.{c})" for c in target.highs]
    names = ", ".join(target.columns)
    sql = (
        f"INSERT INTO {target.table.name} AS t ({names}) SELECT {names} FROM unnest({arrays}) AS r({names})"  # noqa: S608
        f" ON CONFLICT ({', '.join(target.keys)}) DO UPDATE SET {', '.join(updates)}"
    )
    return sql, kinds


@functools.cache
def _sqlite_upsert(target: StatTable) -> str:
    updates = [f"{c} = {c} + excluded.{c}" for c in target.sums]
    # SQLite's scalar min()/max() return NULL if either side is NULL; times are fixed-width UTC text.
    updates += [f"{c} = coalesce(min({c}, excluded.{c}), {c}, excluded.{c})" for c in target.lows]
    updates += [f"{c} = coalesce(max({c}, excluded.{c}), {c}, excluded.{c})" for c in target.highs]
    return (
        f"INSERT INTO {target.table.name} ({', '.join(target.columns)})"  # noqa: S608 - our own names
        f" VALUES ({', '.join('?' for _ in target.columns)})"
        f" ON CONFLICT ({', '.join(target.keys)}) DO UPDATE SET {', '.join(updates)}"
    )
