"""The consent filter and a birthday trigger over N customers: seconds, against a plain scan of the same rows.

``python -m bench consent [--customers N] [--backend sqlite|postgresql|both]`` fills a fresh
database (migrated like production) in SQL with N customers (every tenth merged into the one
before it), a golden birthday each, and two marketing decisions each (a grant, then for every third
customer a later withdrawal). It reports medians of:

* ``consented("marketing", "sms")`` counted (the set-based gate segments and triggers use), against
  the baseline of counting the same decisions with no ranking (the scan the gate cannot avoid);
* a birthday trigger's first evaluation (fires for everyone due in the next 3 days, queuing an
  export row each) and a repeat evaluation (fires nothing: the ledger says it is done).
"""

from __future__ import annotations

import argparse
from datetime import UTC, date, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bench.common import line, load_note, median, on_each_backend, timed
from central.db import make_engine

_SERIES = {
    "sqlite": "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {n}) SELECT n FROM s",
    "postgresql": "SELECT generate_series(1, {n}) AS n",
}
_TS = {"sqlite": "'2026-11-01 02:00:00.000000'", "postgresql": "TIMESTAMPTZ '2026-11-01 02:00:00+00'"}
_LATER = {"sqlite": "'2026-11-10 02:00:00.000000'", "postgresql": "TIMESTAMPTZ '2026-11-10 02:00:00+00'"}
# A birthday for customer n: spread over the year, as text YYYY-MM-DD.
_BIRTHDAY = {
    "sqlite": "date('1990-01-01', '+' || (n - (n / 365) * 365) || ' days')",
    "postgresql": "to_char(DATE '1990-01-01' + (n - (n / 365) * 365), 'YYYY-MM-DD')",
}
NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
TODAY = date(2026, 11, 23)


def fill(url: str, customers: int) -> None:
    engine = make_engine(url)
    dialect = engine.dialect.name
    series, ts, later = _SERIES[dialect].format(n=customers), _TS[dialect], _LATER[dialect]
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO customers (id, created_at, first_seen_at, last_seen_at, receipts_count, total_spent,"
            f" merged_into, version) SELECT n, {ts}, {ts}, {ts}, 0, 0, NULL, 0 FROM ({series}) AS q"
        )
        conn.exec_driver_sql("UPDATE customers SET merged_into = id - 1 WHERE id - (id / 10) * 10 = 0")
        conn.exec_driver_sql(
            "INSERT INTO golden_attributes (customer_id, attribute, value, source, verified, observed_at)"
            f" SELECT n, 'birthday', {_BIRTHDAY[dialect]}, 'bench', false, {ts} FROM ({series}) AS q"
            " WHERE n - (n / 10) * 10 <> 0"
        )
        columns = (
            "customer_id, purpose, channel, granted, observed_at, recorded_at, source, notice_version, scope,"
            " origin, origin_id"
        )
        conn.exec_driver_sql(
            f"INSERT INTO consent_decisions ({columns}) SELECT n, 'marketing', 'sms', true, {ts}, {ts}, 'app', 'v1',"
            f" '', 'bench', 'g' || n FROM ({series}) AS q"
        )
        conn.exec_driver_sql(
            f"INSERT INTO consent_decisions ({columns}) SELECT n, 'marketing', 'all', false, {later}, {later}, 'app',"
            f" 'v1', '', 'bench', 'w' || n FROM ({series}) AS q WHERE n - (n / 3) * 3 = 0"
        )
    if dialect == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    engine.dispose()


def measure(url: str, runs: int) -> None:
    from central.campaigns import triggers
    from central.customers.consent_gate import consented
    from central.customers.consent_models import ConsentDecision

    engine = make_engine(url)
    decisions = ConsentDecision.__table__
    gate = select(func.count()).select_from(consented("marketing", "sms", TODAY).subquery())
    scan = select(func.count()).where(decisions.c.purpose == "marketing", decisions.c.channel.in_(("sms", "all")))
    with Session(engine) as db:
        gate_times, scan_times = [], []
        for _ in range(runs):
            seconds, allowed = timed(lambda: db.scalar(gate))
            gate_times.append(seconds)
            seconds, rows = timed(lambda: db.scalar(scan))
            scan_times.append(seconds)
        db.commit()
        line("decisions scanned / customers allowed", f"{rows:,} / {allowed:,}")
        line("consented() count, median", f"{median(gate_times):.3f} s")
        line("baseline: count of the same decisions", f"{median(scan_times):.3f} s")
        line("ratio gate / baseline", f"{median(gate_times) / max(median(scan_times), 1e-9):.1f}x")
        declared = triggers.check("bench", "birthday", {"days_before": 3, "channel": "sms"}, "export", {}, 10.0)
        triggers.declare(db, declared, actor="bench", now=NOW)
        db.commit()
        first, counts = timed(lambda: triggers.evaluate_all(db, NOW, "Asia/Shanghai", "bench"))
        repeats = [timed(lambda: triggers.evaluate_all(db, NOW, "Asia/Shanghai", "bench"))[0] for _ in range(runs)]
    line("birthday trigger, first evaluation", f"{first:.3f} s ({counts})")  # type: ignore[str-format]
    line("birthday trigger, repeat evaluation, median", f"{median(repeats):.3f} s (fires nothing)")
    engine.dispose()


def main(customers: int = 200_000, backend: str = "both", runs: int = 5) -> None:
    print(f"consent filter and birthday trigger, {customers:,} customers ({load_note()})")
    on_each_backend(backend, fill, measure, customers, runs)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    main(args.customers, args.backend, args.runs)
