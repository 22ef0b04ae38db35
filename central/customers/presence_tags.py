"""The presence tags: what members' store visits say, as set-based SQL like the other built-in tags.

Only visits attached to a customer count: those a member's app beacon made while the member's
location consent held (docs/decisions/0049-member-beacon.md); anonymous visits never name anyone.
A visit counts for the customer it was attached to, or that customer's survivor after a merge.
Over the last ``tags.presence_window_days`` local days (the window starts at local midnight):

* ``presence.visits_without_purchase``: the visits on a local day the customer bought nothing at
  that store (any sale event identity places with them); tagged when at least
  ``tags.browse_min_visits``, the value is the count;
* ``presence.long_dwell``: the visits of at least ``tags.long_dwell_minutes``; tagged when at least
  one, the value is the count.

Both profile a customer, so both are written only for customers whose profiling consent holds
today (:func:`central.customers.consent_gate.consented`, the rule ``may_profile`` applies to one).
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

from sqlalchemy import Connection

from central.customers import rebuild
from central.customers.consent_gate import consented
from central.customers.sales import SALE_KINDS
from central.customers.tags import INSERT, Run, Sql, execute

PROFILING = "profiling"
_KINDS = ", ".join(f"'{k}'" for k in SALE_KINDS)


def window_start(run: Run) -> datetime:
    """The UTC instant of local midnight starting the first day of the presence window."""
    first = run.first_day(run.config.tags_presence_window_days)
    local_midnight = datetime.combine(first, time(), tzinfo=run.now.tzinfo)
    return local_midnight - timedelta(minutes=run.config.customers_utc_offset_minutes)


def _profiling_allowed(conn: Connection, run: Run) -> str:
    """The consented-for-profiling query as SQL text (only literals: purposes, channels, a date)."""
    query = consented(PROFILING, None, run.today)
    return str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))


def _visits(sql: Sql) -> str:
    """Attached visits in the window: live customer, store, local day, dwell."""
    day = sql.local_date_plus("v.started_at", "0")
    return (
        f"SELECT coalesce(c.merged_into, c.id) AS customer_id, v.store_id AS store_id, {day} AS day,"  # noqa: S608
        " v.dwell_s AS dwell_s FROM presence_visits v JOIN customers c ON c.id = v.customer_id"
        " WHERE v.customer_id IS NOT NULL AND v.started_at >= :since AND v.started_at <= :now"
    )


def _purchase_days(sql: Sql) -> str:
    """Each (customer, store, local day) with a sale in the window."""
    day = sql.local_date_plus("e.observed_at", "0")
    return (
        f"SELECT DISTINCT ec.customer_id AS customer_id, e.store_id AS store_id, {day} AS day"  # noqa: S608
        " FROM event_customers ec JOIN events e ON e.id = ec.event_pk"
        f" WHERE e.kind IN ({_KINDS}) AND {rebuild.counted(sql.postgres)} AND e.observed_at >= :since"
    )


def write_visits_without_purchase(conn: Connection, run: Run, sql: Sql) -> None:
    c = run.config
    counted = (
        "SELECT v.customer_id, COUNT(*) AS visits,"  # noqa: S608
        " SUM(CASE WHEN b.customer_id IS NULL THEN 1 ELSE 0 END) AS browsing"
        f" FROM ({_visits(sql)}) v LEFT JOIN ({_purchase_days(sql)}) b"
        " ON b.customer_id = v.customer_id AND b.store_id = v.store_id AND b.day = v.day"
        f" WHERE v.customer_id IN ({_profiling_allowed(conn, run)}) GROUP BY v.customer_id"
    )
    inputs = sql.obj(
        visits="visits", visits_without_purchase="browsing", window_days=":window_days", min_visits=":least"
    )
    execute(
        conn,
        run,
        "visits_without_purchase",
        f"{INSERT} SELECT customer_id, 'presence.visits_without_purchase', CAST(browsing AS text), {inputs},"  # noqa: S608
        f" :version, :now FROM ({counted}) p WHERE browsing >= :least",
        since=window_start(run),
        window_days=c.tags_presence_window_days,
        least=c.tags_browse_min_visits,
    )


def write_long_dwell(conn: Connection, run: Run, sql: Sql) -> None:
    c = run.config
    counted = (
        "SELECT customer_id, COUNT(*) AS visits,"  # noqa: S608
        " SUM(CASE WHEN dwell_s >= :dwell_s THEN 1 ELSE 0 END) AS long_visits,"
        " round(CAST(MAX(dwell_s) / 60.0 AS numeric), 1) AS longest"
        f" FROM ({_visits(sql)}) v WHERE customer_id IN ({_profiling_allowed(conn, run)}) GROUP BY customer_id"
    )
    inputs = sql.obj(
        visits="visits",
        long_visits="long_visits",
        longest_dwell_minutes="longest",
        window_days=":window_days",
        min_minutes=":minutes",
    )
    execute(
        conn,
        run,
        "long_dwell",
        f"{INSERT} SELECT customer_id, 'presence.long_dwell', CAST(long_visits AS text), {inputs},"  # noqa: S608
        f" :version, :now FROM ({counted}) p WHERE long_visits >= 1",
        since=window_start(run),
        dwell_s=c.tags_long_dwell_minutes * 60,
        window_days=c.tags_presence_window_days,
        minutes=c.tags_long_dwell_minutes,
    )
