"""The console overview's figures at chain scale: each query timed on a migrated database.

A chain of ``--customers`` live customers (value tier and R, F, M tags each, statistics and a home
store) and ``--events`` events (one in twenty a ``member.signup``, spread over 60 days and
``--stores`` stores) is written by set-based SQL, then every figure the overview reads is run
``--repeat`` times: median and worst in milliseconds. The tier and RFM figures' snapshot, which
each tag recompute writes, and the new members per day that the ``store_alerts`` job keeps, are
timed once; after that the page's figures read them. SQLite by default; ``--postgres`` uses a
throwaway PostgreSQL database.

    python -m bench.overview --customers 1000000 --events 10000000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from bench.common import median
from central.customers import dashboard
from central.customers.models import CustomerStats
from central.db import make_engine
from central.migrate import upgrade
from tools.databases import temporary_postgres_database

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
DAYS = 60


def _series(engine: Engine, count: int) -> str:
    """A ``SELECT n`` of 0 .. count-1 in this database's dialect."""
    if engine.dialect.name == "postgresql":
        return f"SELECT generate_series(CAST(0 AS bigint), {count - 1}) AS n"
    return f"WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n < {count - 1}) SELECT n FROM s"


def populate(engine: Engine, customers: int, events: int, stores: int) -> None:
    """Write the chain by set-based SQL (no Python loop over rows)."""
    pg = engine.dialect.name == "postgresql"
    start = NOW - timedelta(days=DAYS)
    seconds = DAYS * 86400
    at = (
        "(CAST(:start AS timestamptz) + make_interval(secs => (n * 7919) % :seconds))"
        if pg
        else "datetime(:start, '+' || ((n * 7919) % :seconds) || ' seconds')"
    )
    store = "'S' || lpad(CAST(n % :stores AS text), 3, '0')" if pg else "printf('S%03d', n % :stores)"
    # Events' stores step with n / 7, so the one in twenty that are sign-ups reach every store.
    event_store = store.replace("n % :stores", "(n / 7) % :stores")
    params = {"start": start.replace(tzinfo=None) if not pg else start, "seconds": seconds, "stores": stores}
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO customers (id, created_at, first_seen_at, last_seen_at, receipts_count, total_spent,"
                f" version) SELECT n + 1, {at}, {at}, {at}, 1, 10, 0 FROM ({_series(engine, customers)}) s"
            ),
            params,
        )
        zeros = [c.name for c in CustomerStats.__table__.columns if c.name.endswith(("_purchases", "_spent"))]
        conn.execute(
            text(
                f"INSERT INTO customer_stats (customer_id, purchases, spent, {', '.join(zeros)})"
                f" SELECT n + 1, 1 + n % 9, 1000 + (n * 37) % 90000, {', '.join('0' for _ in zeros)}"
                f" FROM ({_series(engine, customers)}) s"
            )
        )
        conn.execute(
            text(
                "INSERT INTO customer_stores (customer_id, store_id, purchases, spent)"
                f" SELECT n + 1, {store}, 1, 1000 FROM ({_series(engine, customers)}) s"
            ),
            params,
        )
        tiers = "CASE (n / 13) % 4 WHEN 0 THEN 'loyal' WHEN 1 THEN 'potential' WHEN 2 THEN 'dormant' ELSE 'other' END"
        for tag, value in (
            ("value_tier", tiers),
            ("rfm.r", "CAST(1 + (n / 3) % 5 AS text)"),
            ("rfm.f", "CAST(1 + (n / 7) % 5 AS text)"),
            ("rfm.m", "CAST(1 + (n / 11) % 5 AS text)"),
        ):
            conn.execute(
                text(
                    "INSERT INTO customer_tags (customer_id, tag, value, inputs, version, computed_at)"
                    f" SELECT n + 1, '{tag}', {value}, '{{}}', '1', :now FROM ({_series(engine, customers)}) s"
                ),
                {"now": NOW if pg else NOW.replace(tzinfo=None)},
            )
        kind = "CASE WHEN n % 20 = 0 THEN 'member.signup' ELSE 'pos.receipt' END"
        conn.execute(
            text(
                "INSERT INTO events (device_id, event_id, seq, kind, store_id, observed_at, received_at, payload,"
                f" batch_id) SELECT 'dev', CAST(n AS text), n, {kind}, {event_store}, {at}, {at}, '{{}}', 'b'"
                f" FROM ({_series(engine, events)}) s"
            ),
            params,
        )
    if pg:  # as autovacuum leaves a steady database: statistics and a visibility map for index-only scans
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    else:
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")


def timed(repeat: int, run: Callable[[], Any]) -> tuple[float, float]:
    """Median and worst milliseconds of ``repeat`` runs."""
    spent = []
    for _ in range(repeat):
        began = time.perf_counter()
        run()
        spent.append((time.perf_counter() - began) * 1000)
    return median(spent), max(spent)


@contextmanager
def database(postgres: bool) -> Iterator[str]:
    if postgres:
        with temporary_postgres_database("cdp_bench_overview") as url:
            yield url
        return
    with tempfile.TemporaryDirectory() as folder:
        yield f"sqlite:///{Path(folder) / 'central.db'}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--stores", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args(argv)
    with database(args.postgres) as url:
        upgrade(url)
        engine = make_engine(url)
        began = time.perf_counter()
        populate(engine, args.customers, args.events, args.stores)
        print(f"populated {args.customers} customers, {args.events} events in {time.perf_counter() - began:.0f} s")
        began = time.perf_counter()
        with engine.begin() as conn:
            rows = dashboard.snapshot(conn, NOW)
        print(f"snapshot (run by each tag recompute): {rows} rows in {time.perf_counter() - began:.1f} s")
        today = dashboard.local_today(NOW, 480)
        first = today - timedelta(days=29)
        one = ("S001",)
        with Session(engine) as db:
            live = timed(1, lambda: dashboard.new_members(db, first, today, 480))[0]
            db.rollback()
        print(f"new_members(30 days) from the events alone: {live:.0f} ms")
        began = time.perf_counter()
        with engine.begin() as conn:
            rows = dashboard.count_new_members(conn, first, today - timedelta(days=1), 480)
        print(f"store_alerts job's recount: {rows} store days in {time.perf_counter() - began:.1f} s")
        figures: dict[str, Callable[[Session], Any]] = {
            "members_total": lambda db: dashboard.members_total(db),
            "members_total(store)": lambda db: dashboard.members_total(db, one),
            "new_members(30 days)": lambda db: dashboard.new_members(db, first, today, 480),
            "new_members(store)": lambda db: dashboard.new_members(db, first, today, 480, one),
            "tier_sales": lambda db: dashboard.tier_sales(db),
            "tier_sales(store)": lambda db: dashboard.tier_sales(db, one),
            "rfm_grid": lambda db: dashboard.rfm_grid(db),
            "rfm_grid(store)": lambda db: dashboard.rfm_grid(db, one),
        }
        with Session(engine) as db:
            for name, figure in figures.items():
                middle, worst = timed(args.repeat, lambda f=figure: f(db))  # type: ignore[misc]
                print(f"{engine.dialect.name:10} {name:24} median {middle:8.1f} ms  worst {worst:8.1f} ms")
        engine.dispose()
        page(url, args.repeat)
    return 0


def page(url: str, repeat: int) -> None:
    """Time ``GET /console/`` for an administrator, server-side (Flask's test client, no network)."""
    from central.accounts import users
    from central.app import create_app
    from central.config import load_config
    from central.db import session_factory

    with tempfile.TemporaryDirectory() as data_dir:
        config = load_config(None, environ={}, overrides={"database.url": url, "server.data_dir": data_dir})
        app = create_app(config, test_config={"CLOCK": lambda: NOW})
        with session_factory(app)() as db:
            users.add(db, "bench", "admin", "bench password 1", now=NOW, actor="bench")
            db.commit()
        client = app.test_client()
        form = client.get("/console/login").get_data(as_text=True)
        token = form.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        login = {"username": "bench", "password": "bench password 1", "csrf_token": token}
        assert client.post("/console/login", data=login).status_code == 302
        shown = client.get("/console/")
        assert shown.status_code == 200 and b'id="table-rfm"' in shown.data, shown.status_code
        middle, worst = timed(repeat, lambda: client.get("/console/"))
        print(f"{'GET /console/ (admin)':35} median {middle:8.1f} ms  worst {worst:8.1f} ms")


if __name__ == "__main__":
    raise SystemExit(main())
