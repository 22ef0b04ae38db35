"""Reading statistics back: rolling windows as of a day, one customer's full profile for the API."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, case, func, select

from central.customers.models import CustomerCategory, CustomerDay, CustomerStats, CustomerStore, CustomerTag
from central.customers.sales import CHANNELS, DAYPARTS, WEEKDAYS
from central.models import table
from shared.wire import format_time

ROLLING_DAYS = (30, 90, 365)
_stats = table(CustomerStats)
_days = table(CustomerDay)
_stores = table(CustomerStore)
_categories = table(CustomerCategory)
_tags = table(CustomerTag)
STAT_COLUMNS = [c.name for c in _stats.columns]
WINDOW_COLUMNS = [f"{what}_{n}d" for n in ROLLING_DAYS for what in ("purchases", "spent")]


def local_today(now: datetime, offset_minutes: int) -> date:
    """The chain's local date at ``now``."""
    return (now + timedelta(minutes=offset_minutes)).date()


def money(cents: int | None) -> str:
    """Cents as currency text with two decimals ("-3.00")."""
    if cents is None:
        return ""
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def windows(conn: Connection, low: int, high: int, today: date) -> dict[int, list[int]]:
    """Purchases and cents over each rolling window ending ``today`` for customers ``low < id <= high``."""
    sums = []
    for n in ROLLING_DAYS:
        inside = _days.c.day >= today - timedelta(days=n - 1)
        sums += [func.sum(case((inside, _days.c.purchases), else_=0)), func.sum(case((inside, _days.c.spent), else_=0))]
    oldest = today - timedelta(days=max(ROLLING_DAYS) - 1)
    rows = conn.execute(
        select(_days.c.customer_id, *sums)
        .where(and_(_days.c.customer_id > low, _days.c.customer_id <= high, _days.c.day >= oldest))
        .group_by(_days.c.customer_id)
    )
    return {r[0]: [int(v or 0) for v in r[1:]] for r in rows}


def statistics_of(conn: Connection, customer_id: int, today: date) -> dict[str, Any] | None:
    """One customer's statistics as JSON-ready data, or None if they have no sales."""
    row = conn.execute(select(_stats).where(_stats.c.customer_id == customer_id)).mappings().first()
    if row is None:
        return None
    rolling = windows(conn, customer_id - 1, customer_id, today).get(customer_id, [0] * len(WINDOW_COLUMNS))
    stores = conn.execute(
        select(_stores.c.store_id, _stores.c.purchases, _stores.c.spent, _stores.c.last_purchase_at)
        .where(_stores.c.customer_id == customer_id)
        .order_by(_stores.c.purchases.desc(), _stores.c.store_id)
    )
    categories = conn.execute(
        select(
            _categories.c.category,
            _categories.c.purchases,
            _categories.c.first_purchase_at,
            _categories.c.last_purchase_at,
        )
        .where(_categories.c.customer_id == customer_id)
        .order_by(_categories.c.purchases.desc(), _categories.c.category)
    )
    return {
        "purchases": row["purchases"],
        "spent": money(row["spent"]),
        "first_purchase_at": _time(row["first_purchase_at"]),
        "last_purchase_at": _time(row["last_purchase_at"]),
        "windows": {
            f"{n}d": {"purchases": rolling[2 * i], "spent": money(rolling[2 * i + 1])}
            for i, n in enumerate(ROLLING_DAYS)
        },
        "channels": {c: {"purchases": row[f"{c}_purchases"], "spent": money(row[f"{c}_spent"])} for c in CHANNELS},
        "time_of_day": {p: row[f"{p}_purchases"] for p in DAYPARTS},
        "weekdays": {d: row[f"{d}_purchases"] for d in WEEKDAYS},
        "stores": [
            {"store_id": s, "purchases": n, "spent": money(c), "last_purchase_at": _time(at)} for s, n, c, at in stores
        ],
        "categories": [
            {"category": k, "purchases": n, "first_purchase_at": _time(a), "last_purchase_at": _time(b)}
            for k, n, a, b in categories
        ],
    }


def tags_of(conn: Connection, customer_id: int) -> list[dict[str, Any]]:
    """One customer's built-in tags with the inputs that decided each (the why) and its version."""
    rows = conn.execute(
        select(_tags.c.tag, _tags.c.value, _tags.c.inputs, _tags.c.version, _tags.c.computed_at)
        .where(_tags.c.customer_id == customer_id)
        .order_by(_tags.c.tag)
    )
    return [
        {"tag": t, "value": v, "why": inputs, "version": version, "computed_at": _time(at)}
        for t, v, inputs, version, at in rows
    ]


def _time(value: datetime | None) -> str | None:
    return None if value is None else format_time(value)


def stat_cells(row: Sequence[Any], rolling: Sequence[int]) -> list[Any]:
    """A statistics.csv row: the stats columns (amounts as currency, times RFC 3339) then the windows."""
    cells: list[Any] = []
    for name, value in zip(STAT_COLUMNS, row, strict=True):
        if value is None:
            cells.append("")
        elif isinstance(value, datetime):
            cells.append(format_time(value))
        elif name == "spent" or name.endswith("_spent"):
            cells.append(money(value))
        else:
            cells.append(value)
    cells += [money(v) if i % 2 else v for i, v in enumerate(rolling)]
    return cells
