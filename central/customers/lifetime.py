"""The predicted lifetime value tag: BG/NBD plus Gamma-Gamma (:mod:`central.customers.clv`) over the chain.

Histories come from ``customer_days`` in days: a customer's purchase days give the repeat purchases
(days with a purchase after the first), the recency (first to last purchase day) and the age (first
purchase day to today); the mean repeat spend is what the later purchase days brought. Both models
are fitted in each recompute on the chain (an even sample of at most ``tags.clv_fit_customers``
customers by id on a large one), and the fitted parameters are stored with every
customer's inputs. A chain too small or too uniform to fit gets no ``value.clv`` tags, and the
recompute says why. The value profiles a customer: it is written only for customers the recompute's
profiling gate admits, though every customer's history informs the fit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
from sqlalchemy import Connection

from central import bulk
from central.customers.clv import ClvError, Histories, fit_purchases, fit_spend, lifetime_value
from central.customers.profiling import GATE
from central.customers.tags import Run, version

DAYS_PER_MONTH = 365.25 / 12
CHUNK = 50_000
# Days come as ordinals (1 January of year 1 is day 1, as date.toordinal) and sums as integers, so
# the rows go into one integer array at once instead of a date parsed per row.
_HISTORIES = (
    "WITH g AS (SELECT customer_id, COUNT(*) AS n, MIN(day) AS first_day, MAX(day) AS last_day, SUM(spent) AS total"
    " FROM customer_days WHERE purchases > 0 GROUP BY customer_id)"
    " SELECT g.customer_id, g.n, CAST(julianday(g.first_day) - 1721424.5 AS INTEGER),"
    " CAST(julianday(g.last_day) - 1721424.5 AS INTEGER), g.total, d.spent, {profiled} FROM g"
    " JOIN customer_days d ON d.customer_id = g.customer_id AND d.day = g.first_day{gate} ORDER BY g.customer_id"
)
# The same rows on PostgreSQL in one pass over customer_days in key order. Joined back as above, its
# parallel plan built the whole grouping once in each process: three times the CPU of this one.
_HISTORIES_POSTGRESQL = (
    "WITH g AS (SELECT customer_id, COUNT(*) AS n, MIN(day) AS first_day, MAX(day) AS last_day,"
    " CAST(SUM(spent) AS bigint) AS total, CAST(SUM(CASE WHEN rn = 1 THEN spent ELSE 0 END) AS bigint) AS spent"
    " FROM (SELECT customer_id, day, spent, ROW_NUMBER() OVER (PARTITION BY customer_id ORDER BY day) AS rn"
    " FROM customer_days WHERE purchases > 0) d GROUP BY customer_id)"
    " SELECT g.customer_id, g.n, g.first_day - DATE '0001-01-01' + 1, g.last_day - DATE '0001-01-01' + 1, g.total,"
    " g.spent, {profiled} FROM g{gate} ORDER BY g.customer_id"
)


def write_tags(conn: Connection, run: Run) -> tuple[int, str | None]:
    """Fit the models, write ``value.clv`` for every customer with a purchase; (tags written, problem or None)."""
    gate = run.profiling
    profiled, join = "1", ""
    if gate is not None:
        # A join, not IN (SELECT ...) in the select list: PostgreSQL runs that as a subplan that
        # rescans the gate for every customer once the gate outgrows work_mem (a million customers).
        profiled = f"CASE WHEN a.customer_id IS {'NOT ' if gate.lists_allowed else ''}NULL THEN 1 ELSE 0 END"
        join = f" LEFT JOIN {GATE} a ON a.customer_id = g.customer_id"
    postgres = conn.dialect.name == "postgresql"
    sql = (_HISTORIES_POSTGRESQL if postgres else _HISTORIES).format(profiled=profiled, gate=join)
    # Plain tuples (on SQLite the driver's own): numpy looks each Row's items up by key otherwise.
    rows = [tuple(row) for row in conn.exec_driver_sql(sql).all()] if postgres else bulk.sqlite_fetch(conn, sql, ())
    if not rows:
        return 0, "no customer has a purchase yet"
    table = np.array(rows, dtype=np.int64)
    ids = table[:, 0]
    frequency = (table[:, 1] - 1).astype(np.float64)
    first = table[:, 2].astype(np.float64)
    last = table[:, 3].astype(np.float64)
    repeat_cents = (table[:, 4] - table[:, 5]).astype(np.float64)
    # Everyone's history informs the chain's models; only customers the profiling gate admits get a value.
    admitted = table[:, 6] != 0
    today = float(run.today.toordinal())
    recency = last - first
    age = np.maximum(today - first, recency)
    # Returns can leave a day's net amount at or below zero; the spend model needs a positive mean.
    mean_spend = np.where(frequency > 0, np.maximum(repeat_cents / np.maximum(frequency, 1) / 100.0, 0.01), 0.0)
    try:
        histories = Histories.of(frequency, recency, age, mean_spend)
        # An even sample by customer id keeps each fit's cost bounded on a large chain.
        stride = max(1, -(-len(ids) // run.config.tags_clv_fit_customers))
        sample = (
            histories
            if stride == 1
            else Histories.of(frequency[::stride], recency[::stride], age[::stride], mean_spend[::stride])
        )
        purchases = fit_purchases(sample).params
        spend = fit_spend(sample).params
        with np.errstate(all="ignore"):
            values = lifetime_value(
                purchases,
                spend,
                histories,
                periods=run.config.tags_clv_horizon_months,
                period_length=DAYS_PER_MONTH,
                discount_rate=run.config.tags_clv_monthly_discount,
            )
    except ClvError as exc:
        return 0, f"lifetime value not predicted: {exc}"
    finite = np.isfinite(values)
    if admitted.any() and not finite[admitted].any():
        return 0, "lifetime value not predicted: the fitted models gave no finite value"
    problem = None
    if not finite[admitted].all():
        missing = int((~finite[admitted]).sum())
        problem = f"lifetime value not predicted for {missing} customers (the models gave no finite value)"
    model = {
        "r": purchases.r,
        "alpha": purchases.alpha,
        "a": purchases.a,
        "b": purchases.b,
        "p": spend.p,
        "q": spend.q,
        "gamma": spend.gamma,
    }
    keep = finite & admitted
    tag_version = version(run.config, "value_clv")
    columns: list[list[Any]] = [
        ids[keep].tolist(),
        [f"{v:.2f}" for v in values[keep].tolist()],
        frequency[keep].astype(np.int64).tolist(),
        recency[keep].astype(np.int64).tolist(),
        age[keep].astype(np.int64).tolist(),
        [round(v, 2) for v in mean_spend[keep].tolist()],
    ]
    # The constant inputs are bound once; each row's inputs object is built by the database, in C.
    model_json = orjson.dumps({k: round(v, 6) for k, v in model.items()}).decode()
    written = len(columns[0])
    horizon = run.config.tags_clv_horizon_months
    insert = _insert_postgresql if postgres else _insert_sqlite
    constants: tuple[Any, ...] = (horizon, model_json, tag_version, run.now if postgres else bulk.sqlite_time(run.now))
    for start in range(0, written, CHUNK):
        insert(conn, [column[start : start + CHUNK] for column in columns], constants)
    return written, problem


# Each row's inputs object is built by the database (in C) from the numbers bound for it.
_POSTGRESQL = (
    "INSERT INTO customer_tags (customer_id, tag, value, inputs, version, computed_at)"
    " SELECT r.customer_id, 'value.clv', r.value, json_build_object('repeat_purchase_days', r.repeat_days,"
    " 'recency_days', r.recency, 'age_days', r.age, 'mean_repeat_spend', r.mean_spend,"
    " 'horizon_months', CAST(%s AS integer), 'model', CAST(%s AS json)), %s, %s"
    " FROM unnest(CAST(%s AS bigint[]), CAST(%s AS text[]), CAST(%s AS integer[]), CAST(%s AS integer[]),"
    " CAST(%s AS integer[]), CAST(%s AS double precision[])) AS r(customer_id, value, repeat_days, recency, age,"
    " mean_spend)"
)
_SQLITE = (
    "INSERT INTO customer_tags (customer_id, tag, value, inputs, version, computed_at)"
    " VALUES (?, 'value.clv', ?, json_object('repeat_purchase_days', ?, 'recency_days', ?, 'age_days', ?,"
    " 'mean_repeat_spend', ?, 'horizon_months', ?, 'model', json(?)), ?, ?)"
)


def _insert_postgresql(conn: Connection, columns: list[list[Any]], constants: tuple[Any, ...]) -> None:
    """One ``INSERT ... SELECT`` from one array per column (see :func:`central.bulk.pg_array`)."""
    arrays = tuple(map(bulk.pg_array, columns, ("json", "text", "json", "json", "json", "json")))
    conn.exec_driver_sql(_POSTGRESQL, (*constants, *arrays))


def _insert_sqlite(conn: Connection, columns: list[list[Any]], constants: tuple[Any, ...]) -> None:
    """``executemany`` of one ``INSERT`` whose inputs object SQLite builds from the bound numbers."""
    rows = [(*row, *constants) for row in zip(*columns, strict=True)]
    conn.exec_driver_sql(_SQLITE, rows)
