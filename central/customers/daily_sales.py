"""Daily sales by store: what finance reconciles with the tills' own day totals, one set-based query.

For local days ``first`` to ``last`` (the chain's local time, ``customers.utc_offset_minutes``, as
the statistics count days), per store and day, from the sale events (``pos.receipt``, ``pos.sale``,
``order.online``) read through the index ``events (kind, observed_at, store_id)``:

* **Till sales** (``pos.receipt``, ``pos.sale``): ``sales`` receipts of 0.00 or more and their
  ``gross``; ``refunds`` (receipts below zero) and ``refunded`` (their amount, as a positive
  number); ``net`` = gross - refunded, the figure to compare with the POS's day total.
* **Set aside**: copies kept as evidence only (``receipts.reprint_of`` set: ``reprint``,
  ``reprint_total_differs``, ``duplicate_source``; decisions 0085 and 0089), counted and summed
  apart and never in the sales, gross or net. A marked reprint whose first copy never arrived
  (``reprint_unmatched``) is the only record of its sale and counts as one.
* **Members**: the till sales linked to a customer (``event_customers``) and their gross.
* **Online orders** (``order.online``), apart from the till figures: each order once, by its
  counted sale (decision 0089; a cancelled or unpaid order is none), and their amount.

Amounts are integer fen. ``stores=None`` means every store, a tuple limits the rows to those stores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session

from central.customers.dashboard import local_midnight
from central.customers.rebuild import counted
from central.customers.sales import ONLINE_KIND, SALE_KINDS
from central.models import UTCDateTime

# A year and a day: a year's report in one go, and a bound on what one request may make the database read.
MAX_DAYS = 366
_KINDS = ", ".join(f"'{k}'" for k in SALE_KINDS)


class RangeError(ValueError):
    """A date range that cannot be reported: its end before its start, or longer than ``MAX_DAYS``."""


@dataclass(frozen=True, slots=True)
class DaySales:
    """One store's sales on one local day (amounts in fen); ``store_id`` is '' for orders naming no store."""

    store_id: str
    day: date | None
    sales: int = 0
    gross: int = 0
    refunds: int = 0
    refunded: int = 0
    set_aside: int = 0
    set_aside_amount: int = 0
    member_sales: int = 0
    member_gross: int = 0
    online_orders: int = 0
    online_amount: int = 0

    @property
    def net(self) -> int:
        """Gross less refunds: the till's day total."""
        return self.gross - self.refunded

    @property
    def member_share(self) -> float | None:
        """Members' part of the gross (None without sales)."""
        return self.member_gross / self.gross if self.gross else None


COUNTS = tuple(f.name for f in fields(DaySales) if f.name not in ("store_id", "day"))


def check_range(first: date, last: date) -> None:
    """Refuse a range that ends before it starts or spans more than ``MAX_DAYS`` days."""
    if last < first:
        raise RangeError("the range ends before it starts")
    if (last - first).days + 1 > MAX_DAYS:
        raise RangeError(f"the range spans more than {MAX_DAYS} days")


def _cents(postgres: bool) -> str:
    """The sale's total in fen: on SQLite from the column ``t``, the total's text (see :func:`_sql`)."""
    if postgres:
        return "CAST(round(CAST(e.payload->>'total' AS numeric) * 100) AS bigint)"
    # The money text as an exact integer of 1/10000ths, then fen rounded half away from zero, as
    # central.customers.rebuild does: no float on the way.
    t = "t"
    v = (
        f"CAST(replace(CAST({t} AS TEXT) || CASE WHEN instr(CAST({t} AS TEXT), '.') = 0 THEN '.0000'"
        f" ELSE substr('0000', 1, 4 - length(CAST({t} AS TEXT)) + instr(CAST({t} AS TEXT), '.')) END, '.', '')"
        " AS INTEGER)"
    )
    return f"(CASE WHEN {v} < 0 THEN -((50 - {v}) / 100) ELSE ({v} + 50) / 100 END)"


def _sql(postgres: bool, offset_minutes: int, scoped: bool) -> str:
    if postgres:
        day = f"CAST(((e.observed_at AT TIME ZONE 'UTC') + make_interval(mins => {offset_minutes})) AS date)"
    else:
        day = f"date(e.observed_at, '{offset_minutes:+d} minutes')"
    inner = (
        f"SELECT COALESCE(e.store_id, '') AS store_id, {day} AS day,"  # noqa: S608 - our own names
        f" CASE WHEN e.kind = '{ONLINE_KIND}' THEN 1 ELSE 0 END AS online,"
        " CASE WHEN r.reprint_of IS NOT NULL THEN 1 ELSE 0 END AS aside,"
        " CASE WHEN ec.event_pk IS NOT NULL THEN 1 ELSE 0 END AS member,"
        + (f" {_cents(postgres)} AS cents" if postgres else " CAST(json_extract(e.payload, '$.total') AS TEXT) AS t")
        + " FROM events e"
        " LEFT JOIN receipts r ON r.event_pk = e.id"
        " LEFT JOIN event_customers ec ON ec.event_pk = e.id"
        f" WHERE e.kind IN ({_KINDS}) AND e.observed_at >= :start AND e.observed_at < :end"
        f" AND {counted(postgres)}" + (" AND e.store_id IN :stores" if scoped else "")
    )
    till = "online = 0 AND aside = 0"
    sums = {
        "sales": f"SUM(CASE WHEN {till} AND cents >= 0 THEN 1 ELSE 0 END)",
        "gross": f"SUM(CASE WHEN {till} AND cents >= 0 THEN cents ELSE 0 END)",
        "refunds": f"SUM(CASE WHEN {till} AND cents < 0 THEN 1 ELSE 0 END)",
        "refunded": f"SUM(CASE WHEN {till} AND cents < 0 THEN -cents ELSE 0 END)",
        "set_aside": "SUM(aside)",
        "set_aside_amount": "SUM(CASE WHEN aside = 1 THEN cents ELSE 0 END)",
        "member_sales": f"SUM(CASE WHEN {till} AND member = 1 AND cents >= 0 THEN 1 ELSE 0 END)",
        "member_gross": f"SUM(CASE WHEN {till} AND member = 1 AND cents >= 0 THEN cents ELSE 0 END)",
        "online_orders": "SUM(online)",
        "online_amount": "SUM(CASE WHEN online = 1 THEN cents ELSE 0 END)",
    }
    columns = ", ".join(f"{expression} AS {name}" for name, expression in sums.items())
    grouped = f"SELECT store_id, day, {columns} FROM {{}} AS s GROUP BY store_id, day ORDER BY day, store_id"  # noqa: S608
    # Both databases copy a subquery's expression into every use of its column: cents would read
    # the payload's JSON once for each sum that names it, and on SQLite a dozen times in each (a
    # year took 2 to 8 times as long, docs/benchmarks.md). So the range's sale events are kept in a
    # materialized table with their total read once (on SQLite its text, and the fen from it in a
    # second one).
    if postgres:
        return f"WITH sold AS MATERIALIZED ({inner}) " + grouped.format("sold")
    cents = f"SELECT store_id, day, online, aside, member, {_cents(postgres)} AS cents FROM sold"  # noqa: S608
    return f"WITH sold AS MATERIALIZED ({inner}), priced AS MATERIALIZED ({cents}) " + grouped.format("priced")


def daily_sales(
    db: Session, first: date, last: date, offset_minutes: int, stores: Sequence[str] | None = None
) -> list[DaySales]:
    """Sales per store and local day from ``first`` to ``last`` (both included), by day then store.

    Only store-days with a sale event appear. Raises :class:`RangeError` for a range ``check_range`` refuses.
    """
    check_range(first, last)
    if stores is not None and not stores:
        return []
    postgres = db.get_bind().dialect.name == "postgresql"
    statement = text(_sql(postgres, offset_minutes, stores is not None))
    binds = [bindparam("start", type_=UTCDateTime()), bindparam("end", type_=UTCDateTime())]
    params: dict[str, Any] = {
        "start": local_midnight(first, offset_minutes),
        "end": local_midnight(last + timedelta(days=1), offset_minutes),
    }
    if stores is not None:
        binds.append(bindparam("stores", expanding=True))
        params["stores"] = list(stores)
    rows = db.execute(statement.bindparams(*binds), params)
    return [
        DaySales(str(row[0]), date.fromisoformat(str(row[1])[:10]), *(int(v or 0) for v in row[2:])) for row in rows
    ]


def totals(rows: Sequence[DaySales]) -> DaySales:
    """Every row added up (``store_id`` '' and ``day`` None)."""
    return DaySales("", None, *(sum(getattr(r, name) for r in rows) for name in COUNTS))


# The CSV's columns (console download and ``central-server sales daily --csv``): stable names for
# spreadsheets and scripts, amounts in yuan with two decimals, counts as integers, one row per store-day.
CSV_HEADER = [
    "date",
    "store_id",
    "sales",
    "gross",
    "refunds",
    "refunded",
    "net",
    "set_aside",
    "set_aside_amount",
    "member_sales",
    "member_gross",
    "member_share_percent",
    "online_orders",
    "online_amount",
]


def yuan(cents: int) -> Decimal:
    """Fen as yuan with two decimals (a number in a CSV, never text)."""
    return (Decimal(cents) / 100).quantize(Decimal("0.01"))


def csv_row(row: DaySales) -> list[Any]:
    """One store-day as CSV cells, in ``CSV_HEADER`` order."""
    share = row.member_share
    return [
        row.day.isoformat() if row.day else "",
        row.store_id,
        row.sales,
        yuan(row.gross),
        row.refunds,
        yuan(row.refunded),
        yuan(row.net),
        row.set_aside,
        yuan(row.set_aside_amount),
        row.member_sales,
        yuan(row.member_gross),
        "" if share is None else round(100 * share, 1),
        row.online_orders,
        yuan(row.online_amount),
    ]
