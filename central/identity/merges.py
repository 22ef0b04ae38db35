"""Merging two live customers on a decision rather than shared identifiers: a reviewer, a weak match."""

from __future__ import annotations

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


def _held(db: Session, customer_id: int) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    rows = db.execute(
        select(_identifiers.c.kind, _identifiers.c.value).where(
            _identifiers.c.customer_id == customer_id, _identifiers.c.state.in_((LINKED, TRUSTED))
        )
    )
    for kind, value in rows:
        out.setdefault(kind, set()).add(value)
    return out


def clash(db: Session, registry: Registry, a: int, b: int) -> str | None:
    """Why customers ``a`` and ``b`` cannot be one customer, or None."""
    held_a, held_b = _held(db, a), _held(db, b)
    for kind in held_a.keys() & held_b.keys():
        spec = registry.types.get(kind)
        if spec is None:
            continue
        values = held_a[kind] | held_b[kind]
        if spec.unique and len(values) > 1:
            return f"unique_conflict:{kind}"
        if spec.limit is not None and spec.window_days is None and len(values) > spec.limit:
            return f"limit_exceeded:{kind}"
    return None


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

    Raise MergeRefused if either is not live or, unless ``force``, the registry forbids it.
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
    if not force:
        problem = clash(db, registry, a, b)
        if problem:
            raise MergeRefused(f"customers {a} and {b} cannot be merged: {problem}")
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
