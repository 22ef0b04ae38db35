"""Read-side queries shared by the JSON API and the console: customers, identifiers masked."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from central.customers.models import CustomerStats, Receipt
from central.customers.sales import fen
from central.identity.models import Customer, Identifier
from central.privacy.models import not_erased
from shared.masking import mask_identifier
from shared.wire import format_time

RECENT_RECEIPTS = 20


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else format_time(moment)


def money(amount: Decimal) -> str:
    """An amount as the API and console show it: two decimals (whole fen, half away from zero), no exponent."""
    return f"{fen(amount):.2f}"


@dataclass(frozen=True, slots=True)
class MaskedIdentifier:
    """An identifier as shown to HQ users: its kind and a masked value."""

    kind: str
    value: str


@dataclass(frozen=True, slots=True)
class CustomerSummary:
    """One customer profile, identifiers already masked.

    ``purchases`` and ``spent`` cover every channel and source, as the statistics and tags count
    them: purchases are sales above zero, spent is every sale's amount with refunds taken off.
    ``till_receipts`` and ``till_spent`` are the part of that the stores' tills printed: receipts
    (refunds included, a reprint once) and their total, refunds taken off (decision 0091).
    """

    id: int
    identifiers: tuple[MaskedIdentifier, ...]
    first_seen_at: datetime
    last_seen_at: datetime
    till_receipts: int
    till_spent: Decimal
    purchases: int = 0
    spent: Decimal = Decimal("0")

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "identifiers": [{"kind": i.kind, "value": i.value} for i in self.identifiers],
            "first_seen_at": _time(self.first_seen_at),
            "last_seen_at": _time(self.last_seen_at),
            "purchases": self.purchases,
            "spent": money(self.spent),
            "till_receipts": self.till_receipts,
            "till_spent": money(self.till_spent),
        }


@dataclass(frozen=True, slots=True)
class ReceiptLine:
    """A receipt as listed under its customer."""

    receipt_no: str
    total: Decimal
    store_id: str
    observed_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "receipt_no": self.receipt_no,
            "total": money(self.total),
            "store_id": self.store_id,
            "observed_at": _time(self.observed_at),
        }


def _identifiers_of(db: Session, customer_ids: list[int]) -> dict[int, list[MaskedIdentifier]]:
    out: dict[int, list[MaskedIdentifier]] = {cid: [] for cid in customer_ids}
    if not customer_ids:
        return out
    rows = db.execute(
        select(Identifier.customer_id, Identifier.kind, Identifier.value)
        .where(Identifier.customer_id.in_(customer_ids))
        .order_by(Identifier.customer_id, Identifier.kind, Identifier.id)
    )
    for cid, kind, value in rows:
        if cid is not None:
            out[cid].append(MaskedIdentifier(kind, mask_identifier(kind, value)))
    return out


def purchase_totals(db: Session, customer_ids: list[int]) -> dict[int, tuple[int, Decimal]]:
    """(purchases, spent) of each of ``customer_ids`` over every channel and source; (0, 0) if none bought.

    From the purchase statistics (``customer_stats``), which every ingest path keeps; the customer
    row's ``receipts_count`` and ``total_spent`` count the receipts the stores' tills printed, from
    an agent, a source or a backfill (the API's ``till_receipts`` and ``till_spent``).
    """
    out = dict.fromkeys(customer_ids, (0, Decimal("0")))
    if customer_ids:
        rows = db.execute(
            select(CustomerStats.customer_id, CustomerStats.purchases, CustomerStats.spent).where(
                CustomerStats.customer_id.in_(customer_ids)
            )
        )
        out.update((cid, (purchases, Decimal(spent) / 100)) for cid, purchases, spent in rows)
    return out


def _summaries(db: Session, customers: list[Customer]) -> list[CustomerSummary]:
    ids = [c.id for c in customers]
    idents = _identifiers_of(db, ids)
    totals = purchase_totals(db, ids)
    return [
        CustomerSummary(
            c.id,
            tuple(idents[c.id]),
            c.first_seen_at,
            c.last_seen_at,
            c.receipts_count,
            c.total_spent,
            *totals[c.id],
        )
        for c in customers
    ]


def list_customers(db: Session, limit: int, offset: int) -> tuple[list[CustomerSummary], int]:
    """Current (not merged-away) customers, most recently seen first, and how many there are."""
    live = Customer.merged_into.is_(None) & not_erased(Customer.id)
    total = db.scalar(select(func.count()).select_from(Customer).where(live)) or 0
    customers = list(
        db.scalars(
            select(Customer)
            .where(live)
            .order_by(Customer.last_seen_at.desc(), Customer.id.desc())
            .limit(limit)
            .offset(offset)
        )
    )
    return _summaries(db, customers), total


def find_customer(db: Session, customer_id: int) -> Customer | None:
    """The customer row with this id, merged or not."""
    return db.get(Customer, customer_id)


def survivor_of(db: Session, customer: Customer) -> int:
    """The id of the live customer a merged-away customer now lives on as."""
    current = customer
    for _ in range(100):  # merges form a forest; the bound only guards against a corrupted cycle
        if current.merged_into is None:
            break
        nxt = db.get(Customer, current.merged_into)
        if nxt is None:
            break
        current = nxt
    return current.id


def customer_detail(db: Session, customer: Customer) -> tuple[CustomerSummary, list[ReceiptLine]]:
    """One customer and their most recent receipts."""
    summary = _summaries(db, [customer])[0]
    receipts = db.execute(
        select(Receipt.receipt_no, Receipt.total, Receipt.store_id, Receipt.observed_at)
        .where(Receipt.customer_id == customer.id)
        .order_by(Receipt.observed_at.desc(), Receipt.id.desc())
        .limit(RECENT_RECEIPTS)
    )
    return summary, [ReceiptLine(*row) for row in receipts]


def summaries_of(db: Session, customer_ids: list[int]) -> list[CustomerSummary]:
    """The summaries of ``customer_ids``, in that order (ids with no customer row left out)."""
    rows = {c.id: c for c in db.scalars(select(Customer).where(Customer.id.in_(customer_ids)))} if customer_ids else {}
    return _summaries(db, [rows[cid] for cid in customer_ids if cid in rows])


def recent_customers(db: Session, limit: int, after: int | None = None) -> tuple[list[CustomerSummary], int | None]:
    """Live customers, newest first, a keyset page after customer id ``after``; and the next page's ``after``."""
    query = select(Customer).where(Customer.merged_into.is_(None), not_erased(Customer.id))
    if after is not None:
        query = query.where(Customer.id < after)
    customers = list(db.scalars(query.order_by(Customer.id.desc()).limit(limit + 1)))
    shown = customers[:limit]
    return _summaries(db, shown), shown[-1].id if len(customers) > limit else None
