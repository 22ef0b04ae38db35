"""The review queue: evidence resolution would not act on alone, and a person's decision on it.

Accepting an item does what the evidence asked for, with the reviewer as operator in the ledger:
a conflict or a weak match merges the two customers (never past a unique type: remove one of the
values first), a value over a limit is attached anyway, a suspicious value becomes *trusted*
(it links again and is not flagged again). Rejecting leaves things apart; a suspicious value then
stays out of linking for good. Decided items keep their key, so the same evidence arriving again
does not reopen them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from central import bulk
from central.customers import moves
from central.identity import changes
from central.identity.merges import MergeRefused, clashes, merge_customers
from central.identity.models import LINK, SUSPICIOUS, TRUSTED, Customer, Identifier, LedgerEntry, ReviewItem
from central.identity.registry import Registry
from central.models import table

OPEN, ACCEPTED, REJECTED = "open", "accepted", "rejected"
_items = table(ReviewItem)


class ReviewError(ValueError):
    """A decision that cannot be made, with why as a code.

    ``unknown`` (no such item), ``decided`` (decided already), ``held`` (the value is someone else's
    by now), or the registry's clash that forbids the merge (``unique_conflict:<type>``,
    ``limit_exceeded:<type>``), or ``refused`` (a customer is gone).
    """

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Decision:
    """What deciding an item did: its new status and the customer it concerns now."""

    item_id: int
    status: str
    customer_id: int | None
    also: tuple[int, ...] = ()  # the pair's other open items, decided with it


def list_items(db: Session, status: str = OPEN, limit: int = 50, offset: int = 0) -> tuple[list[ReviewItem], int]:
    """A page of review items with ``status``, oldest first, and how many there are."""
    total = db.scalar(select(func.count()).select_from(ReviewItem).where(ReviewItem.status == status)) or 0
    rows = db.scalars(
        select(ReviewItem).where(ReviewItem.status == status).order_by(ReviewItem.id).limit(limit).offset(offset)
    )
    return list(rows), total


def _live(db: Session, customer_id: int | None) -> int | None:
    if customer_id is None:
        return None
    merged_into = db.scalar(select(Customer.merged_into).where(Customer.id == customer_id))
    return merged_into if merged_into is not None else customer_id


def _close(db: Session, item: ReviewItem, status: str, operator: str, now: datetime) -> None:
    db.execute(
        update(_items)
        .where(_items.c.id == item.id, _items.c.status == OPEN)
        .values(status=status, decided_at=now, decided_by=operator)
    )


def _close_pair(db: Session, item: ReviewItem, status: str, operator: str, now: datetime) -> tuple[int, ...]:
    """Decide the other open items that ask whether the same two customers are one person, as ``item`` was.

    A conflict and a weak-match suggestion can name the same pair: one answer settles both, so the
    reviewer is not asked twice (a rejected pair is not suggested again, a merged one is one customer).
    """
    if not (_merges(item) and item.customer_id and item.other_customer_id):
        return ()
    pair = {item.customer_id, item.other_customer_id}
    rows = db.execute(
        select(_items.c.id, _items.c.reason, _items.c.identifier_id).where(
            _items.c.status == OPEN,
            _items.c.id != item.id,
            _items.c.customer_id.in_(pair),
            _items.c.other_customer_id.in_(pair),
            _items.c.customer_id != _items.c.other_customer_id,
        )
    ).all()
    siblings = tuple(sorted(i for i, reason, ident in rows if _merging(reason, ident)))
    if siblings:
        db.execute(
            update(_items)
            .where(_items.c.id.in_(siblings), _items.c.status == OPEN)
            .values(status=status, decided_at=now, decided_by=operator)
        )
    return siblings


def customers_of(items: list[ReviewItem]) -> list[int]:
    """The customers review items show side by side, for the audit row of a list of them."""
    return sorted({cid for item in items for cid in (item.customer_id, item.other_customer_id) if cid is not None})


def _open_item(db: Session, item_id: int) -> ReviewItem:
    item = db.get(ReviewItem, item_id, with_for_update=True)
    if item is None:
        raise ReviewError(f"no review item {item_id}", "unknown")
    if item.status != OPEN:
        raise ReviewError(f"review item {item_id} was already {item.status}", "decided")
    return item


def accept(
    db: Session, registry: Registry, item_id: int, *, operator: str, now: datetime, offset_minutes: int | None = None
) -> Decision:
    """Do what review item ``item_id`` proposed, as ``operator``.

    A merge folds the two customers' statistics; a survivor left marked for a recompute (one of
    them was waiting for one) is recomputed in the same transaction (``offset_minutes``:
    ``customers.utc_offset_minutes``, the app's when None).
    """
    item = _open_item(db, item_id)
    customer = _live(db, item.customer_id)
    other = _live(db, item.other_customer_id)
    detail: dict[str, Any] = {"review_item": item.id, "reason": item.reason}
    if item.reason == "suspicious_value" and item.identifier_id is not None:
        db.execute(
            update(table(Identifier))
            .where(table(Identifier).c.id == item.identifier_id, table(Identifier).c.state == SUSPICIOUS)
            .values(state=TRUSTED)
        )
    elif item.reason == "reassigned":
        pass  # the move stands; accepting acknowledges it
    elif customer is not None and other is not None and customer != other:
        try:
            customer = merge_customers(
                db,
                registry,
                customer,
                other,
                rule="review_accepted",
                now=now,
                operator=operator,
                detail=detail,
                force=item.reason == "limit_exceeded",
            )
        except MergeRefused as exc:
            raise ReviewError(f"{exc}; remove the conflicting identifier first", exc.clash or "refused") from None
        moves.settle(db.connection(), [customer], offset_minutes)
    elif customer is not None and item.evidence and item.identifier_id is None:
        customer = _attach(db, customer, item.evidence, operator, now, detail)
    _close(db, item, ACCEPTED, operator, now)
    return Decision(item.id, ACCEPTED, customer, _close_pair(db, item, ACCEPTED, operator, now))


def _merges(item: ReviewItem) -> bool:
    """Whether accepting ``item`` merges its two customers (every reason but a flagged value and a move)."""
    return _merging(item.reason, item.identifier_id)


def _merging(reason: str, identifier_id: int | None) -> bool:
    return reason != "reassigned" and not (reason == "suspicious_value" and identifier_id is not None)


def blocked(db: Session, registry: Registry, items: list[ReviewItem]) -> dict[int, str]:
    """For each open item among ``items`` that accepting could not merge now, why (``unique_conflict:<type>``...).

    What :func:`accept` would run into: a unique type's clash always, a limit's unless the item is
    the limit's own (accepting a ``limit_exceeded`` item overrides the limit).
    """
    merging = [i for i in items if i.status == OPEN and _merges(i) and i.customer_id and i.other_customer_id]
    if not merging:
        return {}
    ids = {cid for i in merging for cid in (i.customer_id, i.other_customer_id)}
    customers = table(Customer)
    live = {
        cid: into or cid
        for cid, into in db.execute(
            select(customers.c.id, customers.c.merged_into).where(customers.c.id.in_(ids))
        ).all()
    }
    pairs = {
        i.id: (live[i.customer_id], live[i.other_customer_id])
        for i in merging
        if i.customer_id in live and i.other_customer_id in live
    }
    found = clashes(db, registry, pairs.values())
    reasons = {i.id: i.reason for i in merging}
    return {
        item_id: found[pair]
        for item_id, pair in pairs.items()
        if pair in found and not (reasons[item_id] == "limit_exceeded" and found[pair].startswith("limit_exceeded"))
    }


def _attach(db: Session, customer: int, evidence: dict[str, Any], operator: str, now: datetime, detail: Any) -> int:
    """Attach a value that was refused for a limit to ``customer`` (unless someone holds it by now)."""
    kind, value = evidence.get("type"), evidence.get("value")
    if not isinstance(kind, str) or not isinstance(value, str):
        return customer
    conn = db.connection()
    found = conn.execute(
        select(table(Identifier).c.id, table(Identifier).c.customer_id).where(
            table(Identifier).c.kind == kind, table(Identifier).c.value == value
        )
    ).first()
    if found is not None:
        if found[1] is not None and found[1] != customer:
            raise ReviewError(f"the {kind} is held by customer {found[1]} by now; merge or split instead", "held")
        ident = found[0]
        conn.execute(update(table(Identifier)).where(table(Identifier).c.id == ident).values(customer_id=customer))
    else:
        columns = ("kind", "value", "customer_id", "state", "created_at", "last_seen_at")
        ident = bulk.insert(conn, table(Identifier), columns, [(kind, value, customer, "linked", now, now)], ("id",))[
            0
        ][0]
    conn.execute(update(table(Customer)).where(table(Customer).c.id == customer).values(version=Customer.version + 1))
    row = (now, LINK, "review_accepted", ident, None, customer, None, None, None, None, operator, detail)
    bulk.insert(conn, table(LedgerEntry), changes.LEDGER_COLUMNS, [row])
    return customer


def reject(db: Session, item_id: int, *, operator: str, now: datetime) -> Decision:
    """Close review item ``item_id`` without acting on it."""
    item = _open_item(db, item_id)
    _close(db, item, REJECTED, operator, now)
    return Decision(item.id, REJECTED, _live(db, item.customer_id), _close_pair(db, item, REJECTED, operator, now))
