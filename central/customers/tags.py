"""The built-in tags as set-based SQL: each one ``INSERT ... SELECT`` over the statistics tables.

Every row of ``customer_tags`` holds the tag, its value, the inputs that decided it (as JSON, so a
marketer can see why) and its definition's version: the definition's own number plus a digest of
the settings it used, so a changed threshold shows as a new version. Time comparisons use bound
timestamps (``now`` minus so many days); windows are sums of ``customer_days`` from a bound first
local day. The same statements run on SQLite and PostgreSQL; the few spellings that differ come from
:class:`Sql`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import BindParameter, Connection, Date, bindparam, text

from central.config import CentralConfig
from central.customers.profiling import Gate, profiles
from central.models import UTCDateTime

# Bump a definition's number when its meaning changes (not when a setting does: the digest covers that).
DEFINITIONS = {
    # 2: R ranks whole local days since the last purchase (what its why shows), not the exact time.
    "rfm": 2,
    # 2: recency in whole local days since the last purchase, as the why shows it.
    "value_tier": 2,
    "frequency": 1,
    "channel": 1,
    "top_category": 1,
    "preferred_store": 1,
    "time_of_day": 1,
    "weekend_shopper": 1,
    # 2: first and last purchase in whole local days, as the why shows them.
    "lifecycle": 2,
    "repurchase": 1,
    "value_spend": 1,
    "value_clv": 1,
    "high_care": 1,
    "visits_without_purchase": 1,
    "long_dwell": 1,
}
# The settings each definition reads (its version's digest covers their values).
SETTINGS = {
    "rfm": ("tags_rfm_window_days", "customers_utc_offset_minutes"),
    "value_tier": (
        "customers_utc_offset_minutes",
        "tags_rfm_window_days",
        "tags_loyal_max_days",
        "tags_loyal_min_purchases",
        "tags_loyal_min_spent",
        "tags_potential_max_days",
        "tags_potential_min_purchases",
        "tags_potential_max_purchases",
        "tags_dormant_min_days",
        "tags_dormant_max_purchases",
        "tags_dormant_max_spent",
    ),
    "frequency": ("tags_frequency_window_days", "tags_frequency_min_purchases"),
    "channel": ("tags_channel_heavy_share",),
    "top_category": ("tags_top_categories", "tags_top_category_min_share"),
    "preferred_store": ("tags_preferred_store_min_share",),
    "time_of_day": ("tags_daypart_min_share", "customers_utc_offset_minutes"),
    "weekend_shopper": ("tags_weekend_min_share", "tags_weekend_min_purchases", "customers_utc_offset_minutes"),
    "lifecycle": (
        "customers_utc_offset_minutes",
        "tags_lifecycle_new_days",
        "tags_lifecycle_active_days",
        "tags_lifecycle_at_risk_days",
        "tags_lifecycle_dormant_days",
    ),
    "repurchase": ("tags_repurchase_min_purchases", "customers_utc_offset_minutes"),
    "value_spend": (),
    "value_clv": (
        "tags_clv_horizon_months",
        "tags_clv_monthly_discount",
        "tags_clv_fit_customers",
        "customers_utc_offset_minutes",
    ),
    "high_care": ("tags_high_care_days",),
    "visits_without_purchase": (
        "tags_presence_window_days",
        "tags_browse_min_visits",
        "customers_utc_offset_minutes",
    ),
    "long_dwell": ("tags_presence_window_days", "tags_long_dwell_minutes", "customers_utc_offset_minutes"),
}


def version(config: CentralConfig, definition: str) -> str:
    """``<definition number>:<digest of its settings>``, such as ``1:9f2c01ab``."""
    values = ";".join(f"{name}={getattr(config, name)!r}" for name in SETTINGS[definition])
    return f"{DEFINITIONS[definition]}:{hashlib.sha256(values.encode()).hexdigest()[:8]}"


@dataclass(frozen=True)
class Sql:
    """The spellings that differ between SQLite and PostgreSQL."""

    postgres: bool
    offset_minutes: int

    def obj(self, **fields: str) -> str:
        """A JSON object of SQL expressions."""
        args = ", ".join(f"'{k}', {v}" for k, v in fields.items())
        return f"json_build_object({args})" if self.postgres else f"json_object({args})"

    def local_days_since(self, column: str) -> str:
        """Whole local days from the chain's local date of ``column`` to the local date :today.

        A purchase at 09:00 and one at 21:00 on the same local day are the same number of days ago,
        however late today it is.
        """
        if self.postgres:
            local = f"(({column} AT TIME ZONE 'UTC') + make_interval(mins => {self.offset_minutes}))"
            return f"(:today - CAST({local} AS date))"
        return f"CAST(julianday(:today) - julianday(date({column}, '{self.offset_minutes:+d} minutes')) AS INTEGER)"

    def days_between(self, first: str, last: str) -> str:
        """Days, with fractions, from ``first`` to ``last`` (numeric on PostgreSQL)."""
        if self.postgres:
            return f"(EXTRACT(EPOCH FROM ({last} - {first})) / 86400)"
        return f"(julianday({last}) - julianday({first}))"

    def money(self, cents: str) -> str:
        """Cents as a JSON number of currency units."""
        return f"round({cents} / 100.0, 2)"

    def money_text(self, cents: str) -> str:
        """Cents as text with two decimals."""
        return f"CAST(round({cents} / 100.0, 2) AS text)" if self.postgres else f"printf('%.2f', {cents} / 100.0)"

    def local_date_plus(self, column: str, days: str) -> str:
        """The local date of ``column`` plus a whole number of days, as ISO text."""
        if self.postgres:
            local = f"(({column} AT TIME ZONE 'UTC') + make_interval(mins => {self.offset_minutes}))"
            return f"CAST(CAST({local} AS date) + {days} AS text)"
        return f"date({column}, '{self.offset_minutes:+d} minutes', '+' || ({days}) || ' days')"

    def share(self, part: str, whole: str) -> str:
        return f"round({part} * 1.0 / {whole}, 3)"


@dataclass(frozen=True)
class Run:
    """One recompute: the settings, the time it is computed as of, the chain's local today, and the
    profiling gate (None writes profiling tags for everyone: for callers that gate them otherwise)."""

    config: CentralConfig
    now: datetime
    profiling: Gate | None = None

    @property
    def today(self) -> date:
        return (self.now + timedelta(minutes=self.config.customers_utc_offset_minutes)).date()

    def first_day(self, window_days: int) -> date:
        """The first local day of a window of ``window_days`` days ending today."""
        return self.today - timedelta(days=window_days - 1)

    def ago(self, days: int) -> datetime:
        return self.now - timedelta(days=days)


def execute(conn: Connection, run: Run, definition: str, sql: str, **params: Any) -> None:
    """Run one tag statement (``INSERT ... SELECT``) with :now, :version and the given parameters bound.

    A definition that profiles writes only the rows of customers the run's profiling gate lets through.
    """
    if run.profiling is not None and profiles(definition):
        if not sql.startswith(INSERT):
            raise ValueError(f"the {definition} statement must start with tags.INSERT")
        rows = sql[len(INSERT) :]
        admitted = run.profiling.admits("profiled.customer_id")
        sql = f"{INSERT} SELECT * FROM ({rows}) profiled WHERE {admitted}"  # noqa: S608 - our own statements
    binds: list[BindParameter[Any]] = [bindparam("now", type_=UTCDateTime), bindparam("version")]
    for name, value in params.items():
        if isinstance(value, datetime):
            binds.append(bindparam(name, type_=UTCDateTime))
        elif isinstance(value, date):
            binds.append(bindparam(name, type_=Date()))
    statement = text(sql).bindparams(*binds)
    conn.execute(statement, {"now": run.now, "version": version(run.config, definition), **params})


INSERT = "INSERT INTO customer_tags (customer_id, tag, value, inputs, version, computed_at)"


WINDOWS = "tag_windows"
"""The temporary table :func:`keep_windows` fills: :func:`windows`' rows, read by several definitions."""


def keep_windows(conn: Connection, run: Run) -> None:
    """Compute :func:`windows` once into the temporary table :data:`WINDOWS` (dropped by :func:`drop_windows`)."""
    drop_windows(conn)
    sql, params = windows(run)
    postgres = conn.dialect.name == "postgresql"
    suffix = " ON COMMIT DROP" if postgres else ""
    statement = text(f"CREATE TEMPORARY TABLE {WINDOWS}{suffix} AS {sql}").bindparams(
        *(bindparam(name, type_=Date()) for name in params)
    )
    conn.execute(statement, dict(params))
    if postgres:
        conn.exec_driver_sql(f"ANALYZE {WINDOWS}")  # a temporary table has no statistics until asked


def drop_windows(conn: Connection) -> None:
    schema = "pg_temp" if conn.dialect.name == "postgresql" else "temp"
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {schema}.{WINDOWS}")


def windows(run: Run) -> tuple[str, Mapping[str, Any]]:
    """Live customers with purchases: last purchase, RFM-window and frequency-window sums (``wp``, ``ws``, ``fp``).

    Only the columns the RFM scores, value tier and frequency read: the whole ``customer_stats`` row
    made the table, and every sort of it, several times wider.
    """
    sql = (
        "SELECT s.customer_id, s.last_purchase_at, coalesce(w.wp, 0) AS wp, coalesce(w.ws, 0) AS ws,"
        " coalesce(f.fp, 0) AS fp"
        " FROM customer_stats s"
        " LEFT JOIN (SELECT customer_id, SUM(purchases) AS wp, SUM(spent) AS ws FROM customer_days"
        " WHERE day >= :rfm_day GROUP BY customer_id) w ON w.customer_id = s.customer_id"
        " LEFT JOIN (SELECT customer_id, SUM(purchases) AS fp FROM customer_days"
        " WHERE day >= :frequency_day GROUP BY customer_id) f ON f.customer_id = s.customer_id"
        " WHERE s.purchases > 0"
    )
    params = {
        "rfm_day": run.first_day(run.config.tags_rfm_window_days),
        "frequency_day": run.first_day(run.config.tags_frequency_window_days),
    }
    return sql, params
