"""Undo: split a customer by replaying its ledger without a bad link, and remove identifiers for good.

A split reads every ledger row of the customer and of the customers merged into it, replays them
in order (links follow the identifier they came through, merges join the identifiers that met),
leaving out the bad row, or every row that came through a suspicious value. The replay falls
apart into groups of identifiers; the group holding the customer's own founding identifier keeps
its id, the others revive a customer merged in earlier or get a new one. Events, receipts and
attributes follow the identifier that resolved them (``central.identity.relocation``, once for
every split of a transaction), counts are adjusted and the customers whose events changed owner
are marked for a statistics recompute. The ledger records the split and every resulting move, so
a rebuild from the ledger still equals the tables. Removing an identifier writes a tombstone (state ``removed``):
no later or late-arriving event attaches it again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, or_, select, update
from sqlalchemy.orm import Session

from central import bulk
from central.customers import moves
from central.identity import changes, relocation
from central.identity.models import (
    LINK,
    LINKED,
    MERGE,
    REMOVED,
    TRUSTED,
    UNLINK,
    UNMERGE,
    Customer,
    EventCustomer,
    Identifier,
    LedgerEntry,
)
from central.identity.registry import Registry, default_registry
from central.models import table

SPLIT = "split"  # the ledger action marking a split; its detail says what was left out
Label = tuple[Any, ...]
_customers = table(Customer)
_identifiers = table(Identifier)
_ledger = table(LedgerEntry)
_events = table(EventCustomer)


class SplitError(ValueError):
    """A split or removal that cannot be done as asked (unknown customer, row not in its history)."""


@dataclass(frozen=True, slots=True)
class SplitResult:
    """The live customers the split customer's identifiers now belong to (the original first)."""

    customers: list[int]


class _Components:
    def __init__(self) -> None:
        self.parent: dict[Label, Label] = {}

    def find(self, label: Label) -> Label:
        root = label
        while (up := self.parent.get(root, root)) != root:
            root = up
        while label != root:
            self.parent[label], label = root, self.parent.get(label, label)
        return root

    def union(self, a: Label, b: Label) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb, key=repr)] = min(ra, rb, key=repr)


def _tree(conn: Connection, customer_id: int) -> list[int]:
    rows = conn.execute(select(_customers.c.id).where(_customers.c.merged_into == customer_id))
    return [customer_id, *sorted(r[0] for r in rows)]


def _history(conn: Connection, tree: list[int]) -> list[Any]:
    return list(
        conn.execute(
            select(_ledger)
            .where(or_(_ledger.c.customer_id.in_(tree), _ledger.c.other_customer_id.in_(tree)))
            .order_by(_ledger.c.id)
        )
    )


def replay(rows: list[Any], skip: set[int], through: set[int]) -> tuple[dict[int, Label | None], _Components]:
    """Owner label of every identifier after replaying ``rows`` without ``skip`` and what came ``through``."""
    for row in rows:
        if row.action == SPLIT and row.detail:
            skip.update(row.detail.get("undoes", []))
            through.update(row.detail.get("through", []))
    owner: dict[int, Label | None] = {}
    parts = _Components()
    for row in rows:
        if row.rule == SPLIT or row.action in (SPLIT, UNMERGE):
            continue  # results of earlier splits: the replay recomputes them
        left_out = row.id in skip or row.anchor_identifier_id in through or row.identifier_id in through
        if row.action == LINK:
            ident = row.identifier_id
            if left_out:
                owner[ident] = (
                    None if ident in through else ("apart", row.event_pk or 0, row.anchor_identifier_id, row.id)
                )
            elif row.anchor_identifier_id is None:
                owner[ident] = ("customer", row.customer_id)
            else:
                anchor = owner.get(row.anchor_identifier_id)
                owner[ident] = anchor if anchor is not None else ("gone", row.event_pk or 0, row.anchor_identifier_id)
            if owner[ident] is not None:
                parts.find(owner[ident])  # type: ignore[arg-type]
        elif row.action == UNLINK:
            owner[row.identifier_id] = None
        elif row.action == MERGE and not left_out:
            if row.identifier_id is not None and row.anchor_identifier_id is not None:
                a, b = owner.get(row.anchor_identifier_id), owner.get(row.identifier_id)
                if a is not None and b is not None:
                    parts.union(a, b)
            else:
                parts.union(("customer", row.customer_id), ("customer", row.other_customer_id))
    return owner, parts


def _resplit(
    db: Session,
    customer_id: int,
    *,
    skip: set[int],
    through: set[int],
    now: datetime,
    operator: str | None,
    detail: dict[str, Any],
    pending: relocation.Pending,
) -> SplitResult:
    conn = db.connection()
    tree = _tree(conn, customer_id)
    rows = _history(conn, tree)
    owner, parts = replay(rows, set(skip), set(through))
    current = [
        r[0]
        for r in conn.execute(
            select(_identifiers.c.id).where(_identifiers.c.customer_id == customer_id).order_by(_identifiers.c.id)
        )
    ]
    groups: dict[Label, list[int]] = {}
    for ident in current:
        label = owner.get(ident) or ("customer", customer_id)
        groups.setdefault(parts.find(label), []).append(ident)
    main = parts.find(("customer", customer_id))
    if main not in groups:
        main = min(groups, key=lambda g: groups[g][0]) if groups else main
    assign: dict[Label, int] = {main: customer_id}
    candidates: dict[Label, list[int]] = {}
    for cid in tree[1:]:
        candidates.setdefault(parts.find(("customer", cid)), []).append(cid)
    fresh: list[Label] = []
    for group in sorted(groups, key=lambda g: groups[g][0]):
        if group in assign:
            continue
        taken = set(assign.values())
        choice = [c for c in candidates.get(group, []) if c not in taken]
        if choice:
            assign[group] = choice[0]
        else:
            fresh.append(group)
    if fresh:
        ids = bulk.insert(
            conn,
            _customers,
            ("created_at", "first_seen_at", "last_seen_at", "receipts_count", "total_spent", "version"),
            [(now, now, now, 0, 0, 0) for _ in fresh],
            returning=("id",),
        )
        assign.update({group: row[0] for group, row in zip(fresh, ids, strict=True)})
    live = set(assign.values())
    root_of = {cid: assign.get(parts.find(("customer", cid)), customer_id) for cid in tree}
    for cid in live:
        root_of[cid] = cid
    moves = {ident: assign[group] for group, idents in groups.items() for ident in idents}

    ledger: list[tuple[Any, ...]] = []

    def entry(action: str, ident: int | None, customer: int | None, other: int | None, extra: Any = None) -> None:
        ledger.append((now, action, SPLIT, ident, None, customer, other, None, None, None, operator, extra))

    entry(SPLIT, None, customer_id, None, detail)
    for cid in tree[1:]:
        if root_of[cid] == cid:
            entry(UNMERGE, None, None, cid, {"from": customer_id})
        else:
            entry(MERGE, None, root_of[cid], cid)
    last_link: dict[int, int] = {}
    for row in rows:
        if row.action == LINK:
            last_link[row.identifier_id] = row.customer_id
        elif row.action == UNLINK:
            last_link.pop(row.identifier_id, None)
    for ident, target in moves.items():
        if target != customer_id or root_of.get(last_link.get(ident, customer_id), target) != target:
            entry(LINK, ident, target, None)
    bulk.insert(conn, _ledger, changes.LEDGER_COLUMNS, ledger)
    _write_customers(conn, customer_id, tree, root_of, live)
    moved = [(ident, target) for ident, target in moves.items() if target != customer_id]
    bulk.update_rows(conn, _identifiers, "id", ("customer_id",), moved)
    pending.add(customer_id, moved, through, (set(tree) | live) - {customer_id}, live)
    ordered = [customer_id, *sorted(live - {customer_id})]
    return SplitResult(ordered)


def _write_customers(
    conn: Connection, customer_id: int, tree: list[int], root_of: dict[int, int], live: set[int]
) -> None:
    """Point the tree's customers at their new roots and bump the live ones' versions, in one statement.

    Only the rows that change are written: a customer merged into a large one (a card that met a
    hundred phones) has many merged customers that stay merged, and rewriting each of them on
    every detach made its cost grow with the tree, not with what the detach changed.
    """
    rows: list[tuple[int | None, int, int]] = []
    for cid in sorted(set(tree) | live):
        before = customer_id if cid in tree and cid != customer_id else None  # what _tree read
        after = None if root_of[cid] == cid else root_of[cid]
        bump = 1 if cid in live else 0
        if after != before or bump:
            rows.append((after, bump, cid))
    if rows:
        mark = "%s" if conn.dialect.name == "postgresql" else "?"
        sql = f"UPDATE {_customers.name} SET merged_into = {mark}, version = version + {mark} WHERE id = {mark}"  # noqa: S608
        conn.exec_driver_sql(sql, rows)


def split(
    db: Session,
    customer_id: int,
    ledger_id: int,
    *,
    now: datetime,
    operator: str,
    registry: Registry | None = None,
    offset_minutes: int | None = None,
) -> SplitResult:
    """Undo ledger row ``ledger_id`` (a merge, or a link through another identifier) of a live customer.

    The statistics of every customer whose events changed owner are recomputed in the same
    transaction (``offset_minutes``: ``customers.utc_offset_minutes``, the app's when None).
    """
    conn = db.connection()
    row = conn.execute(select(_customers.c.merged_into).where(_customers.c.id == customer_id)).first()
    if row is None:
        raise SplitError(f"no customer {customer_id}")
    if row[0] is not None:
        raise SplitError(f"customer {customer_id} was merged into customer {row[0]}; split that one")
    history = {r.id: r for r in _history(conn, _tree(conn, customer_id))}
    bad = history.get(ledger_id)
    if bad is None:
        raise SplitError(f"ledger row {ledger_id} is not in the history of customer {customer_id}")
    if not (bad.action == MERGE or (bad.action == LINK and bad.anchor_identifier_id is not None)) or bad.rule == SPLIT:
        what = f"{bad.action} ({bad.rule})"
        if bad.action == LINK and bad.rule != SPLIT:
            what += ", which gave the customer its first identifier and joined no one"
        raise SplitError(
            f"ledger row {ledger_id} is a {what}; only a merge, or a link that came through another identifier,"
            " can be undone"
        )
    involved = [c for c in (bad.customer_id, bad.other_customer_id) if c is not None]
    splits = conn.execute(
        select(_ledger.c.id, _ledger.c.detail).where(
            _ledger.c.action == SPLIT,
            or_(_ledger.c.customer_id.in_(involved), _ledger.c.other_customer_id.in_(involved)),
        )
    )
    undone = next((sid for sid, detail in splits if ledger_id in (detail or {}).get("undoes", [])), None)
    if undone is not None:
        raise SplitError(f"ledger row {ledger_id} was already undone by ledger row {undone}")
    pending = relocation.Pending()
    result = _resplit(
        db,
        customer_id,
        skip={ledger_id},
        through=set(),
        now=now,
        operator=operator,
        detail={"undoes": [ledger_id]},
        pending=pending,
    )
    pending.write(db, registry or default_registry(), now)
    moves.settle(conn, pending.marked, offset_minutes)
    return result


def detach_value(
    db: Session, identifier_id: int, *, now: datetime, operator: str | None, registry: Registry | None = None
) -> SplitResult | None:
    """Undo every link that came through ``identifier_id`` (already unlinked), e.g. a suspicious value."""
    return detach_values(db, [identifier_id], now=now, operator=operator, registry=registry)[0]


def detach_values(
    db: Session, identifier_ids: Sequence[int], *, now: datetime, operator: str | None, registry: Registry | None = None
) -> list[SplitResult | None]:
    """:func:`detach_value` for each of ``identifier_ids`` in turn, their events moved together at the end.

    Each detach replays the ledger as the detaches before it left it; the events, receipts,
    observations, counts, marks and golden records of all of them are then written once, in a
    fixed number of statements, instead of once per value (a batch of receipts can flag ten).
    """
    conn = db.connection()
    pending = relocation.Pending()
    results: list[SplitResult | None] = []
    for identifier_id in identifier_ids:
        # The customer of the value's last unlink, and its survivor if it was merged since: one statement.
        last = (
            select(_ledger.c.customer_id)
            .where(_ledger.c.identifier_id == identifier_id, _ledger.c.action == UNLINK)
            .order_by(_ledger.c.id.desc())
            .limit(1)
            .scalar_subquery()
        )
        holder = conn.execute(select(_customers.c.id, _customers.c.merged_into).where(_customers.c.id == last)).first()
        if holder is None:
            results.append(None)
            continue
        customer_id = holder[1] if holder[1] is not None else holder[0]
        detail = {"through": [identifier_id]}
        results.append(
            _resplit(
                db,
                customer_id,
                skip=set(),
                through={identifier_id},
                now=now,
                operator=operator,
                detail=detail,
                pending=pending,
            )
        )
    pending.write(db, registry or default_registry(), now)
    return results


def remove_identifier(
    db: Session,
    kind: str,
    value: str,
    *,
    now: datetime,
    operator: str,
    reason: str = "removed",
    offset_minutes: int | None = None,
) -> int | None:
    """Tombstone a stored identifier; return the customer it was taken from (None if it had none).

    That customer's statistics are recomputed in the same transaction, as after a split.
    """
    conn = db.connection()
    row = conn.execute(
        select(_identifiers.c.id, _identifiers.c.customer_id, _identifiers.c.state).where(
            _identifiers.c.kind == kind, _identifiers.c.value == value
        )
    ).first()
    if row is None:
        bulk.insert(
            conn,
            _identifiers,
            ("kind", "value", "customer_id", "state", "created_at", "last_seen_at"),
            [(kind, value, None, REMOVED, now, now)],
        )
        return None
    ident, customer, state = row
    conn.execute(update(_identifiers).where(_identifiers.c.id == ident).values(state=REMOVED, customer_id=None))
    if customer is not None and state in (LINKED, TRUSTED):
        conn.execute(update(_customers).where(_customers.c.id == customer).values(version=_customers.c.version + 1))
        entry = (now, UNLINK, reason, ident, None, customer, None, None, None, None, operator, None)
        bulk.insert(conn, _ledger, changes.LEDGER_COLUMNS, [entry])
        changes.mark_recompute(conn, [customer], now, "identifier_removed")
        moves.settle(conn, [customer], offset_minutes)
    return customer
