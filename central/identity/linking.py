"""The deterministic identity step: receipts naming a phone or member card become customer profiles.

Per batch, with a fixed number of statements whatever its size: one lookup of every identifier the
batch names, then set-based inserts and updates (see ``central.bulk``). Receipts are walked in batch
order against an in-memory map, so two receipts with the same phone in one batch land on one
customer. A receipt naming identifiers of several customers merges them into the oldest (lowest
id): identifiers and receipts move to it, the others keep their row with ``merged_into`` set, and
each merge is appended to ``merge_ledger`` with the receipt that caused it. Only phones and member
cards identify people; presence data never does.

On PostgreSQL (read committed) a concurrent batch can change a customer between the lookup and the
writes; every write that depends on the lookup re-checks ``merged_into IS NULL`` and a mismatch
raises :class:`ConcurrentChange`, on which ingest retries the whole batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from central import bulk
from central.customers.models import Receipt
from central.identity.models import Customer, Identifier, MergeLedger
from central.models import table
from shared.identifiers import normalize_card, normalize_phone

Pair = tuple[str, str]
PHONE = "phone"
MEMBER_CARD = "member_card"

_customers = table(Customer)
_identifiers = table(Identifier)
_receipts = table(Receipt)
_ledger = table(MergeLedger)


class ConcurrentChange(Exception):
    """Another transaction merged a customer this batch was about to update; retry the batch."""


@dataclass(frozen=True, slots=True)
class ReceiptFact:
    """What the identity step needs from one accepted ``pos.receipt`` event."""

    event_id: str
    total: Decimal
    observed_at: datetime
    identifiers: tuple[Pair, ...]


@dataclass(frozen=True, slots=True)
class LinkOutcome:
    """Which customer each receipt belongs to (None: no usable identifier), and what changed."""

    customer_ids: list[int | None]
    customers_created: int
    customers_merged: int


def member_identifiers(payload: dict[str, Any]) -> tuple[Pair, ...]:
    """The usable (kind, normalized value) pairs in a receipt's ``member``; invalid values are ignored."""
    member = payload.get("member")
    if not isinstance(member, dict):
        return ()
    pairs: list[Pair] = []
    phone = member.get("phone")
    if isinstance(phone, str) and (normalized := normalize_phone(phone)):
        pairs.append((PHONE, normalized))
    card = member.get("card")
    if isinstance(card, str) and (normalized := normalize_card(card)):
        pairs.append((MEMBER_CARD, normalized))
    return tuple(pairs)


class _Groups:
    """Union-find over customer handles: existing ids are positive, customers still to create negative."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, handle: int) -> int:
        root = handle
        while (up := self.parent.get(root, root)) != root:
            root = up
        while handle != root:  # path compression
            self.parent[handle], handle = root, self.parent.get(handle, handle)
        return root

    def attach(self, child: int, root: int) -> None:
        self.parent[child] = root


def _survivor(handles: set[int]) -> int:
    existing = [h for h in handles if h > 0]
    # The oldest existing customer survives; among new ones, the first created (-1 before -2).
    return min(existing) if existing else max(handles)


@dataclass
class _Stats:
    count: int
    total: Decimal
    first: datetime
    last: datetime

    def add(self, count: int, total: Decimal, first: datetime, last: datetime) -> None:
        self.count += count
        self.total += total
        self.first = min(self.first, first)
        self.last = max(self.last, last)


def _lookup(db: Session, pairs: Iterable[Pair]) -> dict[Pair, int]:
    """Which customer owns each (kind, value), for every pair of the batch in one query."""
    rows = bulk.select_matching(
        db.connection(), _identifiers, ("kind", "value"), sorted(pairs), ("kind", "value", "customer_id")
    )
    return {(kind, value): customer_id for kind, value, customer_id in rows}


def link_receipts(db: Session, receipts: Sequence[ReceiptFact], now: datetime) -> LinkOutcome:
    """Attach ``receipts`` to customers, creating and merging customers and updating their statistics.

    The caller stores the receipt rows themselves with the returned customer ids.
    """
    if not receipts:
        return LinkOutcome([], 0, 0)
    existing = _lookup(db, {p for r in receipts for p in r.identifiers})
    owner: dict[Pair, int] = dict(existing)
    groups = _Groups()
    handles: list[int | None] = []
    merges: list[tuple[int, int, str, str]] = []  # (kept, merged, reason, event_id), existing ids only
    next_new = 0

    for receipt in receipts:
        if not receipt.identifiers:
            handles.append(None)
            continue
        found = {groups.find(owner[p]) for p in receipt.identifiers if p in owner}
        if not found:
            next_new -= 1
            found = {next_new}
        kept = _survivor(found)
        for other in found - {kept}:
            groups.attach(other, kept)
            if other > 0:
                kinds = " and ".join(sorted({kind for kind, _ in receipt.identifiers}))
                reason = f"{kinds} shared by receipt {receipt.event_id}"
                merges.append((kept, other, reason, receipt.event_id))
        for pair in receipt.identifiers:
            owner.setdefault(pair, kept)
        handles.append(kept)

    # Per-customer statistics of this batch, keyed by the final surviving handle.
    stats: dict[int, _Stats] = {}
    finals: list[int | None] = []
    for receipt, handle in zip(receipts, handles, strict=True):
        if handle is None:
            finals.append(None)
            continue
        root = groups.find(handle)
        finals.append(root)
        if root in stats:
            stats[root].add(1, receipt.total, receipt.observed_at, receipt.observed_at)
        else:
            stats[root] = _Stats(1, receipt.total, receipt.observed_at, receipt.observed_at)

    new_ids = _create_customers(db, {h: s for h, s in stats.items() if h < 0}, now)

    def real(handle: int) -> int:
        root = groups.find(handle)
        return new_ids[root] if root < 0 else root

    if merges:
        _apply_merges(db, merges, groups, stats, now)

    bulk.insert(
        db.connection(),
        _identifiers,
        ("kind", "value", "customer_id", "created_at"),
        [(kind, value, real(handle), now) for (kind, value), handle in owner.items() if (kind, value) not in existing],
    )
    _update_existing(db, {h: s for h, s in stats.items() if h > 0})
    return LinkOutcome([None if root is None else real(root) for root in finals], len(new_ids), len(merges))


def _create_customers(db: Session, stats: dict[int, _Stats], now: datetime) -> dict[int, int]:
    """Insert one customer per new handle; return handle -> new id."""
    if not stats:
        return {}
    order = sorted(stats, reverse=True)  # -1, -2, ... so ids grow in order of first appearance
    ids = bulk.insert(
        db.connection(),
        _customers,
        ("created_at", "first_seen_at", "last_seen_at", "receipts_count", "total_spent"),
        [(now, stats[h].first, stats[h].last, stats[h].count, stats[h].total) for h in order],
        returning=("id",),
    )
    return {h: row[0] for h, row in zip(order, ids, strict=True)}


def _apply_merges(
    db: Session,
    merges: list[tuple[int, int, str, str]],
    groups: _Groups,
    stats: dict[int, _Stats],
    now: datetime,
) -> None:
    """Fold each merged customer into its survivor: identifiers, receipts, statistics, ledger."""
    conn = db.connection()
    moves = sorted((merged, groups.find(merged)) for _, merged, _, _ in merges)
    # Marking the merged customers first takes their row locks on PostgreSQL: a concurrent batch
    # still adding receipts to one of them finishes (or fails its own check) before the receipts
    # and statistics are moved below, so none are left behind on a merged-away customer.
    if bulk.remap(conn, _customers, "merged_into", moves, match="id", only_unset=True) != len(moves):
        raise ConcurrentChange("a customer to merge was merged by another transaction")
    bulk.remap(conn, _identifiers, "customer_id", moves)
    bulk.remap(conn, _receipts, "customer_id", moves)
    previous = db.execute(
        select(
            Customer.id,
            Customer.receipts_count,
            Customer.total_spent,
            Customer.first_seen_at,
            Customer.last_seen_at,
        ).where(Customer.id.in_([merged for merged, _ in moves]))
    )
    for cid, count, total, first, last in previous:
        stats[groups.find(cid)].add(count, total, first, last)
    bulk.insert(
        conn,
        _ledger,
        ("at", "kept_customer_id", "merged_customer_id", "reason", "event_id"),
        [(now, kept, merged, reason, event_id) for kept, merged, reason, event_id in merges],
    )


_STAT_COLUMNS = ("id", "receipts_count", "total_spent", "first_seen_at", "last_seen_at")


def _update_existing(db: Session, stats: dict[int, _Stats]) -> None:
    """Add this batch's receipts to existing customers in one statement (one executemany on SQLite)."""
    if not stats:
        return
    conn = db.connection()
    rows = [(cid, s.count, s.total, s.first, s.last) for cid, s in sorted(stats.items())]
    if conn.dialect.name == "postgresql":
        source, document = bulk.pg_source(_customers, _STAT_COLUMNS, rows, conn.dialect)
        # MATERIALIZED: the JSON is parsed once whatever join the planner picks.
        result = conn.exec_driver_sql(
            f"WITH v AS MATERIALIZED ({source})"  # noqa: S608 - no user text in the SQL
            " UPDATE customers AS c SET receipts_count = c.receipts_count + v.receipts_count,"
            " total_spent = c.total_spent + v.total_spent,"
            " first_seen_at = LEAST(c.first_seen_at, v.first_seen_at),"
            " last_seen_at = GREATEST(c.last_seen_at, v.last_seen_at)"
            " FROM v WHERE c.id = v.id AND c.merged_into IS NULL",
            (document,),
        )
    else:
        # SQLite's two-argument min()/max() are scalar; timestamps are stored as fixed-width UTC text.
        result = conn.exec_driver_sql(
            "UPDATE customers SET receipts_count = receipts_count + ?, total_spent = total_spent + ?,"
            " first_seen_at = min(first_seen_at, ?), last_seen_at = max(last_seen_at, ?)"
            " WHERE id = ? AND merged_into IS NULL",
            [
                (n, total, first, last, cid)
                for cid, n, total, first, last in bulk.sqlite_rows(_customers, _STAT_COLUMNS, rows, conn.dialect)
            ],
        )
    # Under PostgreSQL's read committed, a customer read above may have been merged away meanwhile.
    if result.rowcount != len(rows):
        raise ConcurrentChange("a customer was merged by another transaction")
