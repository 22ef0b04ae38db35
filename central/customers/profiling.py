"""Which tags profile a customer, and whom they may be computed and kept for.

PIPL asks for its own consent to profiling. A tag *profiles* when it evaluates the person: RFM
scores and value tier, frequency, channel, top categories, preferred store, time of day, weekend
shopper, lifecycle, repurchase cycles, predicted lifetime value, the presence tags, and any tag
not named below (custom tags included). A tag is a *service* tag when it records the relationship
instead of judging the person: ``service.high_care`` (a complaint is being looked after) and
``value.spend`` (the sum of the customer's receipts, which finance reconciles). Service tags and
the statistics (the purchase record itself) are kept for everyone.

Profiling tags are written only for customers the gate lets through, built once per recompute
(:func:`open_gate`) from the consent rule (:mod:`central.customers.consent_gate`):

* ``tags.profiling_without_decision = "refuse"`` (the default): customers whose profiling consent
  holds;
* ``"allow"``: everyone except those the rule refuses (a withdrawal holds, or a minor has no
  guardian's grant), for a chain that profiles customers who never decided on another legal basis.

Refused customers still count in chain-wide figures (the RFM quintile boundaries, the fit of the
lifetime-value models), but never get a profiling row. A profiling decision recorded in any
transaction removes the profiling tags of the customers it leaves refused in that same transaction
(:func:`forget_refused`); merges, splits and birthdays take effect at the next recompute.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Connection, column, delete, func, insert, select
from sqlalchemy import table as sql_table

from central.customers.consent_gate import consented, refused
from central.customers.models import CustomerTag
from central.identity.models import Customer
from central.models import table

PURPOSE = "profiling"
WITHOUT_DECISION = ("refuse", "allow")
"""Choices of ``tags.profiling_without_decision``."""
SERVICE_DEFINITIONS = frozenset({"high_care", "value_spend"})
"""Built-in definitions (:data:`central.customers.tags.DEFINITIONS`) that do not profile."""
SERVICE_TAGS = ("service.high_care", "value.spend")
"""The tags those definitions write."""
GATE = "profiling_gate"
_gate = sql_table(GATE, column("customer_id"))
_tags = table(CustomerTag)
_customers = table(Customer)


def profiles(definition: str) -> bool:
    """Whether a tag definition profiles the customer (everything but the service tags)."""
    return definition not in SERVICE_DEFINITIONS


@dataclass(frozen=True)
class Gate:
    """The customers profiling tags may be written for, as a condition on a customer id column."""

    lists_allowed: bool

    def admits(self, customer_id: str) -> str:
        """SQL that is true for the customers let through (the gate table lists them, or those refused)."""
        operator = "IN" if self.lists_allowed else "NOT IN"
        return f"{customer_id} {operator} (SELECT customer_id FROM {GATE})"  # noqa: S608 - our own names


def _schema(conn: Connection) -> str:
    return "pg_temp" if conn.dialect.name == "postgresql" else "temp"


def open_gate(conn: Connection, without_decision: str, today: date) -> Gate:
    """Fill a temporary table with the customers let through (``refuse``) or refused (``allow``) as of ``today``."""
    if without_decision not in WITHOUT_DECISION:
        raise ValueError(f"tags.profiling_without_decision = {without_decision!r}: expected refuse or allow")
    lists_allowed = without_decision == "refuse"
    postgres = conn.dialect.name == "postgresql"
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {_schema(conn)}.{GATE}")
    if postgres:
        conn.exec_driver_sql(f"CREATE TEMPORARY TABLE {GATE} (customer_id bigint PRIMARY KEY) ON COMMIT DROP")
    else:
        conn.exec_driver_sql(f"CREATE TEMPORARY TABLE {GATE} (customer_id INTEGER PRIMARY KEY)")
    query = consented(PURPOSE, None, today) if lists_allowed else refused(PURPOSE, today)
    conn.execute(insert(_gate).from_select(["customer_id"], query))
    if postgres:
        conn.exec_driver_sql(f"ANALYZE {GATE}")  # a temporary table has no statistics until asked
    return Gate(lists_allowed)


def close_gate(conn: Connection) -> None:
    """Drop the gate's table (SQLite keeps temporary tables for the life of the pooled connection)."""
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {_schema(conn)}.{GATE}")


def forget_refused(conn: Connection, customers: Iterable[int], today: date) -> int:
    """Delete the profiling tags of those ``customers`` (or their survivors) the consent rule now refuses.

    Only customers with a profiling decision are passed here, and for them both settings of
    ``tags.profiling_without_decision`` agree: the holding decision must be a grant that counts.
    """
    named = sorted(set(customers))
    if not named:
        return 0
    live = {
        int(r[0])
        for r in conn.execute(
            select(func.coalesce(_customers.c.merged_into, _customers.c.id)).where(_customers.c.id.in_(named))
        )
    }
    rows: Any = conn.execute(consented(PURPOSE, None, today, among=sorted(live)))
    allowed = {int(r[0]) for r in rows}
    gone = sorted(live - allowed)
    if not gone:
        return 0
    result = conn.execute(delete(_tags).where(_tags.c.customer_id.in_(gone), _tags.c.tag.not_in(SERVICE_TAGS)))
    return int(result.rowcount or 0)
