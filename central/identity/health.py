"""Graph health: how many customers, how identifiers spread over them, merges, review, largest clusters,
and the match blocks too common for weak-match suggestions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from central.identity.models import Customer, Identifier, MatchKey, ReviewItem
from central.identity.registry import DEFAULT_BLOCK_LIMIT

BUCKETS = ((1, "1"), (2, "2"), (3, "3"), (5, "4-5"), (10, "6-10"), (None, "11+"))
LARGEST = 10


@dataclass(frozen=True, slots=True)
class Health:
    """Figures about the identity graph, as the API reports them."""

    customers: int
    merged_customers: int
    merge_rate: float
    identifiers: dict[str, int]
    identifiers_per_customer: dict[str, int]
    review_open: dict[str, int]
    largest: list[dict[str, int]]
    block_limit: int = DEFAULT_BLOCK_LIMIT
    common_blocks: int = 0
    largest_blocks: list[dict[str, Any]] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "customers": self.customers,
            "merged_customers": self.merged_customers,
            "merge_rate": self.merge_rate,
            "identifiers": self.identifiers,
            "identifiers_per_customer": self.identifiers_per_customer,
            "review_queue": {"open": sum(self.review_open.values()), "by_reason": self.review_open},
            "largest_clusters": self.largest,
            "match_blocks": {
                "limit": self.block_limit,
                "too_common": self.common_blocks,
                "largest": self.largest_blocks or [],
            },
        }


def _bucket(n: int) -> str:
    for upper, label in BUCKETS:
        if upper is None or n <= upper:
            return label
    return BUCKETS[-1][1]


def graph_health(db: Session, block_limit: int = DEFAULT_BLOCK_LIMIT) -> Health:
    """Compute the figures with a few aggregate queries.

    ``block_limit``: the registry's; a match block past it is too common for weak-match suggestions.
    Its birthday and name initial are shown, being shared by more customers than the limit.
    """
    live = db.scalar(select(func.count()).select_from(Customer).where(Customer.merged_into.is_(None))) or 0
    merged = db.scalar(select(func.count()).select_from(Customer).where(Customer.merged_into.is_not(None))) or 0
    states = {state: n for state, n in db.execute(select(Identifier.state, func.count()).group_by(Identifier.state))}
    per_customer = (
        select(Identifier.customer_id, func.count().label("n"))
        .where(Identifier.customer_id.is_not(None))
        .group_by(Identifier.customer_id)
        .subquery()
    )
    spread = {label: 0 for _, label in BUCKETS}
    for n, customers in db.execute(select(per_customer.c.n, func.count()).group_by(per_customer.c.n)):
        spread[_bucket(int(n))] += int(customers)
    spread["0"] = max(live - sum(spread.values()), 0)
    biggest = db.execute(
        select(per_customer.c.customer_id, per_customer.c.n)
        .order_by(per_customer.c.n.desc(), per_customer.c.customer_id)
        .limit(LARGEST)
    )
    ids = [(int(cid), int(n)) for cid, n in biggest]
    absorbed = dict(
        db.execute(
            select(Customer.merged_into, func.count())
            .where(Customer.merged_into.in_([cid for cid, _ in ids]))
            .group_by(Customer.merged_into)
        ).all()
    )
    reviews = dict(
        db.execute(
            select(ReviewItem.reason, func.count()).where(ReviewItem.status == "open").group_by(ReviewItem.reason)
        ).all()
    )
    per_block = select(MatchKey.block, func.count().label("n")).group_by(MatchKey.block).subquery()
    too_common = per_block.c.n > block_limit
    common = db.scalar(select(func.count()).select_from(per_block).where(too_common)) or 0
    blocks = db.execute(
        select(per_block.c.block, per_block.c.n).where(too_common).order_by(per_block.c.n.desc(), per_block.c.block)
    ).fetchmany(LARGEST)
    total = live + merged
    return Health(
        customers=live,
        merged_customers=merged,
        merge_rate=round(merged / total, 4) if total else 0.0,
        identifiers={str(k): int(v) for k, v in states.items()},
        identifiers_per_customer=spread,
        review_open={str(k): int(v) for k, v in reviews.items()},
        largest=[
            {"customer_id": cid, "identifiers": n, "merged_customers": int(absorbed.get(cid, 0))} for cid, n in ids
        ],
        block_limit=block_limit,
        common_blocks=int(common),
        largest_blocks=[{"block": str(block), "customers": int(n)} for block, n in blocks],
    )
