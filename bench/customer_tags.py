"""Customer statistics and tags: the incremental statistics step, and full recomputes at chain scale.

``stats``: sales/s through :func:`central.customers.statistics.record_sales` alone (the step ingest
adds to each transaction), batches of 500 sales each committed, owners and catalogue already in
the database; the baseline, measured in the same run, is the bare ``events`` insert of the same
sales (ingest's own first statement). On PostgreSQL the rate is also given per CPU-second of
this process and the database backend together (the backend's read from ``/proc/<pid>/stat``).
``recompute``: a chain of ``--customers`` customers and 5 sales each is written straight into
``events`` and ``event_customers`` by set-based SQL, then the statistics are rebuilt from the
events (``recompute-tags --statistics``'s first step) and every built-in tag is recomputed twice
(into an empty table, then replacing every tag), each timed with the CPU seconds of this process
and of the PostgreSQL backend and the slowest steps, with the process's peak resident memory; then
the lifetime value's step alone three times (fits, forecast and rows, each run rolled back).
Nine in ten customers have profiling consent, so the profiling gate is part of the timed recompute.
"""

from __future__ import annotations

import random
import resource
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Connection, Engine

from bench.common import backends_cpu, line, load_note, median
from central import bulk
from central.config import CentralConfig
from central.config_loader import load_config
from central.customers import catalog, lifetime, profiling, rebuild, statistics, tagging
from central.customers.statistics import StoredEvent
from central.customers.tags import Run
from central.db import make_engine
from central.identity.models import EventCustomer
from central.ingest.batches import _EVENT_COLUMNS
from central.ingest.models import Event
from central.migrate import upgrade
from central.models import table
from tools.databases import temporary_postgres_database

BATCH = 500
SKUS = 200
START = datetime(2025, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
CATALOGUE = ["sku,name,category\n", *[f"SKU{k},Product {k},Dept {k % 12} > Shelf {k % 40}\n" for k in range(SKUS)]]


@contextmanager
def _database(backend: str) -> Iterator[str]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{Path(tmp) / 'central.db'}"
    else:
        with temporary_postgres_database("cdp_bench_tags") as url:
            yield url


def _server_cpu(conn: Connection) -> float | None:
    """CPU seconds the PostgreSQL backend serving ``conn`` has used (parallel workers not counted); None on SQLite."""
    if conn.dialect.name != "postgresql":
        return None
    return backends_cpu([conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()])


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _sales(count: int, customers: int, rng: random.Random) -> list[StoredEvent]:
    events: list[StoredEvent] = []
    for n in range(count):
        kind = rng.choice(("pos.receipt", "pos.receipt", "order.online"))
        payload = {
            "receipt_no": f"R{n}",
            "total": f"{rng.randrange(1, 50_000) / 100:.2f}",
            "channel": rng.choice(("app", "mini_program", "web")),
            "items": [{"sku": f"SKU{rng.randrange(SKUS + 20)}", "qty": 1} for _ in range(rng.randint(1, 4))],
        }
        at = START + timedelta(seconds=rng.randrange(700 * 86400))
        events.append((n + 1, kind, rng.choice(("S001", "S002", "S003")), at, payload))
    return events


def _prepare(engine: Engine, sales: list[StoredEvent], customers: int, rng: random.Random) -> None:
    with engine.begin() as conn:
        catalog.load(conn, CATALOGUE, NOW)
        owners = [(pk, rng.randrange(1, customers + 1), 1) for pk, *_ in sales]
        bulk.insert(conn, table(EventCustomer), ("event_pk", "customer_id", "identifier_id"), owners)


def _time_stats(engine: Engine, sales: list[StoredEvent]) -> tuple[float, float, float]:
    """(wall, CPU, server CPU) seconds in the statistics step; the commits (ingest's, shared) not counted.

    Server CPU is the PostgreSQL backend's own, read from ``/proc`` around each call (0 on SQLite,
    whose work is in this process's CPU already).
    """
    spent = cpu = server = 0.0
    for start in range(0, len(sales), BATCH):
        with engine.begin() as conn:
            pid = (
                conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
                if engine.dialect.name == "postgresql"
                else None
            )
            started_server = backends_cpu([pid] if pid else [])
            started, started_cpu = time.perf_counter(), time.process_time()
            statistics.record_sales(conn, sales[start : start + BATCH], offset_minutes=480, marks=500)
            spent += time.perf_counter() - started
            cpu += time.process_time() - started_cpu
            server += backends_cpu([pid] if pid else []) - started_server
    return spent, cpu, server


def _time_baseline(engine: Engine, sales: list[StoredEvent]) -> float:
    """Seconds spent inserting the same sales into ``events``, counted the same way."""
    events = table(Event)
    spent = 0.0
    for start in range(0, len(sales), BATCH):
        rows = [
            ("bench", f"e{pk}", pk, kind, store, at, at, payload, "b", None, None, None)
            for pk, kind, store, at, payload in sales[start : start + BATCH]
        ]
        with engine.begin() as conn:
            started = time.perf_counter()
            bulk.insert(conn, events, _EVENT_COLUMNS, rows, skip_conflicts_on=("device_id", "event_id"))
            spent += time.perf_counter() - started
    return spent


def stats(events: int, customers: int, runs: int, backend: str) -> None:
    print(f"incremental statistics: {events:,} sales of {customers:,} customers, batches of {BATCH}; {load_note()}")
    rng = random.Random(8)
    sales = _sales(events, customers, rng)
    for name in _backends(backend):
        rates, cpu_rates, both_rates, baselines = [], [], [], []
        for _ in range(runs):
            with _database(name) as url:
                upgrade(url)
                engine = make_engine(url)
                try:
                    _prepare(engine, sales, customers, rng)
                    wall, cpu, server = _time_stats(engine, sales)
                    rates.append(events / wall)
                    cpu_rates.append(events / cpu)
                    both_rates.append(events / (cpu + server))
                    baselines.append(events / _time_baseline(engine, sales))
                finally:
                    engine.dispose()
        rate, base = median(rates), median(baselines)
        line(f"{name}: statistics step", f"{rate:,.0f} sales/s (target >= 50,000)")
        line(f"{name}: statistics step per CPU-second of this process", f"{median(cpu_rates):,.0f} sales")
        if name == "postgresql":
            line(f"{name}: statistics step per CPU-second, server's included", f"{median(both_rates):,.0f} sales")
        line(f"{name}: baseline, bare events insert", f"{base:,.0f} sales/s (statistics at {rate / base:.2f}x)")


def _generate(engine: Engine, customers: int, sales: int) -> None:
    """``sales`` sale events over ~700 days and their owners, written by the database itself."""
    postgres = engine.dialect.name == "postgresql"
    # Customer c buys within its own span of 1-100 days starting on one of 600 days, so that the
    # chain has the mix of short and long lives the lifetime-value models are fitted to.
    offset = "(c * 7717) % 600 * 86400 + (i * 104729) % ((1 + (c * 31) % 100) * 86400)"
    if postgres:
        counted = f"SELECT CAST(g AS bigint) AS i FROM generate_series(1, {sales}) AS g"
        at = f"(timestamptz '2025-01-01 00:00:00+00' + make_interval(secs => {offset}))"
        total = "CAST(((i * 7919) % 50000) / 100.0 + 0.01 AS text)"
        payload = (
            f"json_build_object('receipt_no', 'R' || i, 'total', {total}, 'channel',"
            " (ARRAY['app', 'mini_program', 'web'])[1 + i % 3], 'items',"
            " json_build_array(json_build_object('sku', 'SKU' || (i % 220), 'qty', 1),"
            " json_build_object('sku', 'SKU' || ((i * 31) % 220), 'qty', 2)))"
        )
    else:
        counted = f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {sales}) SELECT i FROM n"
        seconds = f"'+' || ({offset}) || ' seconds'"
        at = f"(strftime('%Y-%m-%d %H:%M:%f', '2025-01-01', {seconds}) || '000')"
        total = "printf('%.2f', ((i * 7919) % 50000) / 100.0 + 0.01)"
        payload = (
            f"json_object('receipt_no', 'R' || i, 'total', {total}, 'channel',"
            " CASE i % 3 WHEN 0 THEN 'app' WHEN 1 THEN 'mini_program' ELSE 'web' END, 'items',"
            " json_array(json_object('sku', 'SKU' || (i % 220), 'qty', 1),"
            " json_object('sku', 'SKU' || ((i * 31) % 220), 'qty', 2)))"
        )
    numbers = f"SELECT i, 1 + (i * 2654435761) % {customers} AS c FROM ({counted}) AS k"
    kind = "CASE WHEN i % 4 = 0 THEN 'order.online' ELSE 'pos.receipt' END"
    store = "'S' || (i % 7)"
    # psycopg reads % as a placeholder: the modulo operator is written %% there.
    escape = (lambda sql: sql.replace("%", "%%")) if postgres else (lambda sql: sql)
    with engine.begin() as conn:
        catalog.load(conn, CATALOGUE, NOW)
        conn.exec_driver_sql(
            escape(
                "INSERT INTO events (id, device_id, event_id, seq, kind, store_id, observed_at, received_at, payload,"
                f" batch_id) SELECT i, 'bench', 'e' || i, i, {kind}, {store}, {at}, {at}, {payload}, 'b'"
                f" FROM ({numbers}) AS n"
            )
        )
        conn.exec_driver_sql(
            escape(
                "INSERT INTO event_customers (event_pk, customer_id, identifier_id)"
                f" SELECT i, c, 1 FROM ({numbers}) AS n"
            )
        )
        _consents(conn, customers, postgres)
    if postgres:
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")


def _consents(conn: Connection, customers: int, postgres: bool) -> None:
    """The customers, nine in ten of them with profiling consent (tags that profile need it)."""
    if postgres:
        people = f"SELECT CAST(g AS integer) AS c FROM generate_series(1, {customers}) AS g"
        stamp, yes = "timestamptz '2025-01-01 00:00:00+00'", "true"
    else:
        people = (
            f"WITH RECURSIVE n(c) AS (SELECT 1 UNION ALL SELECT c + 1 FROM n WHERE c < {customers}) SELECT c FROM n"
        )
        stamp, yes = "'2025-01-01 00:00:00.000000'", "1"
    conn.exec_driver_sql(
        "INSERT INTO customers (id, created_at, first_seen_at, last_seen_at, receipts_count, total_spent, version)"
        f" SELECT c, {stamp}, {stamp}, {stamp}, 0, 0, 0 FROM ({people}) AS p"
    )
    conn.exec_driver_sql(
        "INSERT INTO consent_decisions (customer_id, purpose, channel, granted, observed_at, recorded_at, source,"
        " notice_version, scope, origin, origin_id)"
        f" SELECT c, 'profiling', 'all', {yes}, {stamp}, {stamp}, 'import', '', '', 'bench', 'p' || c"
        f" FROM ({people}) AS p WHERE c / 10 * 10 <> c"  # not every tenth (psycopg reads % as a placeholder)
    )


def recompute(customers: int, backend: str) -> None:
    sales = customers * 5
    print(f"full recompute: {customers:,} customers, {sales:,} sales; {load_note()}")
    config = load_config(None, environ={})
    for name in _backends(backend):
        with _database(name) as url:
            upgrade(url)
            engine = make_engine(url)
            try:
                started = time.perf_counter()
                _generate(engine, customers, sales)
                line(f"{name}: chain written (setup, not timed)", f"{time.perf_counter() - started:.1f} s")
                started = time.perf_counter()
                with engine.begin() as conn:
                    rebuild.rebuild_all(conn, config.customers_utc_offset_minutes)
                stats_s = time.perf_counter() - started
                line(f"{name}: statistics from events", f"{stats_s:.1f} s")
                # The first recompute writes into an empty table; the second replaces every tag, as
                # each recompute after a chain's first does.
                for label in ("all built-in tags", "all built-in tags again (replacing)"):
                    _time_tags(engine, config, f"{name}: {label}")
                for run in range(3):
                    _time_lifetime(engine, config, f"{name}: lifetime value alone, run {run + 1}")
            finally:
                engine.dispose()
        line(f"{name}: peak resident memory (this process)", f"{_peak_mb():,.0f} MB")


def _time_tags(engine: Engine, config: CentralConfig, label: str) -> None:
    started, cpu = time.perf_counter(), time.process_time()
    with engine.begin() as conn:
        server = _server_cpu(conn)
        done = tagging.recompute(conn, config, NOW)
        server_after = _server_cpu(conn)
    tags_s, tags_cpu = time.perf_counter() - started, time.process_time() - cpu
    line(label, f"{tags_s:.1f} s (target <= 30 s at 1 M customers), {sum(done.tags.values()):,} tags")
    used = f"{tags_cpu:.1f} s of this process"
    if server is not None and server_after is not None:
        used += f", {server_after - server:.1f} s of the PostgreSQL backend (parallel workers not counted)"
    line("  CPU seconds", used)
    steps = sorted(done.seconds.items(), key=lambda item: -item[1])
    line("  slowest steps (wall)", ", ".join(f"{step} {s:.1f} s" for step, s in steps[:8]))
    if done.clv_problem:
        line("  lifetime value", done.clv_problem)


def _time_lifetime(engine: Engine, config: CentralConfig, label: str) -> None:
    """The lifetime value's step alone (fits, forecast and rows), as the recompute runs it, rolled back."""
    with engine.connect() as conn:
        transaction = conn.begin()
        tagging._drop_indexes(conn)
        conn.exec_driver_sql("DELETE FROM customer_tags WHERE tag = 'value.clv'")
        gate = profiling.open_gate(conn, config.tags_profiling_without_decision, Run(config, NOW).today)
        server = _server_cpu(conn)
        started, cpu = time.perf_counter(), time.process_time()
        written, _ = lifetime.write_tags(conn, Run(config, NOW, gate))
        seconds, used = time.perf_counter() - started, time.process_time() - cpu
        server_after = _server_cpu(conn)
        transaction.rollback()
    both = f"{seconds:.1f} s, {used:.1f} CPU-seconds of this process"
    if server is not None and server_after is not None:
        both += f" and {server_after - server:.1f} of the PostgreSQL backend"
    line(label, f"{both}, {written:,} rows")


def _backends(backend: str) -> list[str]:
    return ["sqlite", "postgresql"] if backend == "both" else [backend]
