"""Writing a batch's identity plan with set-based statements: customers, identifiers, ledger, review.

A fixed number of statements per batch: new customers (one multi-row insert), existing customers
(one version-checked update that also takes their row locks, plus one that folds merged
customers' statistics into their survivors), the re-pointing of whatever belonged to merged
customers (identifiers, events, receipts, attributes), new and changed identifiers, the ledger,
review items, event ownership and recompute marks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from central import bulk
from central.customers import moves, purchases
from central.customers.models import Receipt
from central.errors import ConcurrentChange
from central.identity.models import (
    LINKED,
    AttributeObservation,
    Customer,
    EventCustomer,
    GoldenAttribute,
    Identifier,
    LedgerEntry,
    MatchKey,
    RecomputeMark,
    ReviewItem,
)
from central.identity.plans import Known, LedgerOp, Pair, Plan
from central.models import table

if TYPE_CHECKING:
    from central.identity.resolve import IdentityFact

_customers = table(Customer)
_identifiers = table(Identifier)
_ledger = table(LedgerEntry)
_reviews = table(ReviewItem)
_events = table(EventCustomer)
_marks = table(RecomputeMark)
LEDGER_COLUMNS = (
    "at",
    "action",
    "rule",
    "identifier_id",
    "anchor_identifier_id",
    "customer_id",
    "other_customer_id",
    "event_pk",
    "source",
    "store_id",
    "operator",
    "detail",
)
REVIEW_COLUMNS = (
    "key",
    "reason",
    "status",
    "created_at",
    "customer_id",
    "other_customer_id",
    "identifier_id",
    "event_pk",
    "source",
    "store_id",
    "score",
    "evidence",
)
_IDENT_COLUMNS = ("customer_id", "state", "last_seen_at", "partners_total", "partners_today", "partners_day")
# A stored identifier's last_seen_at is refreshed only when it moves by more than this: windowed
# limits count in days, and rewriting every identifier of every receipt would double the writes.
SEEN_RESOLUTION = timedelta(days=1)


@dataclass
class Applied:
    """What the writes produced: real ids for handles and pairs, each fact's customer."""

    customer_ids: list[int | None]
    identifier_ids: dict[Pair, int]
    real: dict[int, int]
    merged_into: set[int] = field(default_factory=set)


def value_digest(kind: str, value: str) -> str:
    """A short stable digest naming a value in review keys without storing it there."""
    return hashlib.sha256(f"{kind}\x00{value}".encode()).hexdigest()[:20]


def mark_recompute(conn: Connection, customer_ids: Sequence[int], now: datetime, reason: str) -> None:
    """Mark customers whose derived data must be recomputed (kept until the consumer clears it)."""
    rows = [(cid, now, reason) for cid in sorted(set(customer_ids))]
    bulk.insert(conn, _marks, ("customer_id", "marked_at", "reason"), rows, skip_conflicts_on=("customer_id",))


def ledger_rows(
    ops: Sequence[LedgerOp],
    facts: Sequence[IdentityFact],
    ident: dict[Pair, int],
    real: dict[int, int],
    now: datetime,
) -> list[tuple[Any, ...]]:
    """Ledger rows for ``ops`` with real ids and each op's evidence event."""
    rows = []
    for op in ops:
        fact = facts[op.fact] if op.fact is not None else None
        rows.append(
            (
                now,
                op.action,
                op.rule,
                ident.get(op.pair) if op.pair else None,
                ident.get(op.anchor) if op.anchor else None,
                real.get(op.customer, op.customer) if op.customer is not None else None,
                real.get(op.other, op.other) if op.other is not None else None,
                fact.event_pk if fact else None,
                fact.source if fact else None,
                fact.store_id if fact else None,
                fact.operator if fact else None,
                None,
            )
        )
    return rows


def _stored_customers(plan: Plan, known: dict[Pair, Known]) -> dict[int, int]:
    """Stored customers the batch decided on, with the version it saw."""
    out: dict[int, int] = {}
    for row in known.values():
        if row.customer_id is not None and row.version is not None:
            out[row.customer_id] = row.version
    return out


def _seen_ranges(plan: Plan, facts: Sequence[IdentityFact]) -> dict[int, tuple[datetime, datetime]]:
    # Per handle first (a customer's facts share one), then per root: one root() per handle, not per fact.
    per_handle: dict[int, list[datetime]] = {}
    for fact, handle in zip(facts, plan.customers, strict=True):
        if handle is None:
            continue
        at = fact.observed_at
        span = per_handle.get(handle)
        if span is None:
            per_handle[handle] = [at, at]
        elif at < span[0]:
            span[0] = at
        elif at > span[1]:
            span[1] = at
    ranges: dict[int, tuple[datetime, datetime]] = {}
    for handle, (first, last) in per_handle.items():
        root = plan.root(handle)
        found = ranges.get(root)
        ranges[root] = (first, last) if found is None else (min(found[0], first), max(found[1], last))
    return ranges


def apply(
    conn: Connection, plan: Plan, facts: Sequence[IdentityFact], known: dict[Pair, Known], now: datetime
) -> Applied:
    """Write ``plan``; raise ConcurrentChange if a customer changed since the look-up."""
    ranges = _seen_ranges(plan, facts)
    real: dict[int, int] = {}
    if plan.new_handles:
        rows = []
        for handle in plan.new_handles:
            first, last = ranges.get(plan.root(handle), (now, now))
            rows.append((now, first, last, 0, Decimal("0"), 0))
        ids = bulk.insert(
            conn,
            _customers,
            ("created_at", "first_seen_at", "last_seen_at", "receipts_count", "total_spent", "version"),
            rows,
            returning=("id",),
        )
        real = {h: row[0] for h, row in zip(plan.new_handles, ids, strict=True)}
    stored = _stored_customers(plan, known)
    for cid in stored:
        real[cid] = cid

    # The plan is complete: each handle's final customer is found once, then remembered.
    finals: dict[int, int] = {}

    def final(handle: int) -> int:
        found = finals.get(handle)
        if found is None:
            found = finals[handle] = real[plan.root(handle)]
        return found

    _update_stored(conn, plan, stored, ranges, final)
    merged_away = [(real[m], final(m)) for _, m in plan.merges]
    merged_into: set[int] = set()
    if merged_away:
        merged_into = {to for _, to in merged_away}
        fold_merged(conn, merged_away, now)
    identifier_ids = _write_identifiers(conn, plan, known, final, now)
    bulk.insert(conn, _ledger, LEDGER_COLUMNS, ledger_rows(plan.ledger, facts, identifier_ids, real, now))
    _write_reviews(conn, plan, facts, identifier_ids, final, now)
    customer_ids: list[int | None] = []
    owned = []
    for fact, placed, anchor in zip(facts, plan.customers, plan.anchors, strict=True):
        if placed is None or anchor is None:
            customer_ids.append(None)
            continue
        resolved = final(placed)
        customer_ids.append(resolved)
        owned.append((fact.event_pk, resolved, identifier_ids[anchor]))
    bulk.insert(conn, _events, ("event_pk", "customer_id", "identifier_id"), owned)
    return Applied(customer_ids, identifier_ids, real, merged_into)


def _update_stored(conn: Connection, plan: Plan, stored: dict[int, int], ranges: dict, final: Any) -> None:
    """Version-checked update of every stored customer the batch decided on (takes their row locks)."""
    if not stored:
        return
    merged = {m for _, m in plan.merges if m > 0}
    rows = []
    for cid, version in sorted(stored.items()):
        first, last = ranges.get(plan.root(cid), (None, None)) if cid not in merged else (None, None)
        bump = 1 if cid in plan.changed else 0
        rows.append((cid, version, final(cid) if cid in merged else None, first, last, bump))
    # receipts_count only lends its integer type to the version increment in the JSON rows.
    columns = ("id", "version", "merged_into", "first_seen_at", "last_seen_at", "receipts_count")
    if conn.dialect.name == "postgresql":
        source, document = bulk.pg_source(_customers, columns, rows, conn.dialect)
        result = conn.exec_driver_sql(
            f"WITH v AS MATERIALIZED ({source})"  # noqa: S608 - no user text in the SQL
            " UPDATE customers AS c SET version = c.version + v.receipts_count, merged_into = v.merged_into,"
            " first_seen_at = LEAST(c.first_seen_at, coalesce(v.first_seen_at, c.first_seen_at)),"
            " last_seen_at = GREATEST(c.last_seen_at, coalesce(v.last_seen_at, c.last_seen_at))"
            " FROM v WHERE c.id = v.id AND c.version = v.version AND c.merged_into IS NULL",
            (document,),
        )
    else:
        # Customers that stay themselves (nearly all) are updated without naming merged_into, which
        # spares SQLite that column's index entry and its foreign-key check on every row.
        staying = [
            (bump, _stored_time(first), _stored_time(last), cid, version)
            for cid, version, into, first, last, bump in rows
            if not into
        ]
        merging = [(bump, into, cid, version) for cid, version, into, _, _, bump in rows if into]
        changed = 0
        if staying:
            changed += conn.exec_driver_sql(
                "UPDATE customers SET version = version + ?,"
                " first_seen_at = min(first_seen_at, coalesce(?, first_seen_at)),"
                " last_seen_at = max(last_seen_at, coalesce(?, last_seen_at))"
                " WHERE id = ? AND version = ? AND merged_into IS NULL",
                staying,
            ).rowcount
        if merging:
            # A merged customer's seen range went to its survivor (its own first/last are None).
            changed += conn.exec_driver_sql(
                "UPDATE customers SET version = version + ?, merged_into = ?"
                " WHERE id = ? AND version = ? AND merged_into IS NULL",
                merging,
            ).rowcount
        if changed != len(rows):
            raise ConcurrentChange("a customer changed while this batch was being resolved")
        return
    if result.rowcount != len(rows):
        raise ConcurrentChange("a customer changed while this batch was being resolved")


def _stored_time(value: datetime | None) -> str | None:
    # bulk's conversion remembers recent instants: the events' insert has just converted these.
    return None if value is None else bulk.sqlite_time(value)


def fold_merged(conn: Connection, merged_away: list[tuple[int, int]], now: datetime) -> None:
    """Point everything of each merged customer at its survivor and add its statistics there."""
    moves.fold(conn, merged_away, now)
    bulk.remap(conn, _customers, "merged_into", merged_away, match="id")
    bulk.remap(conn, _customers, "merged_into", merged_away)  # customers merged into them earlier
    bulk.remap(conn, _identifiers, "customer_id", merged_away)
    bulk.remap(conn, _events, "customer_id", merged_away)
    bulk.remap(conn, table(Receipt), "customer_id", merged_away)
    bulk.remap(conn, table(AttributeObservation), "customer_id", merged_away)
    gone = [m for m, _ in merged_away]
    conn.execute(table(GoldenAttribute).delete().where(table(GoldenAttribute).c.customer_id.in_(gone)))
    conn.execute(table(MatchKey).delete().where(table(MatchKey).c.customer_id.in_(gone)))
    into = dict(merged_away)
    stats: dict[int, list[Any]] = {}
    rows = conn.execute(
        select(
            _customers.c.id,
            _customers.c.receipts_count,
            _customers.c.total_spent,
            _customers.c.first_seen_at,
            _customers.c.last_seen_at,
        ).where(_customers.c.id.in_(gone))
    )
    for cid, count, total, first, last in rows:
        target = into[cid]
        if target in stats:
            entry = stats[target]
            entry[0] += count
            entry[1] += total
            entry[2] = min(entry[2], first)
            entry[3] = max(entry[3], last)
        else:
            stats[target] = [count, total, first, last]
    purchases.add_to_customers(conn, [(cid, *values) for cid, values in stats.items()])


def _write_identifiers(
    conn: Connection, plan: Plan, known: dict[Pair, Known], final: Any, now: datetime
) -> dict[Pair, int]:
    ids = {pair: row.id for pair, row in known.items()}

    def counters(pair: Pair) -> tuple[int, int, str]:
        if pair in plan.counters:
            return plan.counters[pair]
        row = known.get(pair)
        return (row.partners_total, row.partners_today, row.partners_day) if row else (0, 0, "")

    new_rows = []
    for pair, first in plan.new_pairs.items():
        owner = plan.owner.get(pair)
        state = plan.unlinked.get(pair, LINKED)
        seen = max(first, plan.seen.get(pair, first))
        new_rows.append((pair[0], pair[1], None if owner is None else final(owner), state, now, seen, *counters(pair)))
    if new_rows:
        inserted = bulk.insert(
            conn,
            _identifiers,
            ("kind", "value", "customer_id", "state", "created_at", "last_seen_at", *_IDENT_COLUMNS[3:]),
            new_rows,
            returning=("id",),
        )
        # Ids come back sorted, which is the order of the rows (see bulk.insert).
        ids.update(zip(plan.new_pairs, (row[0] for row in inserted), strict=True))
    moved = []
    sightings = []
    for pair, row in known.items():
        owner = plan.owner.get(pair)
        # Merged customers' identifiers were re-pointed above; compare with where they now are.
        before = None if row.customer_id is None else final(row.customer_id)
        customer = final(owner) if owner is not None else (None if pair in plan.unlinked else before)
        seen = plan.seen.get(pair, row.last_seen_at)
        state = plan.unlinked.get(pair, row.state)
        if customer != before or state != row.state:
            moved.append((row.id, customer, state, max(seen, row.last_seen_at), *counters(pair)))
        elif pair in plan.counters or seen - row.last_seen_at > SEEN_RESOLUTION:
            sightings.append((row.id, max(seen, row.last_seen_at), *counters(pair)))
    bulk.update_rows(conn, _identifiers, "id", _IDENT_COLUMNS, moved)
    # Most stored identifiers a batch touches only get a sighting: leaving customer_id and state out
    # of the SET spares SQLite their index entries and the foreign-key check on every row.
    bulk.update_rows(conn, _identifiers, "id", _IDENT_COLUMNS[2:], sightings)
    return ids


def _write_reviews(
    conn: Connection, plan: Plan, facts: Sequence[IdentityFact], ident: dict[Pair, int], final: Any, now: datetime
) -> None:
    rows = []
    keys: set[str] = set()
    for op in plan.reviews:
        fact = facts[op.fact]
        customer = final(op.customer) if op.customer is not None else None
        other = final(op.other) if op.other is not None else None
        pid = ident.get(op.pair) if op.pair else None
        if op.reason == "suspicious_value":
            key = f"suspicious_value:{pid}"
        elif op.other is not None:
            low, high = sorted((customer or 0, other or 0))
            key = f"{op.reason}:{low}:{high}"
        else:
            digest = value_digest(*op.pair) if op.pair else ""
            key = f"{op.reason}:{customer}:{digest}"
        if key in keys:
            continue
        keys.add(key)
        evidence = {"event_id": fact.event_id, "kind": fact.kind}
        if op.pair:
            evidence.update({"type": op.pair[0], "value": op.pair[1]})
        rows.append(
            (
                key,
                op.reason,
                "open",
                now,
                customer,
                other,
                pid,
                fact.event_pk,
                fact.source,
                fact.store_id,
                None,
                evidence,
            )
        )
    bulk.insert(conn, _reviews, REVIEW_COLUMNS, rows, skip_conflicts_on=("key",))


def customers_of_events(conn: Connection, event_pks: Sequence[int]) -> list[int | None]:
    """The customer each event now belongs to, in order (None: none)."""
    rows = bulk.select_matching(conn, _events, ("event_pk",), [(pk,) for pk in event_pks], ("event_pk", "customer_id"))
    owner = {int(pk): int(cid) for pk, cid in rows}
    return [owner.get(pk) for pk in event_pks]
