"""Segment counts and evaluations over N customers: seconds on SQLite and PostgreSQL.

``python -m bench segments [--customers N] [--backend sqlite|postgresql|both]`` fills a fresh
database with the consent benchmark's customers (every tenth merged away, a marketing grant each,
every third withdrawn) plus purchase statistics and a value tier per customer, then saves the
segment ``value_tier = "loyal" or (purchases >= 3 and spent >= 200)`` on SMS and reports:

* the live count (rule and consent, as the console shows it), median of ``--runs``;
* the first evaluation (everyone enters), a repeat (nobody moves) and one after 1 % of the
  customers withdrew marketing consent (they leave), each with the entries and exits it wrote.
"""

from __future__ import annotations

import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy.orm import Session

from bench.common import line, load_note, median
from bench.consent_triggers import _SERIES, NOW, TODAY, fill
from central.db import make_engine
from central.migrate import upgrade
from tools.databases import temporary_postgres_database

RULE = 'value_tier = "loyal" or (purchases >= 3 and spent >= 200)'
OFFSET = 480
_TS = {"sqlite": "'2026-11-15 02:00:00.000000'", "postgresql": "TIMESTAMPTZ '2026-11-15 02:00:00+00'"}
_WITHDRAWN = {"sqlite": "'2026-11-20 02:00:00.000000'", "postgresql": "TIMESTAMPTZ '2026-11-20 02:00:00+00'"}


def _statistics(url: str, customers: int) -> None:
    engine = make_engine(url)
    dialect = engine.dialect.name
    series, ts = _SERIES[dialect].format(n=customers), _TS[dialect]
    zeros = ", ".join(["0"] * 19)
    spent = "(CAST(n AS BIGINT) * 7919)"  # past int4 at a million customers
    with engine.begin() as conn:
        conn.exec_driver_sql(
            f"INSERT INTO customer_stats SELECT n, n - (n / 7) * 7, {spent} - ({spent} / 50000) * 50000,"
            f" {ts}, {ts}, {zeros} FROM ({series}) AS q WHERE n - (n / 10) * 10 <> 0"
        )
        conn.exec_driver_sql(
            "INSERT INTO customer_tags (customer_id, tag, value, inputs, version, computed_at)"
            f" SELECT n, 'value_tier', CASE WHEN n - (n / 5) * 5 = 0 THEN 'loyal' ELSE 'other' END, '{{}}', '1:x', {ts}"
            f" FROM ({series}) AS q WHERE n - (n / 10) * 10 <> 0"
        )
    if dialect == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    engine.dispose()


def _withdraw(url: str, customers: int) -> None:
    engine = make_engine(url)
    dialect = engine.dialect.name
    series, at = _SERIES[dialect].format(n=customers), _WITHDRAWN[dialect]
    columns = (
        "customer_id, purpose, channel, granted, observed_at, recorded_at, source, notice_version, scope,"
        " origin, origin_id"
    )
    with engine.begin() as conn:
        conn.exec_driver_sql(
            f"INSERT INTO consent_decisions ({columns}) SELECT n, 'marketing', 'sms', false, {at}, {at}, 'app', 'v1',"
            f" '', 'bench', 'x' || n FROM ({series}) AS q WHERE n - (n / 100) * 100 = 1"
        )
    engine.dispose()


def measure(url: str, customers: int, runs: int) -> None:
    from central.segments import definitions, evaluation

    engine = make_engine(url)
    with Session(engine) as db:
        definitions.create(db, definitions.Draft("bench", RULE, "sms"), actor="bench", now=NOW)
        db.commit()
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            counted = evaluation.count(db, RULE, "sms", TODAY, OFFSET)
            times.append(time.perf_counter() - started)
        db.commit()
        found = f"{counted.matching:,} matching, {counted.reachable:,} reachable"
        line("live count, median", f"{median(times):.3f} s ({found})")
        for label, at in (("first evaluation", NOW), ("repeat evaluation", NOW + timedelta(hours=1))):
            started = time.perf_counter()
            done = evaluation.evaluate(db, "bench", at, OFFSET)
            db.commit()
            line(label, f"{time.perf_counter() - started:.3f} s ({done.to_json()})")
    _withdraw(url, customers)
    with Session(engine) as db:
        started = time.perf_counter()
        done = evaluation.evaluate(db, "bench", NOW + timedelta(hours=2), OFFSET)
        db.commit()
        line("after 1 % withdrew", f"{time.perf_counter() - started:.3f} s ({done.to_json()})")
    engine.dispose()


def main(customers: int = 200_000, backend: str = "both", runs: int = 3) -> None:
    print(f"segment count and evaluation, {customers:,} customers ({load_note()})")
    if backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{Path(tmp) / 'central.db'}"
            upgrade(url)
            fill(url, customers)
            _statistics(url, customers)
            print(" SQLite")
            measure(url, customers, runs)
    if backend in ("postgresql", "both"):
        with temporary_postgres_database("cdp_bench_segments") as url:
            upgrade(url)
            fill(url, customers)
            _statistics(url, customers)
            print(" PostgreSQL")
            measure(url, customers, runs)
