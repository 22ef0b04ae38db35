"""Reading the identity graph back for people: a customer's ledger, its identifiers, and review items.

The console's customer page and review queue read through these; changes go through
:mod:`central.identity.split` and :mod:`central.identity.review`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from central.identity.models import LINK, MERGE, Customer, Identifier, LedgerEntry, ReviewItem
from central.identity.review import OPEN
from central.identity.split import SPLIT
from central.models import table
from shared.masking import mask_identifier

_customers = table(Customer)
_identifiers = table(Identifier)
_ledger = table(LedgerEntry)
_items = table(ReviewItem)


@dataclass(frozen=True, slots=True)
class HeldIdentifier:
    """An identifier a customer holds, as stored (the caller masks it for display)."""

    id: int
    kind: str
    value: str
    state: str
    last_seen_at: datetime


@dataclass(frozen=True, slots=True)
class LedgerLine:
    """One ledger row of a customer's history, and whether a split can undo it."""

    id: int
    at: datetime
    action: str
    rule: str
    identifier_id: int | None
    identifier_kind: str | None
    anchor_identifier_id: int | None
    customer_id: int | None
    other_customer_id: int | None
    source: str | None
    store_id: str | None
    operator: str | None
    splittable: bool
    identifier_value: str | None = None  # masked
    anchor_kind: str | None = None
    anchor_value: str | None = None  # masked


def identifiers_of(db: Session, customer_id: int) -> list[HeldIdentifier]:
    """The identifiers customer ``customer_id`` holds, by type."""
    rows = db.execute(
        select(
            _identifiers.c.id,
            _identifiers.c.kind,
            _identifiers.c.value,
            _identifiers.c.state,
            _identifiers.c.last_seen_at,
        )
        .where(_identifiers.c.customer_id == customer_id)
        .order_by(_identifiers.c.kind, _identifiers.c.id)
    )
    return [HeldIdentifier(*row) for row in rows]


def identifier_of(db: Session, customer_id: int, identifier_id: int) -> HeldIdentifier | None:
    """Identifier ``identifier_id`` if customer ``customer_id`` holds it."""
    return next((i for i in identifiers_of(db, customer_id) if i.id == identifier_id), None)


def _splittable(action: str, rule: str, anchor: int | None) -> bool:
    # What central.identity.split.split accepts: a merge, or a link that came through another identifier.
    return rule != SPLIT and (action == MERGE or (action == LINK and anchor is not None))


def ledger_of(db: Session, customer_id: int, limit: int = 200) -> list[LedgerLine]:
    """The newest ``limit`` ledger rows naming the customer or a customer merged into it, newest first."""
    tree = [customer_id, *db.scalars(select(_customers.c.id).where(_customers.c.merged_into == customer_id))]
    rows = list(
        db.execute(
            select(_ledger)
            .where(or_(_ledger.c.customer_id.in_(tree), _ledger.c.other_customer_id.in_(tree)))
            .order_by(_ledger.c.id.desc())
            .limit(limit)
        )
    )
    named = {i for r in rows for i in (r.identifier_id, r.anchor_identifier_id) if i is not None}
    found = db.execute(
        select(_identifiers.c.id, _identifiers.c.kind, _identifiers.c.value).where(_identifiers.c.id.in_(named))
    ).all()
    kinds = {i: kind for i, kind, _value in found}
    masked = {i: mask_identifier(kind, value) for i, kind, value in found}
    return [
        LedgerLine(
            r.id,
            r.at,
            r.action,
            r.rule,
            r.identifier_id,
            kinds.get(r.identifier_id),
            r.anchor_identifier_id,
            r.customer_id,
            r.other_customer_id,
            r.source,
            r.store_id,
            r.operator,
            _splittable(r.action, r.rule, r.anchor_identifier_id),
            masked.get(r.identifier_id),
            kinds.get(r.anchor_identifier_id),
            masked.get(r.anchor_identifier_id),
        )
        for r in rows
    ]


def open_items_of(db: Session, customer_id: int, limit: int = 50) -> list[ReviewItem]:
    """Open review items (weak-match suggestions, conflicts) naming the customer, oldest first."""
    return list(
        db.scalars(
            select(ReviewItem)
            .where(
                ReviewItem.status == OPEN,
                or_(ReviewItem.customer_id == customer_id, ReviewItem.other_customer_id == customer_id),
            )
            .order_by(ReviewItem.id)
            .limit(limit)
        )
    )


def review_page(db: Session, status: str, after: int | None, limit: int) -> tuple[list[ReviewItem], int | None]:
    """Review items with ``status``, oldest first, after item ``after``; and the next page's ``after``."""
    query = select(ReviewItem).where(ReviewItem.status == status)
    if after is not None:
        query = query.where(ReviewItem.id > after)
    rows = list(db.scalars(query.order_by(ReviewItem.id).limit(limit + 1)))
    return rows[:limit], rows[limit - 1].id if len(rows) > limit else None
