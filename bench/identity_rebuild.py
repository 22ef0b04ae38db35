"""Full rebuild of the identity graph from its ledger: seconds and peak memory for N links.

``python -m bench.identity_rebuild [--links N] [--backend sqlite|postgresql|both]`` fills a fresh
database (migrated like production) with N identifiers, each linked by a ledger row, two per
customer, and every tenth customer merged into the one before it (a merge row), all generated
in SQL. A separate process then runs ``central.identity.ledger.rebuild`` and reports its wall
time and its own peak resident memory; on PostgreSQL the work happens in the server, so the peak
resident memory of the server process serving the rebuild is read from /proc as well.
The target is 10,000,000 links in at most 60 s and 4 GB (``--links 10000000``).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy.orm import Session

from bench.common import line
from central.db import make_engine
from central.migrate import upgrade
from tools.databases import temporary_postgres_database

_SERIES = {
    "sqlite": "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {n}) SELECT n FROM s",
    "postgresql": "SELECT generate_series(1, {n}) AS n",
}
_TS = {"sqlite": "'2026-11-23 02:00:00.000000'", "postgresql": "TIMESTAMPTZ '2026-11-23 02:00:00+00'"}


def fill(url: str, links: int) -> None:
    """N identifiers and link rows, N/2 customers, every tenth customer merged into the previous one."""
    engine = make_engine(url)
    dialect = engine.dialect.name
    series, ts = _SERIES[dialect], _TS[dialect]
    customers = (links + 1) // 2
    root = "(CASE WHEN c - (c / 10) * 10 = 0 THEN c - 1 ELSE c END)"
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO customers (id, created_at, first_seen_at, last_seen_at, receipts_count, total_spent,"
            f" merged_into, version) SELECT n, {ts}, {ts}, {ts}, 0, 0, NULL, 0 FROM ({series.format(n=customers)}) AS q"
        )
        conn.exec_driver_sql("UPDATE customers SET merged_into = id - 1 WHERE id - (id / 10) * 10 = 0")
        conn.exec_driver_sql(
            "INSERT INTO identifiers (id, kind, value, customer_id, state, created_at, last_seen_at,"
            " partners_total, partners_today, partners_day)"
            f" SELECT n, CASE WHEN n - (n / 2) * 2 = 0 THEN 'phone' ELSE 'member_card' END, 'v' || n,"
            f" {root.replace('c', '((n + 1) / 2)')}, 'linked', {ts}, {ts}, 0, 0, ''"
            f" FROM ({series.format(n=links)}) AS q"
        )
        conn.exec_driver_sql(
            "INSERT INTO identity_ledger (at, action, rule, identifier_id, customer_id)"
            f" SELECT {ts}, 'link', 'new_customer', n, (n + 1) / 2 FROM ({series.format(n=links)}) AS q"
        )
        conn.exec_driver_sql(
            "INSERT INTO identity_ledger (at, action, rule, customer_id, other_customer_id)"
            f" SELECT {ts}, 'merge', 'shared_identifier', id - 1, id FROM customers WHERE id - (id / 10) * 10 = 0"
        )
        if dialect == "postgresql":
            conn.exec_driver_sql("SELECT setval('customers_id_seq', (SELECT max(id) FROM customers))")
    if dialect == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    engine.dispose()


def measure(url: str) -> dict[str, float]:
    """Run the rebuild in this process and report seconds, peak RSS and what it found."""
    from central.identity import ledger

    engine = make_engine(url)
    server_mib = 0.0
    with Session(engine) as db:
        backend = db.connection().exec_driver_sql("SELECT pg_backend_pid()").scalar() if "postgresql" in url else None
        started = time.perf_counter()
        found = ledger.rebuild(db)
        seconds = time.perf_counter() - started
        db.rollback()
        if backend is not None:
            server_mib = _peak_of(int(backend))
    engine.dispose()
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "seconds": seconds,
        "peak_mib": peak_mib,
        "server_mib": server_mib,
        "links": found.links,
        "mismatches": found.identifier_mismatches + found.customer_mismatches,
    }


def _peak_of(pid: int) -> float:
    """Peak resident memory (VmHWM) of a local process in MiB, or 0 where /proc does not show it."""
    try:
        for status in Path(f"/proc/{pid}/status").read_text().splitlines():
            if status.startswith("VmHWM:"):
                return int(status.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run(url: str, links: int, label: str) -> None:
    started = time.perf_counter()
    upgrade(url)
    fill(url, links)
    line(f"{label}: filled {links:,} links", f"{time.perf_counter() - started:.1f} s")
    child = subprocess.run(
        [sys.executable, "-m", "bench.identity_rebuild", "--measure", url],
        capture_output=True,
        text=True,
        check=True,
    )
    figures = json.loads(child.stdout.strip().splitlines()[-1])
    line(f"{label}: rebuild of {int(figures['links']):,} ledger rows", f"{figures['seconds']:.1f} s")
    line(f"{label}: peak memory of the rebuilding process", f"{figures['peak_mib']:.0f} MiB")
    if figures["server_mib"]:
        line(f"{label}: peak memory of its server process", f"{figures['server_mib']:.0f} MiB")
    line(f"{label}: mismatches found", str(int(figures["mismatches"])))


def main(links: int = 100_000, backend: str = "both") -> None:
    print(f"identity rebuild from the ledger, {links:,} links", flush=True)
    if backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            run(f"sqlite:///{Path(tmp) / 'central.db'}", links, "sqlite")
    if backend in ("postgresql", "both"):
        with temporary_postgres_database("cdp_bench_rebuild") as url:
            run(url, links, "postgresql")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="bench.identity_rebuild")
    parser.add_argument("--links", type=int, default=100_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--measure", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure)))
    else:
        main(args.links, args.backend)
