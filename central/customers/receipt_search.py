"""Finding a till receipt by its number, and the customer it is linked to: the service desk's "receipt R000002577".

A receipt number is unique only within a store and register (tills restart their counters), so a
number alone may name receipts of several stores; the store narrows it. The lookup reads
``ix_receipts_receipt_no`` (``ix_receipts_store_number`` with the store), never the whole table.
The customer is the receipt's own (``receipts.customer_id``), else the owner of its event now (a
receipt from an online source is stored without one), then that customer's survivor after merges.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from central.customers.models import Receipt
from central.identity.models import Customer, EventCustomer
from central.models import table

LIMIT = 20
_receipts = table(Receipt)
_owners = table(EventCustomer)
_customers = table(Customer)


@dataclass(frozen=True, slots=True)
class FoundReceipt:
    """A receipt with the number asked for: where, when, how much, and the live customer it belongs to (or None)."""

    store_id: str
    register: str
    receipt_no: str
    observed_at: datetime
    total: Decimal
    customer_id: int | None
    reprint: bool


def receipts_query(receipt_no: str, store_id: str | None = None, limit: int = LIMIT) -> Select[Any]:
    """The receipts numbered ``receipt_no`` (in ``store_id`` when given), newest first, with their live customer."""
    linked = func.coalesce(_receipts.c.customer_id, _owners.c.customer_id)
    query = (
        select(
            _receipts.c.store_id,
            _receipts.c.register,
            _receipts.c.receipt_no,
            _receipts.c.observed_at,
            _receipts.c.total,
            func.coalesce(_customers.c.merged_into, _customers.c.id).label("customer_id"),
            _receipts.c.reprint_of,
        )
        .outerjoin(_owners, _owners.c.event_pk == _receipts.c.event_pk)
        .outerjoin(_customers, _customers.c.id == linked)
        .where(_receipts.c.receipt_no == receipt_no)
        .order_by(_receipts.c.observed_at.desc(), _receipts.c.id.desc())
        .limit(limit)
    )
    return query.where(_receipts.c.store_id == store_id) if store_id else query


def find_receipts(db: Session, receipt_no: str, store_id: str | None = None, limit: int = LIMIT) -> list[FoundReceipt]:
    """The receipts numbered ``receipt_no`` (in ``store_id`` when given), newest first, at most ``limit``."""
    return [
        FoundReceipt(
            r.store_id, r.register, r.receipt_no, r.observed_at, r.total, r.customer_id, r.reprint_of is not None
        )
        for r in db.execute(receipts_query(receipt_no, store_id, limit))
    ]
