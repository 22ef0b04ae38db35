"""The console overview's figures at chain scale: each query timed on a migrated database.

A chain of ``--customers`` live customers (value tier and R, F, M tags each, statistics and a home
store) and ``--events`` events (one in twenty a ``member.signup``, spread over 60 days and
``--stores`` stores) is written by set-based SQL (:func:`bench.fill.chain`), then every figure the overview reads is run
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
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from bench.common import median
from bench.fill import NOW, analyze, chain
from central.customers import dashboard
from central.db import make_engine
from central.migrate import upgrade
from tools.databases import temporary_postgres_database


def populate(engine: Engine, customers: int, events: int, stores: int) -> None:
    """Write the chain by set-based SQL (no Python loop over rows), then statistics."""
    chain(engine, customers, events, stores)
    analyze(engine)


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
    from central.config_loader import load_config
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
