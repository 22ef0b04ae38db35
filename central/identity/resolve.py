"""Identity resolution for newly stored events: ``resolve(db, facts, now)`` in the caller's transaction.

Per batch, a fixed number of statements whatever its size: one look-up of every identifier the
batch names (with its customer's version), one of the constrained identifiers those customers
hold, then the in-memory plan (``central.identity.planner``) and set-based writes
(``central.identity.changes``). Values that became suspicious have their earlier links undone by a
ledger replay (``central.identity.split``), and profile attributes feed the golden record.

On PostgreSQL (read committed) a concurrent batch may change a customer between the look-up and
the writes; the writes check each customer's version and raise ``ConcurrentChange``, on which the
caller retries the whole batch.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from central import bulk
from central.collector import collector_paused
from central.identity import changes, golden, split, suggestions
from central.identity.models import LINKED, TRUSTED, Identifier, ReviewItem
from central.identity.planner import plan_batch
from central.identity.plans import Fact, Held, Known, Pair
from central.identity.registry import Registry, default_registry
from central.models import table
from central.privacy import late, tombstones

_identifiers = table(Identifier)
_reviews = table(ReviewItem)


@dataclass(frozen=True, slots=True)
class IdentityFact:
    """What identity resolution needs from one newly stored event."""

    event_pk: int
    source: str
    event_id: str
    kind: str
    store_id: str
    observed_at: datetime
    identifiers: tuple[tuple[str, str], ...]
    app_id: str | None
    attributes: Mapping[str, str] = field(default_factory=dict)
    operator: str | None = None


@dataclass(frozen=True, slots=True)
class Resolution:
    """Which customer each fact belongs to (None: nothing linkable), and what changed."""

    customer_ids: list[int | None]
    created: int
    merged: int
    reviewed: int
    unusable: dict[str, int] = field(default_factory=dict)  # reason -> identifiers not used
    common_blocks: dict[str, int] = field(default_factory=dict)  # match blocks too common to pair: size


def prepare(registry: Registry, fact: IdentityFact, unusable: dict[str, int] | None = None) -> Fact:
    """The planner's view of a fact: usable identifiers, normalized, strongest first."""
    strong, weak, reasons = registry.usable(fact.identifiers, fact.app_id)
    if unusable is not None:
        for reason in reasons:
            unusable[reason] = unusable.get(reason, 0) + 1
    return Fact(fact.observed_at, strong, weak)


_LOOKUP_COLUMNS = (
    "t.id, t.kind, t.value, t.customer_id, t.state, t.last_seen_at, t.partners_total, t.partners_today,"
    " t.partners_day, c.version"
)


def lookup(conn: Connection, pairs: Iterable[Pair]) -> dict[Pair, Known]:
    """Every stored identifier among ``pairs``, with its customer's version, in one statement."""
    keys = sorted(set(pairs))
    if not keys:
        return {}
    tail = (
        " JOIN identifiers AS t ON t.kind = q.kind AND t.value = q.value"
        " LEFT JOIN customers AS c ON c.id = t.customer_id"
    )
    rows: list[tuple[Any, ...]] = []
    if conn.dialect.name == "postgresql":
        sql = f"SELECT {_LOOKUP_COLUMNS} FROM json_to_recordset(CAST(%s AS json)) AS q(kind text, value text){tail}"  # noqa: S608
        document = bulk.json_param([{"kind": k, "value": v} for k, v in keys])
        rows = [tuple(r) for r in conn.exec_driver_sql(sql, (document,)).fetchall()]
    else:
        per = 16_000
        for start in range(0, len(keys), per):
            chunk = keys[start : start + per]
            values = ", ".join(["(?, ?)"] * len(chunk))
            inner = f"SELECT column1 AS kind, column2 AS value FROM (VALUES {values})"  # noqa: S608
            sql = f"SELECT {_LOOKUP_COLUMNS} FROM ({inner}) AS q{tail}"  # noqa: S608 - placeholders only
            rows.extend(bulk.sqlite_fetch(conn, sql, tuple(itertools.chain.from_iterable(chunk))))
    # Both drivers hand integer and text columns back as int and str: only the time needs converting.
    return {
        (kind, value): Known(pk, customer, state, bulk.stored_instant(seen), total, today, day, version)
        for pk, kind, value, customer, state, seen, total, today, day, version in rows
    }


def holdings(conn: Connection, registry: Registry, customer_ids: Iterable[int]) -> dict[int, Held]:
    """The unique and limited identifiers each customer holds, with when each was last seen.

    Only the constrained types' linked identifiers are read: the database filters them (a customer's
    device hashes, openids and detached values never reach Python).
    """
    ids = sorted(set(customer_ids))
    kinds = sorted(k for k, t in registry.types.items() if t.unique or t.limit is not None)
    if not ids or not kinds:
        return {}
    mark = "%s" if conn.dialect.name == "postgresql" else "?"
    wanted = (*kinds, LINKED, TRUSTED)
    only = f" AND t.kind IN ({', '.join([mark] * len(kinds))}) AND t.state IN ({mark}, {mark})"
    rows = bulk.select_matching(
        conn,
        _identifiers,
        ("customer_id",),
        [(i,) for i in ids],
        ("customer_id", "kind", "value", "last_seen_at"),
        where=(only, wanted),
    )
    held: dict[int, Held] = {}
    for customer, kind, value, seen in rows:
        held.setdefault(int(customer), {}).setdefault(str(kind), {})[str(value)] = bulk.stored_instant(seen)
    return held


def reviewed_pairs(conn: Connection, customer_ids: Iterable[int]) -> set[tuple[int, int]]:
    """Pairs of these customers that already have a conflict in the review queue (any status)."""
    ids = sorted(set(customer_ids))
    if not ids:
        return set()
    pairs: set[tuple[int, int]] = set()
    for column in ("customer_id", "other_customer_id"):
        rows = bulk.select_matching(
            conn, _reviews, (column,), [(i,) for i in ids], ("customer_id", "other_customer_id")
        )
        pairs.update((min(a, b), max(a, b)) for a, b in rows if a is not None and b is not None)
    return pairs


def resolve(
    db: Session,
    facts: Sequence[IdentityFact],
    now: datetime,
    *,
    registry: Registry | None = None,
    allow_weak_merge: float | None = None,
) -> Resolution:
    """Link facts to customers in the caller's transaction (creates, merges, review items, ledger)."""
    if not facts:
        return Resolution([], 0, 0, 0)
    # A batch's facts, pairs, plan and rows are short-lived and acyclic: left to the collector, they set
    # off its passes, full ones over every long-lived object of the process among them.
    with collector_paused():
        return _resolve(db, facts, now, registry or default_registry(), allow_weak_merge)


def _resolve(
    db: Session, facts: Sequence[IdentityFact], now: datetime, registry: Registry, allow_weak_merge: float | None
) -> Resolution:
    unusable: dict[str, int] = {}
    conn = db.connection()
    # Evidence observed before an erasure names no one through the identifiers it removed (decision 0098).
    prepared, withheld = tombstones.withhold(conn, [prepare(registry, f, unusable) for f in facts])
    if withheld:
        late.scrub(conn, registry, facts, withheld)  # and the event keeps nothing of what they withheld
    known = lookup(conn, {p for f in prepared for p in (*f.strong, *f.weak)})
    plan = plan_batch(
        registry,
        prepared,
        known,
        lambda ids: holdings(conn, registry, ids),
        lambda ids: reviewed_pairs(conn, ids),
    )
    applied = changes.apply(conn, plan, facts, known, now)
    customer_ids = applied.customer_ids
    if plan.flagged:
        flagged = [applied.identifier_ids[pair] for pair in plan.flagged]
        split.detach_values(db, flagged, now=now, operator=None, registry=registry)
        customer_ids = changes.customers_of_events(conn, [f.event_pk for f in facts])
    observed = golden.observe(db, registry, facts, customer_ids, now)
    touched = {row[0] for row in observed} | applied.merged_into
    # Customers this batch created have no observations but its own (unless a split moved events).
    new = set() if plan.flagged else {applied.real[h] for h in plan.new_handles}
    merged = len(plan.merges)
    reviews = len(plan.reviews)
    common: dict[str, int] = {}
    if touched:
        golden.refresh(db, registry, touched, now, new=new, observed=observed)
        extra = suggestions.suggest(db, registry, touched, now, allow_weak_merge=allow_weak_merge)
        reviews += extra.suggested
        merged += extra.merged
        common = extra.common
        if extra.merged:
            customer_ids = changes.customers_of_events(conn, [f.event_pk for f in facts])
    return Resolution(customer_ids, len(plan.new_handles), merged, reviews, unusable, common)
