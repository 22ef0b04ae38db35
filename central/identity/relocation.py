"""What follows the splits of one transaction: their events, receipts, observations, counts and marks.

A split decides which customer each identifier now belongs to (``central.identity.split``); the
events that came through an identifier follow it. Those writes are collected over every split of
a batch and done once, in a fixed number of set-based statements, from the identifiers' final
owners: a batch of receipts can flag ten suspicious values, and moving each one's events on its
own cost a dozen statements per value. Only the events that change owner are read and written,
so a split costs what it moves, not the history the kept customer still holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, delete
from sqlalchemy.orm import Session

from central import bulk
from central.customers import purchases
from central.customers.models import Receipt
from central.identity import changes, golden
from central.identity.models import AttributeObservation, EventCustomer
from central.identity.registry import Registry
from central.models import table

_events = table(EventCustomer)


@dataclass
class Pending:
    """What the splits of one transaction leave for their events to follow, written together at the end.

    A split's own decisions (ledger, customers, identifiers) are written at once: the next split
    reads them. What follows from them (which customer each event, receipt and observation
    belongs to, the counts, the marks, the golden records) is written once for all the splits of
    a batch, in a fixed number of set-based statements, from the identifiers' final owners.
    """

    targets: dict[int, int] = field(default_factory=dict)  # moved identifier -> its final customer
    through: set[int] = field(default_factory=set)  # identifiers left out: their events lose their owner
    kept: set[int] = field(default_factory=set)  # the split customers, whose counts lose what leaves
    others: set[int] = field(default_factory=set)  # the other customers of the splits: recounted
    live: set[int] = field(default_factory=set)
    marked: list[int] = field(default_factory=list)  # the customers left marked for a statistics recompute

    def add(
        self,
        customer_id: int,
        moved: list[tuple[int, int]],
        through: set[int],
        others: set[int],
        live: set[int],
    ) -> None:
        self.targets.update(moved)
        self.through |= through
        self.kept.add(customer_id)
        self.others |= others
        self.live |= live

    def write(self, db: Session, registry: Registry, now: datetime) -> None:
        """Move the events of every identifier that moved or was left out, then their receipts and counts."""
        if not self.kept:
            return
        conn = db.connection()
        rows = _leaving_events(conn, sorted(self.targets), self.through)
        leaving = sorted(event_pk for event_pk, _, _ in rows)
        # A kept customer that another split of the batch created or revived holds only moved
        # events: it is recounted with the others instead.
        _subtract_receipts(conn, sorted(self.kept - self.others), leaving)
        bulk.update_rows(conn, _events, "identifier_id", ("customer_id",), sorted(self.targets.items()))
        if self.through:
            conn.execute(delete(_events).where(_events.c.identifier_id.in_(sorted(self.through))))
        _follow_events(conn, leaving, sorted(self.others))
        # Only customers whose events changed have statistics to recompute: the events' owners
        # before and after. A customer that stays merged, or is revived or created without events,
        # has no sales and no statistics rows (a merge folded them into its survivor).
        before = {owner for _, owner, _ in rows}
        after = {self.targets[ident] for _, _, ident in rows if ident in self.targets and ident not in self.through}
        self.marked = sorted(before | after)
        changes.mark_recompute(conn, self.marked, now, "split")
        golden.refresh(db, registry, self.live, now)


def _leaving_events(conn: Connection, moved: list[int], through: set[int]) -> list[tuple[int, int, int]]:
    """``(event, owner, identifier)`` of the events that change owner: those of a moved or left-out identifier."""
    idents = sorted({*moved, *through})
    if not idents:
        return []
    columns = ("event_pk", "customer_id", "identifier_id")
    rows = bulk.select_matching(conn, _events, ("identifier_id",), [(i,) for i in idents], columns)
    return [(int(pk), int(owner), int(ident)) for pk, owner, ident in rows]


def _subtract_receipts(conn: Connection, customer_ids: list[int], leaving: list[int]) -> None:
    """Take the receipts of the events leaving ``customer_ids`` out of their counts (before they move)."""
    if not customer_ids:
        return
    receipts = table(Receipt).name
    customers = bulk.integer_list(customer_ids)
    for listed in bulk.integer_lists(leaving):
        # The leaving receipts are read once, grouped by customer (a subquery per customer read them
        # all again for each); the unary plus keeps SQLite on the event_pk index.
        conn.exec_driver_sql(
            "UPDATE customers SET receipts_count = customers.receipts_count - g.n,"  # noqa: S608 - integers only
            " total_spent = customers.total_spent - g.spent"
            f" FROM (SELECT r.customer_id AS id, count(*) AS n, coalesce(sum(r.total), 0) AS spent FROM {receipts} r"
            f" WHERE r.event_pk IN ({listed}) AND +r.customer_id IN ({customers}) GROUP BY r.customer_id) AS g"
            " WHERE customers.id = g.id"
        )


def _follow_events(conn: Connection, leaving: list[int], others: list[int]) -> None:
    """Receipts and attribute observations of the events that changed owner follow them.

    Only those events are read and written, so a split costs what it moves, not the history the
    kept customer still holds. Every customer of the split but the kept one holds only moved
    events now: their counts are recounted from their receipts (the kept one's were subtracted).
    """
    receipts = table(Receipt)
    observations = table(AttributeObservation)
    for listed in bulk.integer_lists(leaving):
        conn.exec_driver_sql(
            f"UPDATE {receipts.name} SET customer_id = (SELECT ec.customer_id FROM {_events.name} ec"  # noqa: S608
            f" WHERE ec.event_pk = {receipts.name}.event_pk) WHERE event_pk IN ({listed})"
            # A source's receipts have no customer (they count through their events only, decision 0089).
            " AND substr(device_id, 1, 7) <> 'source:'"
        )
        conn.exec_driver_sql(
            f"DELETE FROM {observations.name} WHERE event_pk IN ({listed})"  # noqa: S608 - integers only
            f" AND NOT EXISTS (SELECT 1 FROM {_events.name} ec WHERE ec.event_pk = {observations.name}.event_pk)"
        )
        conn.exec_driver_sql(
            f"UPDATE {observations.name} SET customer_id = (SELECT ec.customer_id FROM {_events.name} ec"  # noqa: S608
            f" WHERE ec.event_pk = {observations.name}.event_pk) WHERE event_pk IN ({listed})"
        )
    purchases.recount(conn, others)
