"""The full, set-based recompute of the built-in tags (``central-server recompute-tags``).

Order: recompute the statistics of customers a merge or split marked (or, with ``statistics=True``,
of everyone, after a catalogue load), then replace every built-in tag, one statement per
definition (see :mod:`central.customers.tags` for the shared pieces), then the predicted lifetime
value (:mod:`central.customers.lifetime`). Tags that profile are written only for the customers the
profiling gate lets through (:mod:`central.customers.profiling`). Everything runs in the caller's
transaction, so readers see the old tags or the new ones, never half. The indexes of
``customer_tags`` are dropped for the rewrite and built again after it (docs/decisions/0062-tag-rewrite.md):
on PostgreSQL readers of the table wait for the commit meanwhile.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, select
from sqlalchemy.schema import AddConstraint, DropConstraint

from central.config import CentralConfig
from central.customers import dashboard, lifetime, presence_tags, profiling, rebuild
from central.customers.models import CustomerTag
from central.customers.tags import INSERT, WINDOWS, Run, Sql, drop_windows, execute, keep_windows
from central.identity.models import RecomputeMark
from central.models import table

log = logging.getLogger(__name__)
_marks = table(RecomputeMark)
_tags = table(CustomerTag)
MARKS_CHUNK = 1000


@dataclass
class Recomputed:
    """What one recompute did: marked customers refreshed, tags written per definition, CLV notes."""

    marked: int = 0
    statistics: bool = False
    tags: dict[str, int] = field(default_factory=dict)
    clv_problem: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall-clock seconds of each step (statistics, each definition, value_clv, overview)."""


def recompute(conn: Connection, config: CentralConfig, now: datetime, *, statistics: bool = False) -> Recomputed:
    """Refresh statistics (marked customers, or all) and replace every built-in tag as of ``now``."""
    done = Recomputed(statistics=statistics)
    offset = config.customers_utc_offset_minutes
    if conn.dialect.name == "postgresql":
        # Compiling these one-off statements (JIT) cost seconds more than it saved in measurements.
        conn.exec_driver_sql("SET LOCAL jit = off")
    marked = [r[0] for r in conn.execute(select(_marks.c.customer_id))]
    started = time.perf_counter()
    if statistics:
        rebuild.rebuild_all(conn, offset)
    else:
        rebuild.rebuild_customers(conn, marked, offset)
    # Only the marks read above: one left meanwhile by a concurrent merge waits for the next run.
    for start in range(0, len(marked), MARKS_CHUNK):
        conn.execute(delete(_marks).where(_marks.c.customer_id.in_(marked[start : start + MARKS_CHUNK])))
    done.marked = len(marked)
    done.seconds["statistics"] = time.perf_counter() - started
    started = time.perf_counter()
    _drop_indexes(conn)  # first: it takes the table's lock, which the DELETE would otherwise upgrade
    conn.exec_driver_sql("DELETE FROM customer_tags")
    today = Run(config, now).today
    run = Run(config, now, profiling.open_gate(conn, config.tags_profiling_without_decision, today))
    sql = Sql(conn.dialect.name == "postgresql", offset)
    # Three RFM scores, the value tier and frequency read the same window sums: computed once.
    keep_windows(conn, run)
    done.seconds["delete_and_gate"] = time.perf_counter() - started
    for definition, write in _WRITERS:
        started = time.perf_counter()
        write(conn, run, sql)
        done.seconds[definition] = time.perf_counter() - started
    drop_windows(conn)
    started = time.perf_counter()
    written, problem = lifetime.write_tags(conn, run)
    done.seconds["value_clv"] = time.perf_counter() - started
    profiling.close_gate(conn)
    started = time.perf_counter()
    _build_indexes(conn)
    done.seconds["index"] = time.perf_counter() - started
    for tag, count in conn.exec_driver_sql(
        "SELECT tag, COUNT(*) FROM customer_tags WHERE tag <> 'value.clv' GROUP BY tag"
    ):
        # One count for all top_category.N and all repurchase.<category> tags.
        key = str(tag).split(".")[0] if str(tag).startswith(("top_category.", "repurchase.")) else str(tag)
        done.tags[key] = done.tags.get(key, 0) + int(count)
    done.tags["value.clv"] = written
    done.clv_problem = problem
    started = time.perf_counter()
    dashboard.snapshot(conn, now)  # the overview's tier and RFM figures follow the tags
    done.seconds["overview"] = time.perf_counter() - started
    return done


def _drop_indexes(conn: Connection) -> None:
    """Drop the indexes of ``customer_tags`` that :func:`_build_indexes` builds again, each in one sort.

    Kept up row by row they cost several times the rows' own writing: one definition's rows arrive
    in customer order but land all over ``(tag, value, customer_id)``, and on PostgreSQL every new
    key of the primary key also visits the row it replaces (deleted in this same transaction). On
    PostgreSQL readers of ``customer_tags`` wait for the commit meanwhile; SQLite's readers (WAL)
    read the old tags as before.
    """
    for index in _tags.indexes:
        index.drop(conn)
    if conn.dialect.name == "postgresql":
        conn.execute(DropConstraint(_tags.primary_key))


def _build_indexes(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(AddConstraint(_tags.primary_key))
    for index in _tags.indexes:
        index.create(conn)
    if conn.dialect.name == "postgresql":
        # Every row is new: without fresh statistics the overview's plans (below) guess badly.
        conn.exec_driver_sql("ANALYZE customer_tags")


def _rfm(conn: Connection, run: Run, sql: Sql) -> None:
    # R ranks the very number its why shows, whole local days since the last purchase (fewer rank
    # higher), so two customers whose why says the same days get the same score.
    scores: tuple[tuple[str, str, str, str, dict[str, Any]], ...] = (
        ("r", sql.local_days_since("b.last_purchase_at"), "DESC", "days_since_last", {"today": run.today}),
        ("f", "b.wp", "", "purchases_in_window", {}),
        ("m", "b.ws", "", "spent_in_window", {}),
    )
    for letter, value, direction, name, params in scores:
        # Only the columns read below: the window sorts and keeps whole rows, and SQLite's cost
        # followed their width (0.22 against 0.07 CPU-seconds at 100,000 customers with b.*).
        ranked = (
            f"SELECT b.customer_id, {value} AS ranked_on,"  # noqa: S608
            f" RANK() OVER (ORDER BY {value} {direction}) AS rnk, COUNT(*) OVER () AS active"
            f" FROM {WINDOWS} b WHERE b.wp > 0"
        )
        shown = sql.money("ranked_on") if letter == "m" else "ranked_on"
        inputs = sql.obj(**{name: shown}, rank="rnk", active_customers="active", window_days=":window_days")
        execute(
            conn,
            run,
            "rfm",
            f"{INSERT} SELECT customer_id, 'rfm.{letter}', CAST(1 + (5 * (rnk - 1)) / active AS text), {inputs},"  # noqa: S608
            f" :version, :now FROM ({ranked}) r",
            window_days=run.config.tags_rfm_window_days,
            **params,
        )


def _value_tier(conn: Connection, run: Run, sql: Sql) -> None:
    c = run.config
    # Recency in whole local days, the number the why shows (and rfm.r ranks): a customer whose why
    # says 90 days is not yet "more than 90 days ago".
    tier = (
        "CASE WHEN days < :loyal_days AND wp >= :loyal_n AND ws >= :loyal_spent THEN 'loyal'"
        " WHEN days < :potential_days AND wp >= :potential_low AND wp <= :potential_high THEN 'potential'"
        " WHEN days > :dormant_days AND wp <= :dormant_n AND ws < :dormant_spent THEN 'dormant'"
        " ELSE 'other' END"
    )
    inputs = sql.obj(
        days_since_last="days",
        last_purchase_at="last_purchase_at",
        purchases_in_window="wp",
        spent_in_window=sql.money("ws"),
        window_days=":window_days",
    )
    recency = f"SELECT customer_id, last_purchase_at, wp, ws, {sql.local_days_since('last_purchase_at')} AS days"
    execute(
        conn,
        run,
        "value_tier",
        f"{INSERT} SELECT customer_id, 'value_tier', {tier}, {inputs}, :version, :now"  # noqa: S608
        f" FROM ({recency} FROM {WINDOWS}) b",
        today=run.today,
        window_days=c.tags_rfm_window_days,
        loyal_days=c.tags_loyal_max_days,
        loyal_n=c.tags_loyal_min_purchases,
        loyal_spent=round(c.tags_loyal_min_spent * 100),
        potential_days=c.tags_potential_max_days,
        potential_low=c.tags_potential_min_purchases,
        potential_high=c.tags_potential_max_purchases,
        dormant_days=c.tags_dormant_min_days,
        dormant_n=c.tags_dormant_max_purchases,
        dormant_spent=round(c.tags_dormant_max_spent * 100),
    )


def _frequency(conn: Connection, run: Run, sql: Sql) -> None:
    inputs = sql.obj(purchases_in_window="fp", window_days=":window_days")
    execute(
        conn,
        run,
        "frequency",
        f"{INSERT} SELECT customer_id, 'frequency', CASE WHEN fp >= :least THEN 'high' ELSE 'normal' END,"  # noqa: S608
        f" {inputs}, :version, :now FROM {WINDOWS} b",
        window_days=run.config.tags_frequency_window_days,
        least=run.config.tags_frequency_min_purchases,
    )


def _channel(conn: Connection, run: Run, sql: Sql) -> None:
    value = (
        "CASE WHEN store_purchases >= :share * purchases THEN 'store_heavy'"
        " WHEN purchases - store_purchases >= :share * purchases THEN 'online_heavy' ELSE 'omnichannel' END"
    )
    inputs = sql.obj(
        store="store_purchases", online="online_purchases", app="app_purchases", mini_program="mini_program_purchases"
    )
    execute(
        conn,
        run,
        "channel",
        f"{INSERT} SELECT customer_id, 'channel', {value}, {inputs}, :version, :now"  # noqa: S608
        " FROM customer_stats WHERE purchases > 0",
        share=run.config.tags_channel_heavy_share,
    )


def _top_categories(conn: Connection, run: Run, sql: Sql) -> None:
    ranked = (
        "SELECT k.customer_id, k.category, k.purchases AS cp, s.purchases AS total, ROW_NUMBER() OVER"
        " (PARTITION BY k.customer_id ORDER BY k.purchases DESC, k.last_purchase_at DESC, k.category) AS rn"
        " FROM customer_categories k JOIN customer_stats s ON s.customer_id = k.customer_id"
        " WHERE s.purchases > 0 AND k.purchases >= :share * s.purchases"
    )
    inputs = sql.obj(purchases="cp", share=sql.share("cp", "total"), customer_purchases="total")
    execute(
        conn,
        run,
        "top_category",
        f"{INSERT} SELECT customer_id, 'top_category.' || CAST(rn AS text), category, {inputs}, :version, :now"  # noqa: S608
        f" FROM ({ranked}) r WHERE rn <= :top",
        share=run.config.tags_top_category_min_share,
        top=run.config.tags_top_categories,
    )


def _preferred_store(conn: Connection, run: Run, sql: Sql) -> None:
    # Only stores with the share can be first: ranking by purchases first, a store below the share
    # never outranks one that has it. Ranking those few instead of every store of every customer
    # saves a sort of all of customer_stores; the stores are counted for the customers tagged only.
    ranked = (
        "SELECT t.customer_id, t.store_id, t.purchases AS sp, s.purchases AS total,"
        " ROW_NUMBER() OVER (PARTITION BY t.customer_id ORDER BY t.purchases DESC, t.last_purchase_at DESC,"
        " t.store_id) AS rn"
        " FROM customer_stores t JOIN customer_stats s ON s.customer_id = t.customer_id"
        " WHERE s.purchases > 0 AND t.purchases > 0 AND t.purchases >= :share * s.purchases"
    )
    stores = "(SELECT COUNT(*) FROM customer_stores c WHERE c.customer_id = r.customer_id AND c.purchases > 0)"
    inputs = sql.obj(purchases="sp", share=sql.share("sp", "total"), stores=stores)
    execute(
        conn,
        run,
        "preferred_store",
        f"{INSERT} SELECT customer_id, 'preferred_store', store_id, {inputs}, :version, :now"  # noqa: S608
        f" FROM ({ranked}) r WHERE rn = 1 AND sp >= :share * total",
        share=run.config.tags_preferred_store_min_share,
    )


def _time_of_day(conn: Connection, run: Run, sql: Sql) -> None:
    parts = ("morning", "afternoon", "evening", "night")
    value = (
        "CASE " + " ".join(f"WHEN {p}_purchases >= :share * purchases THEN '{p}'" for p in parts) + " ELSE 'mixed' END"
    )
    inputs = sql.obj(**{p: f"{p}_purchases" for p in parts})
    execute(
        conn,
        run,
        "time_of_day",
        f"{INSERT} SELECT customer_id, 'time_of_day', {value}, {inputs}, :version, :now"  # noqa: S608
        " FROM customer_stats WHERE purchases > 0",
        share=run.config.tags_daypart_min_share,
    )


def _weekend(conn: Connection, run: Run, sql: Sql) -> None:
    weekend = "(sat_purchases + sun_purchases)"
    value = f"CASE WHEN purchases >= :least AND {weekend} >= :share * purchases THEN 'yes' ELSE 'no' END"
    inputs = sql.obj(weekend_purchases=weekend, purchases="purchases")
    execute(
        conn,
        run,
        "weekend_shopper",
        f"{INSERT} SELECT customer_id, 'weekend_shopper', {value}, {inputs}, :version, :now"  # noqa: S608
        " FROM customer_stats WHERE purchases > 0",
        share=run.config.tags_weekend_min_share,
        least=run.config.tags_weekend_min_purchases,
    )


def _lifecycle(conn: Connection, run: Run, sql: Sql) -> None:
    c = run.config
    # In whole local days, the numbers the why shows, as value_tier.
    value = (
        "CASE WHEN first_days <= :new_days THEN 'new' WHEN days <= :active_days THEN 'active'"
        " WHEN days <= :risk_days THEN 'at_risk' WHEN days <= :dormant_days THEN 'dormant'"
        " ELSE 'churned' END"
    )
    # The last purchase itself too: a win-back trigger compares it with the statistics of the moment.
    inputs = sql.obj(days_since_first="first_days", days_since_last="days", last_purchase_at="last_purchase_at")
    recency = (
        f"SELECT customer_id, last_purchase_at, {sql.local_days_since('first_purchase_at')} AS first_days,"  # noqa: S608
        f" {sql.local_days_since('last_purchase_at')} AS days FROM customer_stats WHERE purchases > 0"
    )
    execute(
        conn,
        run,
        "lifecycle",
        f"{INSERT} SELECT customer_id, 'lifecycle', {value}, {inputs}, :version, :now FROM ({recency}) s",  # noqa: S608
        today=run.today,
        new_days=c.tags_lifecycle_new_days,
        active_days=c.tags_lifecycle_active_days,
        risk_days=c.tags_lifecycle_at_risk_days,
        dormant_days=c.tags_lifecycle_dormant_days,
    )


def _repurchase(conn: Connection, run: Run, sql: Sql) -> None:
    interval = f"round({sql.days_between('first_purchase_at', 'last_purchase_at')} / (purchases - 1), 1)"
    cycles = (
        f"SELECT customer_id, category, purchases, first_purchase_at, last_purchase_at, {interval} AS iv"  # noqa: S608
        " FROM customer_categories WHERE purchases >= :least"
    )
    due = sql.local_date_plus("last_purchase_at", "CAST(round(iv) AS integer)")
    inputs = sql.obj(
        purchases="purchases",
        interval_days="iv",
        first_purchase_at="first_purchase_at",
        last_purchase_at="last_purchase_at",
    )
    execute(
        conn,
        run,
        "repurchase",
        f"{INSERT} SELECT customer_id, 'repurchase.' || category, {due}, {inputs}, :version, :now"  # noqa: S608
        f" FROM ({cycles}) c",
        least=run.config.tags_repurchase_min_purchases,
    )


def _value_spend(conn: Connection, run: Run, sql: Sql) -> None:
    inputs = sql.obj(purchases="purchases", spent=sql.money("spent"))
    execute(
        conn,
        run,
        "value_spend",
        f"{INSERT} SELECT customer_id, 'value.spend', {sql.money_text('spent')}, {inputs}, :version, :now"  # noqa: S608
        " FROM customer_stats WHERE purchases > 0",
    )


def _high_care(conn: Connection, run: Run, sql: Sql) -> None:
    complaints = (
        "SELECT ec.customer_id, COUNT(*) AS complaints, MAX(e.observed_at) AS last_at FROM events e"
        " JOIN event_customers ec ON ec.event_pk = e.id"
        " WHERE e.kind = 'service.complaint' AND e.observed_at >= :since GROUP BY ec.customer_id"
    )
    inputs = sql.obj(complaints="complaints", last_complaint_at="last_at", days=":days")
    execute(
        conn,
        run,
        "high_care",
        f"{INSERT} SELECT customer_id, 'service.high_care', 'yes', {inputs}, :version, :now FROM ({complaints}) c",  # noqa: S608
        since=run.ago(run.config.tags_high_care_days),
        days=run.config.tags_high_care_days,
    )


_WRITERS = (
    ("rfm", _rfm),
    ("value_tier", _value_tier),
    ("frequency", _frequency),
    ("channel", _channel),
    ("top_category", _top_categories),
    ("preferred_store", _preferred_store),
    ("time_of_day", _time_of_day),
    ("weekend_shopper", _weekend),
    ("lifecycle", _lifecycle),
    ("repurchase", _repurchase),
    ("value_spend", _value_spend),
    ("high_care", _high_care),
    ("visits_without_purchase", presence_tags.write_visits_without_purchase),
    ("long_dwell", presence_tags.write_long_dwell),
)
