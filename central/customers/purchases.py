"""Purchase statistics on customers: added per batch, moved by merges, recomputed after splits."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Connection

from central import bulk
from central.customers.models import Receipt
from central.errors import ConcurrentChange
from central.identity.models import Customer
from central.models import table

_customers = table(Customer)
_STAT_COLUMNS = ("id", "receipts_count", "total_spent", "first_seen_at", "last_seen_at")
StatRow = tuple[int, int, Decimal, datetime, datetime]


def add_to_customers(conn: Connection, rows: Sequence[StatRow]) -> None:
    """Add (customer id, receipts, total, first seen, last seen) to live customers in one statement.

    Raise ConcurrentChange if a customer was merged away meanwhile (PostgreSQL's read committed).
    """
    if not rows:
        return
    rows = sorted(rows)
    if conn.dialect.name == "postgresql":
        source, document = bulk.pg_source(_customers, _STAT_COLUMNS, rows, conn.dialect)
        # MATERIALIZED: the JSON is parsed once whatever join the planner picks.
        result = conn.exec_driver_sql(
            f"WITH v AS MATERIALIZED ({source})"  # noqa: S608 - no user text in the SQL
            " UPDATE customers AS c SET receipts_count = c.receipts_count + v.receipts_count,"
            " total_spent = c.total_spent + v.total_spent,"
            " first_seen_at = LEAST(c.first_seen_at, v.first_seen_at),"
            " last_seen_at = GREATEST(c.last_seen_at, v.last_seen_at)"
            " FROM v WHERE c.id = v.id AND c.merged_into IS NULL",
            (document,),
        )
    else:
        # SQLite's two-argument min()/max() are scalar; timestamps are stored as fixed-width UTC text.
        result = conn.exec_driver_sql(
            "UPDATE customers SET receipts_count = receipts_count + ?, total_spent = total_spent + ?,"
            " first_seen_at = min(first_seen_at, ?), last_seen_at = max(last_seen_at, ?)"
            " WHERE id = ? AND merged_into IS NULL",
            [
                (n, total, first, last, cid)
                for cid, n, total, first, last in bulk.sqlite_rows(_customers, _STAT_COLUMNS, rows, conn.dialect)
            ],
        )
    if result.rowcount != len(rows):
        raise ConcurrentChange("a customer was merged by another transaction")


def recount(conn: Connection, customer_ids: Iterable[int]) -> None:
    """Recompute receipts_count and total_spent of ``customer_ids`` from their receipts (after a split)."""
    ids = sorted(set(customer_ids))
    if not ids:
        return
    marks = bulk.integer_list(ids)
    receipts = table(Receipt).name
    conn.exec_driver_sql(
        f"UPDATE customers SET"  # noqa: S608 - integers only
        f" receipts_count = (SELECT count(*) FROM {receipts} r WHERE r.customer_id = customers.id),"
        f" total_spent = (SELECT coalesce(sum(r.total), 0) FROM {receipts} r WHERE r.customer_id = customers.id)"
        f" WHERE id IN ({marks})"
    )
