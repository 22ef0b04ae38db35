"""Identity resolution: link newly stored events to customers by the identifiers they carry.

Each fact's identifiers are normalized by the registry; facts sharing a normalized value (within
the call or with a customer already holding it) belong to one customer, the oldest surviving when
several are joined, each join appended to ``merge_ledger``. Weak types (``device_hash``) never join.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from central import bulk
from central.identity.linking import ConcurrentChange
from central.identity.models import Customer, Identifier, MergeLedger
from central.identity.registry import Registry, load_registry
from central.models import table

_customers = table(Customer)
_identifiers = table(Identifier)
_ledger = table(MergeLedger)
_MAX_KIND = 16
_MAX_LEDGER_EVENT_ID = 36


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
    attributes: Mapping[str, str]
    operator: str | None = None


@dataclass(frozen=True, slots=True)
class Resolution:
    """Which customer each fact belongs to (None: nothing linkable), and what changed."""

    customer_ids: list[int | None]
    created: int
    merged: int
    reviewed: int


def _pairs(registry: Registry, fact: IdentityFact) -> list[tuple[str, str]]:
    pairs = []
    for kind, raw in fact.identifiers:
        if len(kind) > _MAX_KIND or registry.is_weak(kind):
            continue
        value = registry.normalize(kind, raw, fact.app_id)
        if value is not None:
            pairs.append((kind, value))
    return pairs


def resolve(
    db: Session,
    facts: Sequence[IdentityFact],
    now: datetime,
    *,
    registry: Registry | None = None,
    allow_weak_merge: float | None = None,
) -> Resolution:
    """Link facts to customers in the caller's transaction (creates, merges, ledger)."""
    registry = registry or load_registry()
    per_fact = [_pairs(registry, f) for f in facts]
    conn = db.connection()
    wanted = sorted({p for pairs in per_fact for p in pairs})
    found_rows = bulk.select_matching(conn, _identifiers, ("kind", "value"), wanted, ("kind", "value", "customer_id"))
    owner: dict[tuple[str, str], int] = {(k, v): c for k, v, c in found_rows}
    existing = set(owner)
    parent: dict[int, int] = {}

    def find(handle: int) -> int:
        while parent.get(handle, handle) != handle:
            handle = parent[handle]
        return handle

    handles: list[int | None] = []
    merges: list[tuple[int, int, IdentityFact]] = []
    next_new = 0
    for fact, pairs in zip(facts, per_fact, strict=True):
        if not pairs:
            handles.append(None)
            continue
        found = {find(owner[p]) for p in pairs if p in owner}
        if not found:
            next_new -= 1
            found = {next_new}
        olds = [h for h in found if h > 0]
        kept = min(olds) if olds else max(found)
        for other in found - {kept}:
            parent[other] = kept
            if other > 0:
                merges.append((kept, other, fact))
        for pair in pairs:
            owner.setdefault(pair, kept)
        handles.append(kept)

    finals = [None if h is None else find(h) for h in handles]
    first_seen: dict[int, datetime] = {}
    for fact, handle in zip(facts, finals, strict=True):
        if handle is not None and handle < 0:
            first_seen[handle] = min(first_seen.get(handle, fact.observed_at), fact.observed_at)
    order = sorted(first_seen, reverse=True)
    rows = bulk.insert(
        conn,
        _customers,
        ("created_at", "first_seen_at", "last_seen_at", "receipts_count", "total_spent"),
        [(now, first_seen[h], first_seen[h], 0, 0) for h in order],
        returning=("id",),
    )
    new_ids = {h: r[0] for h, r in zip(order, rows, strict=True)}

    def real(handle: int) -> int:
        root = find(handle)
        return new_ids[root] if root < 0 else root

    if merges:
        moves = sorted({(merged, find(merged)) for _, merged, _ in merges})
        if bulk.remap(conn, _customers, "merged_into", moves, match="id", only_unset=True) != len(moves):
            raise ConcurrentChange("a customer to merge was merged by another transaction")
        bulk.remap(conn, _identifiers, "customer_id", moves)
        bulk.insert(
            conn,
            _ledger,
            ("at", "kept_customer_id", "merged_customer_id", "reason", "event_id"),
            [
                (
                    now,
                    kept,
                    merged,
                    f"shared identifier in {f.kind} {f.event_id} from {f.source}",
                    f.event_id if len(f.event_id) <= _MAX_LEDGER_EVENT_ID else None,
                )
                for kept, merged, f in merges
            ],
        )
    bulk.insert(
        conn,
        _identifiers,
        ("kind", "value", "customer_id", "created_at"),
        [(k, v, real(h), now) for (k, v), h in owner.items() if (k, v) not in existing],
    )
    return Resolution([None if h is None else real(h) for h in finals], len(new_ids), len(merges), 0)
