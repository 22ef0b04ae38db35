"""Daily sales and coupon liability at scale: the finance queries of decision 0104 on a year of receipts.

``python -m bench daily-sales --events 1000000 [--codes 1000000] [--backend sqlite|postgresql|both] [--runs 5]``

writes by set-based SQL into a migrated database ``--events`` receipts across 50 stores and 365
days (one in forty a refund, one in a hundred a reprint set aside, one in twenty-five an online
order, two in five linked to a customer) and a quarter as many other events (member scans) beside
them, then 100 coupon campaigns with ``--codes`` codes between them (three in ten redeemed over the
year, one in fifty revoked, half the campaigns over). It prints the median time of
:func:`central.customers.daily_sales.daily_sales` for the last 7, 31 and 366 local days, of
:func:`central.campaigns.liability.liabilities` with a month's period (the campaigns page's query),
and the plan each database chose for the two, so a scan where a seek is wanted shows. Figures only,
never an assertion.
"""

from __future__ import annotations

import time
from datetime import timedelta

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from bench.common import line, load_note, median, on_each_backend
from bench.fill import NOW, Dialect, analyze, series
from central.campaigns.liability import liabilities
from central.customers import daily_sales
from central.customers.dashboard import local_midnight, local_today
from central.db import make_engine

STORES = 50
DAYS = 365
CAMPAIGNS = 100
OFFSET = 480  # UTC+08:00, the default customers.utc_offset_minutes


def fill(engine: Engine, receipts: int, codes: int) -> None:
    """A year of receipts and other events, their receipt rows and customer links, and the coupon tables."""
    d = Dialect(engine, NOW - timedelta(days=DAYS))
    p = {**d.params(), "seconds": DAYS * 86400, "stores": STORES, "receipts": receipts}
    at = d.at()
    store = d.padded("S", "n % :stores", 3)
    total = "CASE WHEN n % 40 = 3 THEN '-' || (n % 90) || '.50' ELSE (n % 500) || '.50' END"
    kind = "CASE WHEN n >= :receipts THEN 'scan.member' WHEN n % 25 = 24 THEN 'order.online' ELSE 'pos.receipt' END"
    payload = d.json('\'{"receipt_no": "R\' || n || \'", "total": "\' || ' + total + " || '\"}'")
    everything = f"FROM ({series(engine, receipts + receipts // 4)}) s"
    sales = f"FROM ({series(engine, receipts)}) s"
    per = max(1, codes // CAMPAIGNS)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO customers (id, created_at, first_seen_at, last_seen_at, receipts_count, total_spent,"
                f" version) SELECT n + 1, :start, :start, :start, 1, 10, 0 FROM ({series(engine, 1000)}) s"
            ),
            p,
        )
        conn.execute(
            text(
                "INSERT INTO events (id, device_id, event_id, seq, kind, store_id, observed_at, received_at, payload,"
                f" batch_id) SELECT n + 1, 'dev', CAST(n AS text), n, {kind}, {store}, {at}, {at}, {payload}, 'b'"
                f" {everything}"
            ),
            p,
        )
        # The till's receipts: one in a hundred a reprint of the receipt before it, set aside.
        conn.execute(
            text(
                "INSERT INTO receipts (id, event_pk, device_id, store_id, receipt_no, total, observed_at, register,"
                f" reprint_of, flag) SELECT n + 1, n + 1, 'dev', {store}, 'R' || n, CAST({total} AS numeric), {at},"
                " 'R1', CASE WHEN n % 100 = 1 THEN n END, CASE WHEN n % 100 = 1 THEN 'reprint' END"
                f" {sales} WHERE n % 25 <> 24"
            ),
            p,
        )
        conn.execute(
            text(
                "INSERT INTO event_customers (event_pk, customer_id, identifier_id)"
                f" SELECT n + 1, 1 + n % 1000, 1 + n % 1000 {sales} WHERE n % 5 < 2 AND n % 100 <> 1"
            )
        )
        for c in range(1, CAMPAIGNS + 1):
            # Even campaigns ended a month ago, odd ones run for another forty days.
            ends = d.at(f"{DAYS * 86400} + {-30 if c % 2 == 0 else 40} * 86400")
            first = f"({c} - 1) * :per + n + 1"
            campaign_codes = f"FROM ({series(engine, per)}) s"
            for statement in (
                "INSERT INTO coupon_campaigns (id, name, value, valid_from, valid_to, max_redemptions, redeemed,"
                f" offline_budget, stores, created_at, created_by) VALUES ({c}, 'bench-{c}', {5 + c % 20}, :start,"
                f" {ends}, 1000000000, 0, 100, NULL, :start, 'bench')",
                "INSERT INTO coupon_codes (serial, campaign_id, member_id, issued_at, revoked_at)"
                f" SELECT {first}, {c}, NULL, :start, CASE WHEN n % 50 = 7 THEN :now END {campaign_codes}",
                "INSERT INTO coupon_redemptions (id, serial, campaign_id, event_pk, device_id, store_id, observed_at,"
                f" applied_at, status) SELECT {first}, {first}, {c}, 1, 'dev', {store}, {at}, {at}, 'applied'"
                f" {campaign_codes} WHERE n % 10 < 3",
            ):
                conn.execute(text(statement), {**p, "per": per})
    analyze(engine)


def _plan(engine: Engine, sql: str, params: dict[str, object]) -> str:
    """The database's plan for ``sql``, one line per step, indented."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            rows = conn.execute(text("EXPLAIN " + sql), params).scalars().all()
        else:
            rows = [r[-1] for r in conn.execute(text("EXPLAIN QUERY PLAN " + sql), params)]
    return "\n".join(f"      {row}" for row in rows)


def measure(url: str, runs: int) -> None:
    """Median seconds of the three ranges and of the liability, with the plans."""
    engine = make_engine(url)
    today = local_today(NOW, OFFSET)
    try:
        with Session(engine) as db:
            for days in (7, 31, 366):
                first = today - timedelta(days=days - 1)
                times, rows = [], 0
                for _ in range(runs):
                    began = time.perf_counter()
                    rows = len(daily_sales.daily_sales(db, first, today, OFFSET))
                    times.append(time.perf_counter() - began)
                line(f"daily sales, {days} days ({rows} store-days)", f"{1000 * median(times):,.0f} ms")
            month = (local_midnight(today.replace(day=1), OFFSET), local_midnight(today + timedelta(days=1), OFFSET))
            for label, period in (("as of now", None), ("with a month's redemptions", month)):
                times = []
                for _ in range(runs):
                    began = time.perf_counter()
                    owed = liabilities(db, NOW, period)
                    times.append(time.perf_counter() - began)
                codes = sum(o.issued for o in owed)
                line(f"liability {label}, {len(owed)} x {codes:,} codes", f"{1000 * median(times):,.0f} ms")
        postgres = engine.dialect.name == "postgresql"
        start = local_midnight(today - timedelta(days=6), OFFSET)
        end = local_midnight(today + timedelta(days=1), OFFSET)
        if not postgres:
            start, end = start.replace(tzinfo=None), end.replace(tzinfo=None)
        sql = daily_sales._sql(postgres, OFFSET, scoped=False)
        print("    plan, daily sales (7 days):")
        print(_plan(engine, sql, {"start": start, "end": end}))
        redeemed = (
            "SELECT campaign_id, count(*) FROM coupon_redemptions WHERE status = 'applied'"
            " AND observed_at >= :start AND observed_at < :end GROUP BY campaign_id"
        )
        print("    plan, redemptions in the period:")
        print(_plan(engine, redeemed, {"start": start, "end": end}))
    finally:
        engine.dispose()


def main(receipts: int = 1_000_000, codes: int = 1_000_000, backend: str = "both", runs: int = 5) -> None:
    """Fill each backend with ``receipts`` receipts and ``codes`` coupon codes and print the timings."""
    print(f"Daily sales and coupon liability: {receipts:,} receipts, {STORES} stores, {DAYS} days, {codes:,} codes")
    print(f"  ({load_note()})")

    def filled(url: str, size: int) -> None:
        engine = make_engine(url)
        began = time.perf_counter()
        try:
            fill(engine, size, codes)
        finally:
            engine.dispose()
        line("fill", f"{time.perf_counter() - began:.0f} s")

    on_each_backend(backend, filled, measure, receipts, runs)
    print(f"  ({load_note()})")
