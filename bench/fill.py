"""A chain at scale, written by set-based SQL into a migrated database (no Python loop over rows).

:func:`chain` writes what the overview reads: ``customers`` live customers (statistics, a home
store, value tier and R, F, M tags) and ``events`` events over 60 days and ``stores`` stores, one
in twenty a ``member.signup``. :func:`console` adds what every other console page reads (see
:mod:`bench.console_fill`). Both run on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, text

from central.customers.models import CustomerStats

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
DAYS = 60
# Event kinds by n % 20: one in twenty a sign-up (the overview's new members), most receipts, and
# the other kinds the 360 view's timeline shows.
KINDS = (
    "CASE WHEN n % 20 = 0 THEN 'member.signup' WHEN n % 20 < 14 THEN 'pos.receipt'"
    " WHEN n % 20 < 16 THEN 'scan.member' WHEN n % 20 = 16 THEN 'scan.coupon'"
    " WHEN n % 20 = 17 THEN 'order.online' WHEN n % 20 = 18 THEN 'scan.product' ELSE 'presence.visit' END"
)


def series(engine: Engine | Connection, count: int) -> str:
    """A ``SELECT n`` of 0 .. count-1 in this database's dialect."""
    if engine.dialect.name == "postgresql":
        return f"SELECT generate_series(CAST(0 AS bigint), {count - 1}) AS n"
    return f"WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n < {count - 1}) SELECT n FROM s"


class Dialect:
    """The few expressions that differ between SQLite and PostgreSQL, over a series column ``n``."""

    def __init__(self, engine: Engine | Connection, start: datetime = NOW - timedelta(days=DAYS)) -> None:
        self.pg = engine.dialect.name == "postgresql"
        self.start = start if self.pg else start.replace(tzinfo=None)

    def at(self, expr: str = "(n * 7919) % :seconds") -> str:
        """A time ``expr`` seconds after :start."""
        if self.pg:
            return f"(CAST(:start AS timestamptz) + make_interval(secs => {expr}))"
        return f"datetime(:start, '+' || ({expr}) || ' seconds')"

    def padded(self, prefix: str, expr: str, width: int) -> str:
        """``prefix`` followed by ``expr`` zero-padded to ``width`` digits."""
        if self.pg:
            return f"'{prefix}' || lpad(CAST({expr} AS text), {width}, '0')"
        return f"printf('{prefix}%0{width}d', {expr})"

    def json(self, expr: str) -> str:
        """A text expression stored in a JSON column."""
        return f"CAST({expr} AS json)" if self.pg else expr

    def now(self) -> datetime:
        return NOW if self.pg else NOW.replace(tzinfo=None)

    def params(self, **more: Any) -> dict[str, Any]:
        return {"start": self.start, "seconds": DAYS * 86400, "now": self.now(), **more}


def owner(customers: int, n: str = "n") -> str:
    """The customer event ``n`` belongs to: spread evenly, and one in a hundred to 1000 heavy customers."""
    heavy = min(1000, customers)
    return f"(CASE WHEN {n} % 100 = 0 THEN 1 + ({n} / 100) % {heavy} ELSE 1 + ({n} * 7) % {customers} END)"


def chain(engine: Engine, customers: int, events: int, stores: int) -> None:
    """Customers with statistics, a home store and tags; events of many kinds, each with an id n + 1."""
    d = Dialect(engine)
    params = d.params(stores=stores, customers=customers)
    store = d.padded("S", "n % :stores", 3)
    # Events' stores step with n / 7, so the one in twenty that are sign-ups reach every store.
    event_store = d.padded("S", "(n / 7) % :stores", 3)
    at = d.at()
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO customers (id, created_at, first_seen_at, last_seen_at, receipts_count, total_spent,"
                f" version) SELECT n + 1, {at}, {at}, {at}, 1, 10, 0 FROM ({series(engine, customers)}) s"
            ),
            params,
        )
        zeros = [c.name for c in CustomerStats.__table__.columns if c.name.endswith(("_purchases", "_spent"))]
        conn.execute(
            text(
                f"INSERT INTO customer_stats (customer_id, purchases, spent, {', '.join(zeros)})"
                f" SELECT n + 1, 1 + n % 9, 1000 + (n * 37) % 90000, {', '.join('0' for _ in zeros)}"
                f" FROM ({series(engine, customers)}) s"
            )
        )
        conn.execute(
            text(
                "INSERT INTO customer_stores (customer_id, store_id, purchases, spent)"
                f" SELECT n + 1, {store}, 1, 1000 FROM ({series(engine, customers)}) s"
            ),
            params,
        )
        tiers = "CASE (n / 13) % 4 WHEN 0 THEN 'loyal' WHEN 1 THEN 'potential' WHEN 2 THEN 'dormant' ELSE 'other' END"
        why = d.json("'{\"spent\": \"' || (1000 + (n * 37) % 90000) || '\"}'")
        for tag, value in (
            ("value_tier", tiers),
            ("rfm.r", "CAST(1 + (n / 3) % 5 AS text)"),
            ("rfm.f", "CAST(1 + (n / 7) % 5 AS text)"),
            ("rfm.m", "CAST(1 + (n / 11) % 5 AS text)"),
        ):
            conn.execute(
                text(
                    "INSERT INTO customer_tags (customer_id, tag, value, inputs, version, computed_at)"
                    f" SELECT n + 1, '{tag}', {value}, {why}, '1', :now FROM ({series(engine, customers)}) s"
                ),
                params,
            )
        payload = d.json(
            '\'{"receipt_no": "R\' || n || \'", "total": "\' || (n % 500) || \'.50", "payment_method": "wechat"}\''
        )
        conn.execute(
            text(
                "INSERT INTO events (id, device_id, event_id, seq, kind, store_id, observed_at, received_at, payload,"
                f" batch_id) SELECT n + 1, 'dev', CAST(n AS text), n, {KINDS}, {event_store}, {at}, {at}, {payload},"
                f" 'b' FROM ({series(engine, events)}) s"
            ),
            params,
        )
        conn.execute(
            text(
                "INSERT INTO event_customers (event_pk, customer_id, identifier_id)"
                f" SELECT n + 1, {owner(customers)}, {owner(customers)} FROM ({series(engine, events)}) s"
            )
        )


def analyze(engine: Engine) -> None:
    """Statistics (and on PostgreSQL a visibility map for index-only scans), as a steady database has."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    else:
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")


def reset_sequences(engine: Engine, tables: list[str]) -> None:
    """After rows written with explicit ids, PostgreSQL's sequences continue past them."""
    if engine.dialect.name != "postgresql":
        return
    with engine.begin() as conn:
        for table in tables:
            column = "serial" if table == "coupon_codes" else "id"
            conn.exec_driver_sql(
                f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'),"
                f" (SELECT COALESCE(MAX({column}), 0) + 1 FROM {table}), false)"
            )
