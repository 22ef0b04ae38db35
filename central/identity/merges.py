"""Merging two live customers on a decision rather than shared identifiers: a reviewer, a weak match."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from central import bulk
from central.identity import changes
from central.identity.models import LINKED, MERGE, TRUSTED, Customer, Identifier, LedgerEntry
from central.identity.registry import Registry
from central.models import table

_customers = table(Customer)
_identifiers = table(Identifier)


class MergeRefused(ValueError):
    """The two customers cannot become one (a unique type or a limit says no, or one is gone)."""

    def __init__(self, message: str, clash: str | None = None) -> None:
        super().__init__(message)
        self.clash = clash  # ``unique_conflict:<type>`` or ``limit_exceeded:<type>`` when a type said no


def _held(db: Session, customer_ids: Iterable[int]) -> dict[int, dict[str, set[str]]]:
    """The linked and trusted values each of ``customer_ids`` holds, by customer and type."""
    out: dict[int, dict[str, set[str]]] = {cid: {} for cid in customer_ids}
    if not out:
        return out
    rows = db.execute(
        select(_identifiers.c.customer_id, _identifiers.c.kind, _identifiers.c.value).where(
            _identifiers.c.customer_id.in_(out), _identifiers.c.state.in_((LINKED, TRUSTED))
        )
    )
    for cid, kind, value in rows:
        out[cid].setdefault(kind, set()).add(value)
    return out


def _clash_of(
    registry: Registry, held_a: dict[str, set[str]], held_b: dict[str, set[str]], *, limits: bool = True
) -> str | None:
    """A unique type's clash first (nothing overrides it), then a limit's (a reviewer may override it)."""
    shared = sorted(held_a.keys() & held_b.keys())
    specs = [(kind, registry.types[kind], held_a[kind] | held_b[kind]) for kind in shared if kind in registry.types]
    for kind, spec, values in specs:
        if spec.unique and len(values) > 1:
            return f"unique_conflict:{kind}"
    if not limits:
        return None
    for kind, spec, values in specs:
        if spec.limit is not None and spec.window_days is None and len(values) > spec.limit:
            return f"limit_exceeded:{kind}"
    return None


def clash(db: Session, registry: Registry, a: int, b: int, *, limits: bool = True) -> str | None:
    """Why customers ``a`` and ``b`` cannot be one customer (``limits``: counting the types' limits), or None."""
    return clashes(db, registry, [(a, b)], limits=limits).get((a, b))


def clashes(
    db: Session, registry: Registry, pairs: Iterable[tuple[int, int]], *, limits: bool = True
) -> dict[tuple[int, int], str]:
    """For each pair of live customers that cannot be one customer, why (``unique_conflict:<type>``, ...)."""
    pairs = [(a, b) for a, b in pairs if a != b]
    held = _held(db, {cid for pair in pairs for cid in pair})
    found = {(a, b): _clash_of(registry, held[a], held[b], limits=limits) for a, b in pairs}
    return {pair: why for pair, why in found.items() if why is not None}


def merge_customers(
    db: Session,
    registry: Registry,
    a: int,
    b: int,
    *,
    rule: str,
    now: datetime,
    operator: str | None,
    detail: dict[str, Any] | None = None,
    force: bool = False,
) -> int:
    """Merge live customers ``a`` and ``b`` into the older; return the survivor's id.

    Raise MergeRefused if either is not live or the registry forbids it: a unique type always, a
    type's limit unless ``force`` (a reviewer accepted the item the limit raised).
    """
    conn = db.connection()
    rows = dict(
        conn.execute(
            select(_customers.c.id, _customers.c.merged_into).where(_customers.c.id.in_((a, b))).with_for_update()
        ).all()
    )
    for cid in (a, b):
        if cid not in rows:
            raise MergeRefused(f"no customer {cid}")
        if rows[cid] is not None:
            raise MergeRefused(f"customer {cid} was merged into customer {rows[cid]}")
    if a == b:
        return a
    problem = clash(db, registry, a, b, limits=not force)
    if problem:
        raise MergeRefused(f"customers {a} and {b} cannot be merged: {problem}", problem)
    kept, merged = min(a, b), max(a, b)
    conn.execute(update(_customers).where(_customers.c.id == kept).values(version=_customers.c.version + 1))
    conn.execute(update(_customers).where(_customers.c.id == merged).values(version=_customers.c.version + 1))
    changes.fold_merged(conn, [(merged, kept)], now)
    bulk.insert(
        conn,
        table(LedgerEntry),
        changes.LEDGER_COLUMNS,
        [(now, MERGE, rule, None, None, kept, merged, None, None, None, operator, detail)],
    )
    from central.identity import golden

    golden.refresh(db, registry, [kept], now)
    return kept
