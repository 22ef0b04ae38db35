"""Every console page's latency at chain scale, server-side and in a browser.

``python -m bench.console_pages --customers 1000000 --events 10000000 [--backend sqlite|postgresql]
[--requests 50] [--browser] [--database URL] [--fill-only] [--concurrency 1,4]``

writes a chain by set-based SQL into a migrated database (:func:`bench.fill.chain` and
:func:`bench.console_fill.console`: customers with identifiers, names, tags, statistics, consents,
events of many kinds, visits, coupons, triggers, review items, segments, a fleet, imports and an
audit log), logs in as the role each page is for, and requests each page ``--requests`` times with
customers and ids picked at random:

- server-side, through the WSGI app in this process (rendering included, no network): p50 and p95
  of the wall time and the median CPU time of this process per request (on SQLite the database
  work is in it; PostgreSQL's server time is not);
- with ``--browser``, in Debian's chromium (headless, via Playwright) against the app served by
  waitress on loopback: the navigation's duration (request start to the load event's end) and its
  time to the first byte.

With ``--concurrency 1,4`` the in-process pass is replaced by clients in threads against waitress on
loopback, that many at a time (:mod:`bench.console_load`): each walks every page, and each page's p50
and p95 (to the whole answer; downloads also to their first byte) and the requests served per second
are reported.

``--database`` names a database to reuse (filled when it has no customers yet, kept afterwards);
without it a throwaway one is made and dropped.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import text

from bench.common import line, load_note
from bench.console_fill import console, jobs
from bench.fill import chain
from central.db import make_engine
from central.migrate import upgrade
from tools.databases import temporary_postgres_database


def fill(url: str, customers: int, events: int, stores: int = 100) -> None:
    """Migrate and fill the database at ``url`` unless it holds customers already."""
    upgrade(url)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            filled = conn.execute(text("SELECT COUNT(*) FROM customers")).scalar_one()
        if filled:
            line("database already filled", url.rsplit("@", 1)[-1])
            jobs(engine)
            return
        began, cpu = time.perf_counter(), time.process_time()
        chain(engine, customers, events, stores)
        line("customers, tags, statistics, events", f"{time.perf_counter() - began:.0f} s")
        console(engine, customers, events)
        line(
            f"filled {customers:,} customers, {events:,} events in",
            f"{time.perf_counter() - began:.0f} s wall, {time.process_time() - cpu:.0f} s CPU here",
        )
    finally:
        engine.dispose()


@contextmanager
def database(backend: str, given: str | None) -> Iterator[str]:
    if given:
        yield given
    elif backend == "postgresql":
        with temporary_postgres_database("cdp_bench_pages") as url:
            yield url
    else:
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{Path(folder) / 'central.db'}"


def each_backend(customers: int, events: int, backend: str, requests: int, browser: bool = False) -> None:
    """Fill a throwaway database and time every page, on SQLite and/or PostgreSQL (``both``)."""
    for one in ("sqlite", "postgresql"):
        if backend in (one, "both"):
            print(f"console pages: {customers:,} customers, {events:,} events, {one}", flush=True)
            with database(one, None) as url:
                fill(url, customers, events)
                from bench.console_timing import measure

                measure(url, requests, browser)
            line("", load_note())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--requests", type=int, default=50, help="requests per page")
    parser.add_argument("--browser", action="store_true", help="also time each page in chromium")
    parser.add_argument("--database", help="a database URL to fill once and reuse")
    parser.add_argument("--fill-only", action="store_true")
    parser.add_argument(
        "--only", default="", help="time only the pages whose label contains one of these (comma-separated)"
    )
    parser.add_argument(
        "--concurrency", default="", help="clients at a time against waitress, instead of in-process (e.g. 1,4)"
    )
    args = parser.parse_args(argv)
    concurrency = tuple(int(n) for n in args.concurrency.split(",") if n)
    with database(args.backend, args.database) as url:
        fill(url, args.customers, args.events)
        if not args.fill_only:
            from bench.console_timing import measure

            measure(url, args.requests, args.browser, only=args.only, concurrency=concurrency)
        line("", load_note())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
