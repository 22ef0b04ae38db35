"""Receipts set aside: a copy of a stored receipt's number with another total, kept as evidence and counted nowhere.

A till reprints receipt F0004 of store S002, register 01 (12.34) an hour later at 99.99: either a
reprint that printed another amount, or a till that reused the number for another sale. Central
cannot tell which (decision 0085), so the copy is stored with ``flag = reprint_total_differs`` and
``reprint_of`` naming the receipt that counts, and stays out of every figure until a person looks
at it. This module finds them for that person (decision 0103): per store and local day for finance
(``central-server receipts set-aside``), and beside the counted receipt on its customer's timeline.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Connection, select, true
from sqlalchemy.orm import aliased

from central.customers.models import Receipt
from central.customers.reprints import TOTAL_DIFFERS
from central.identity.models import EventCustomer

SET_ASIDE_FLAGS = (TOTAL_DIFFERS,)
"""The copies a person must look at; a plain reprint or a duplicate from another sender is the same sale."""
COLUMNS = (
    "store_id",
    "local_date",
    "observed_at",
    "register",
    "receipt_no",
    "total",
    "counted_total",
    "difference",
    "reason",
    "sender",
    "counted_sender",
    "counted_customer_id",
)
"""The CSV's header: the copy, then the receipt that counts (its total, sender and customer)."""
_copy = aliased(Receipt, name="copy")
_counted = aliased(Receipt, name="counted")


@dataclass(frozen=True, slots=True)
class SetAside:
    """One receipt set aside and the receipt that counts in its place."""

    event_pk: int
    store_id: str
    observed_at: datetime
    register: str
    receipt_no: str
    total: Decimal
    counted_total: Decimal
    reason: str
    sender: str
    counted_sender: str
    counted_customer_id: int | None

    def row(self, utc_offset_minutes: int) -> list[object]:
        """The CSV row (times in the chain's local time, amounts to the fen)."""
        local = self.observed_at + timedelta(minutes=utc_offset_minutes)
        return [
            self.store_id,
            local.date().isoformat(),
            local.strftime("%Y-%m-%d %H:%M:%S"),
            self.register,
            self.receipt_no,
            f"{self.total:.2f}",
            f"{self.counted_total:.2f}",
            f"{self.total - self.counted_total:.2f}",
            self.reason,
            self.sender,
            self.counted_sender,
            "" if self.counted_customer_id is None else self.counted_customer_id,
        ]


def _read(row: Any) -> SetAside:
    pk, store, at, register, number, total, counted, flag, sender, counted_sender, customer = row
    return SetAside(
        int(pk),
        store,
        at,
        register,
        number,
        Decimal(total),
        Decimal(counted),
        flag,
        sender,
        counted_sender,
        None if customer is None else int(customer),
    )


def _query() -> Any:  # a Select of the columns _read takes
    return (
        select(
            _copy.event_pk,
            _copy.store_id,
            _copy.observed_at,
            _copy.register,
            _copy.receipt_no,
            _copy.total,
            _counted.total,
            _copy.flag,
            _copy.device_id,
            _counted.device_id,
            _counted.customer_id,
        )
        .join(_counted, _counted.id == _copy.reprint_of)
        # Spelled out so that the partial index ix_receipts_reprint_of (reprint_of IS NOT NULL) serves it.
        .where(_copy.reprint_of.is_not(None), _copy.flag.in_(SET_ASIDE_FLAGS))
    )


def listing(
    conn: Connection, *, store: str | None = None, since: datetime | None = None, until: datetime | None = None
) -> Iterator[SetAside]:
    """Receipts set aside at ``store`` (every store if None) observed in ``[since, until)``, by store then time."""
    query = _query()
    if store:
        query = query.where(_copy.store_id == store)
    if since is not None:
        query = query.where(_copy.observed_at >= since)
    if until is not None:
        query = query.where(_copy.observed_at < until)
    query = query.order_by(_copy.store_id, _copy.observed_at, _copy.event_pk)
    for row in conn.execute(query.execution_options(yield_per=1000)):
        yield _read(row)


def of_customer(conn: Connection, customer_id: int, before: ColumnElement[bool] | None, limit: int) -> list[SetAside]:
    """The customer's receipts set aside (copies of receipts linked to them), newest first, at most ``limit``.

    ``before`` is a condition on the copy's ``observed_at`` and ``event_pk`` (the timeline's cursor).
    """
    owners = EventCustomer.__table__
    query = (
        _query()
        .join(owners, owners.c.event_pk == _counted.event_pk)
        .where(owners.c.customer_id == customer_id, true() if before is None else before)
        .order_by(_copy.observed_at.desc(), _copy.event_pk.desc())
        .limit(limit)
    )
    return [_read(row) for row in conn.execute(query)]


def copy_columns() -> tuple[ColumnElement[datetime], ColumnElement[int]]:
    """The copy's time and event id, for a cursor condition built by the caller."""
    return _copy.observed_at, _copy.event_pk  # type: ignore[return-value]
