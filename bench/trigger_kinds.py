"""The four event- and tag-based trigger kinds and the effect report over N customers: seconds per evaluation.

``python -m bench trigger-kinds [--customers N] [--backend sqlite|postgresql|both]`` fills a fresh
database (migrated like production) in SQL with N customers, each with purchase statistics (first
purchase spread over two years, every other customer a single purchase), a lifecycle tag (every
fourth dormant), every fifth a repurchase tag due within 30 days, every hundredth a complaint
received an hour ago, and a marketing grant on SMS for all. It reports, per kind, the first
evaluation (which fires) and the median repeat (which fires nothing: the ledger says it is done),
and the effect report over the win-back trigger's occasions.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session

from bench.common import line, load_note, median, on_each_backend, timed
from central.customers.statistics import STAT_COLUMNS
from central.db import make_engine

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
_SERIES = {
    "sqlite": "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {n}) SELECT n FROM s",
    "postgresql": "SELECT generate_series(1, {n}) AS n",
}


def _ago(dialect: str, hours: str) -> str:
    """NOW minus ``hours`` (an SQL expression) as the database stores a UTC timestamp."""
    if dialect == "postgresql":
        return f"(TIMESTAMPTZ '2026-11-30 12:00:00+00' - make_interval(hours => CAST({hours} AS integer)))"
    return f"(strftime('%Y-%m-%d %H:%M:%f', '2026-11-30 12:00:00', '-' || ({hours}) || ' hours') || '000')"


def _due(dialect: str, days: str) -> str:
    if dialect == "postgresql":
        return f"to_char(DATE '2026-11-30' + CAST({days} AS integer), 'YYYY-MM-DD')"
    return f"date('2026-11-30', '+' || ({days}) || ' days')"


def _mod(value: str, k: int) -> str:
    """``value`` modulo ``k`` without ``%``, which the PostgreSQL driver reads as a placeholder."""
    return f"(({value}) - (({value}) / {k}) * {k})"


def fill(url: str, customers: int) -> None:
    engine = make_engine(url)
    d = engine.dialect.name
    series = _SERIES[d].format(n=customers)
    now = _ago(d, "0")
    first = _ago(d, _mod("n * 7", 17520))  # spread over two years, an hour apart
    single = f"CASE WHEN {_mod('n', 2)} = 0 THEN 1 ELSE 3 END"
    stats = ", ".join(c for c in STAT_COLUMNS if c not in ("purchases",))
    zeros = ", ".join("0" for c in STAT_COLUMNS if c not in ("purchases",))
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO customers (id, created_at, first_seen_at, last_seen_at, receipts_count, total_spent,"
            f" merged_into, version) SELECT n, {now}, {now}, {now}, 0, 0, NULL, 0 FROM ({series}) AS q"
        )
        conn.exec_driver_sql(
            f"INSERT INTO customer_stats (customer_id, purchases, {stats}, first_purchase_at, last_purchase_at)"
            f" SELECT n, {single}, {zeros}, {first}, {first} FROM ({series}) AS q"
        )
        conn.exec_driver_sql(
            "INSERT INTO customer_tags (customer_id, tag, value, inputs, version, computed_at)"
            f" SELECT n, 'lifecycle', CASE WHEN {_mod('n', 4)} = 0 THEN 'dormant' ELSE 'active' END, '{{}}', '1:bench',"
            f" {now} FROM ({series}) AS q"
        )
        conn.exec_driver_sql(
            "INSERT INTO customer_tags (customer_id, tag, value, inputs, version, computed_at)"
            f" SELECT n, 'repurchase.Baby > Formula', {_due(d, _mod('n', 30))}, '{{}}', '1:bench', {now}"
            f" FROM ({series}) AS q WHERE {_mod('n', 5)} = 0"
        )
        conn.exec_driver_sql(
            "INSERT INTO customer_categories (customer_id, category, purchases, first_purchase_at, last_purchase_at)"
            f" SELECT n, 'Baby > Formula', 3, {first}, {first} FROM ({series}) AS q WHERE {_mod('n', 5)} = 0"
        )
        conn.exec_driver_sql(
            "INSERT INTO events (id, device_id, event_id, seq, kind, store_id, observed_at, received_at, payload,"
            f" batch_id) SELECT n, 'src-crm', 'c' || n, n, 'service.complaint', 'S001', {_ago(d, '2')},"
            f" {_ago(d, '1')}, '{{}}', 'b' FROM ({series}) AS q WHERE {_mod('n', 100)} = 0"
        )
        conn.exec_driver_sql(
            f"INSERT INTO event_customers (event_pk, customer_id, identifier_id) SELECT n, n, 0 FROM ({series}) AS q"
            f" WHERE {_mod('n', 100)} = 0"
        )
        columns = (
            "customer_id, purpose, channel, granted, observed_at, recorded_at, source, notice_version, scope,"
            " origin, origin_id"
        )
        conn.exec_driver_sql(
            f"INSERT INTO consent_decisions ({columns}) SELECT n, 'marketing', 'sms', true, {_ago(d, '9000')},"
            f" {_ago(d, '9000')}, 'app', 'v1', '', 'bench', 'g' || n FROM ({series}) AS q"
        )
    if d == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    engine.dispose()


def measure(url: str, runs: int) -> None:
    from central.campaigns import triggers
    from central.campaigns.effect import effect_report

    engine = make_engine(url)
    with Session(engine) as db:
        today = triggers.local_today(NOW, "Asia/Shanghai")
        for kind in ("second_item", "win_back", "repurchase_due", "complaint"):
            declared = triggers.check(f"bench-{kind}", kind, {"channel": "sms"}, "export", {}, 10.0)
            triggers.declare(db, declared, actor="bench", now=NOW)
            db.commit()
            row = triggers.trigger_named(db, f"bench-{kind}")
            fire = lambda row=row: triggers.evaluate(db, row, today, NOW, "bench")  # noqa: E731
            first, counts = timed(fire)
            repeats = [timed(fire)[0] for _ in range(runs)]
            line(f"{kind}, first evaluation", f"{first:.3f} s (fired {counts['fired']:,})")  # type: ignore[index]
            line(f"{kind}, repeat evaluation, median", f"{median(repeats):.3f} s (fires nothing)")
        times = []
        for _ in range(runs):
            seconds, report = timed(lambda: effect_report(db, "bench-win_back", now=NOW, offset_minutes=480))
            times.append(seconds)
        line(
            "effect report (win_back occasions), median",
            f"{median(times):.3f} s ({report.action.occasions:,} + "  # type: ignore[attr-defined]
            f"{report.control.occasions:,} occasions)",
        )  # type: ignore[attr-defined]
    engine.dispose()


def main(customers: int = 200_000, backend: str = "both", runs: int = 3) -> None:
    print(f"trigger kinds and effect report, {customers:,} customers ({load_note()})")
    on_each_backend(backend, fill, measure, customers, runs)
