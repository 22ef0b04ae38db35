"""Reprinted receipts: a receipt the till printed again is kept as evidence and counted once.

A till prints a receipt again for a jammed printer or a customer who wants one for an invoice, with
a ``*** 重打印 ***`` line or with none. Both copies reach central as ``pos.receipt`` events. A
receipt is a copy of an earlier one when it names the same store, register and receipt number and
either prints the same date and time (within ``LOOKBACK``) or was printed within
``receipts.reprint_window`` of it (tills whose reprint shows the time of the reprint). The register
is the one printed on the receipt; a receipt that prints none is compared only with receipts of
the same agent, or, when one of the two was loaded from a source (``source:<name>``, which has no
agent), with one that prints the same date and time and total. The window keeps apart tills that
start their numbers again each day.

The same receipt may reach central twice from two senders: the agent uploads it, and HQ loads the
till's history again (``central-server load-events FILE --source pos-backfill``), or the other
way round. Receipts from sources are stored in ``receipts`` too (one naming a store takes its
event's customer and counts in ``receipts_count``, as an agent's: decision 0091 as amended), and
whichever arrived first is the sale; the later one is a copy flagged ``duplicate_source``.

A copy is stored with ``reprint_of`` naming the first one and a flag: ``reprint``,
``duplicate_source`` (from another sender), or ``reprint_total_differs`` when its total is not the
first one's (for review: it is not merged into the sale, and not counted either). A copy has no
customer and no identity facts, so no statistic, tag, trigger or member scan sees it. A receipt
the agent marked as a reprint (the ``reprint`` warning, from the printed marker) whose first copy
central never saw is counted, since it is the only record of the sale, and flagged
``reprint_unmatched``.

Which copy is first does not depend on batches or instances: the copies of one batch are taken in
the order they were printed, and on PostgreSQL a transaction holds an advisory lock on each
(store, register, receipt number) it stores until it commits, so a concurrent batch carrying
another copy waits and then sees the first one (on SQLite the ingest transaction already holds the
database's write lock). Decisions 0085 and 0089.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select

from central import bulk
from central.customers.models import Receipt
from central.models import table

REPRINT = "reprint"
TOTAL_DIFFERS = "reprint_total_differs"
UNMATCHED = "reprint_unmatched"
DUPLICATE_SOURCE = "duplicate_source"
SOURCE_PREFIX = "source:"
"""The ``device_id`` of events from an online source or a backfill (central.sources.events.device_for)."""
MARKER_WARNING = "reprint"
"""The warning an agent puts on a receipt that printed a reprint marker."""
LOOKBACK = timedelta(days=31)
_receipts = table(Receipt)


@dataclass(frozen=True, slots=True)
class Printed:
    """What identifies one freshly accepted receipt."""

    device_id: str
    store_id: str
    register: str
    receipt_no: str
    printed_at: str | None
    total: Decimal
    observed_at: datetime
    marked: bool


@dataclass(frozen=True, slots=True)
class Verdict:
    """A receipt's place among its copies: the first copy's id (or index in the batch) and the flag."""

    original_id: int | None
    original_index: int | None
    flag: str | None

    @property
    def is_copy(self) -> bool:
        return self.original_id is not None or self.original_index is not None


def printed(device_id: str, store_id: str, payload: dict[str, Any], total: Decimal, observed_at: datetime) -> Printed:
    """The identifying fields of a ``pos.receipt`` payload."""
    register = payload.get("register")
    when = payload.get("datetime")
    warnings = payload.get("warnings")
    return Printed(
        device_id=device_id,
        store_id=store_id,
        register=register.strip()[:32] if isinstance(register, str) else "",
        receipt_no=str(payload["receipt_no"]),
        printed_at=when.strip()[:40] or None if isinstance(when, str) else None,
        total=total,
        observed_at=observed_at,
        marked=isinstance(warnings, list) and MARKER_WARNING in warnings,
    )


def classify(conn: Connection, receipts: Sequence[Printed], *, window: float) -> list[Verdict]:
    """Tell each receipt (in the order given) apart as a first copy or a copy of one stored or earlier in the list."""
    if not receipts:
        return []
    _lock(conn, receipts)
    span = timedelta(seconds=window)
    earliest = min(r.observed_at for r in receipts)
    stored = conn.execute(
        select(
            _receipts.c.id,
            _receipts.c.device_id,
            _receipts.c.store_id,
            _receipts.c.register,
            _receipts.c.receipt_no,
            _receipts.c.printed_at,
            _receipts.c.total,
            _receipts.c.observed_at,
        )
        .where(
            _receipts.c.store_id.in_(sorted({r.store_id for r in receipts})),
            _receipts.c.receipt_no.in_(sorted({r.receipt_no for r in receipts})),
            _receipts.c.reprint_of.is_(None),
            _receipts.c.observed_at >= earliest - LOOKBACK,
        )
        .order_by(_receipts.c.observed_at, _receipts.c.id)
    ).all()
    # First copies by store and receipt number, the only ones a receipt can repeat: a backfill's
    # chunk of thousands of receipts is then read in one pass, not compared with every earlier one.
    firsts: dict[tuple[str, str], list[tuple[int | None, int | None, Printed]]] = {}
    for row in stored:
        first = Printed(
            row.device_id,
            row.store_id,
            row.register,
            row.receipt_no,
            row.printed_at,
            Decimal(row.total),
            row.observed_at,
            False,
        )
        firsts.setdefault((row.store_id, row.receipt_no), []).append((row.id, None, first))
    verdicts: list[Verdict | None] = [None] * len(receipts)
    for index in sorted(range(len(receipts)), key=lambda i: (receipts[i].observed_at, i)):
        receipt = receipts[index]
        same_number = firsts.setdefault((receipt.store_id, receipt.receipt_no), [])
        match = _first_copy(receipt, same_number, span)
        if match is None:
            verdicts[index] = Verdict(None, None, UNMATCHED if receipt.marked else None)
            same_number.append((None, index, receipt))
            continue
        original_id, original_index, first = match
        if first.total != receipt.total:
            flag = TOTAL_DIFFERS
        else:
            flag = REPRINT if first.device_id == receipt.device_id else DUPLICATE_SOURCE
        verdicts[index] = Verdict(original_id, original_index, flag)
    return [v for v in verdicts if v is not None]


def _first_copy(
    receipt: Printed, firsts: Sequence[tuple[int | None, int | None, Printed]], span: timedelta
) -> tuple[int | None, int | None, Printed] | None:
    """The nearest earlier-stored receipt ``receipt`` repeats, if any."""
    candidates = [entry for entry in firsts if _repeats(receipt, entry[2], span)]
    if not candidates:
        return None
    return min(candidates, key=lambda entry: abs(receipt.observed_at - entry[2].observed_at))


def _repeats(receipt: Printed, first: Printed, span: timedelta) -> bool:
    """Whether ``receipt`` is a copy of ``first``: the same number (see below), and printed at the same
    date and time or within ``span`` of it.

    Without a register on either, the two must come from the same agent; or, when one of them was
    loaded from a source (a backfill has no agent), print the same date and time and the same total.
    """
    if (receipt.store_id, receipt.receipt_no) != (first.store_id, first.receipt_no):
        return False
    same_time = receipt.printed_at is not None and receipt.printed_at == first.printed_at
    if not receipt.register and not first.register and receipt.device_id != first.device_id:
        from_source = receipt.device_id.startswith(SOURCE_PREFIX) or first.device_id.startswith(SOURCE_PREFIX)
        return from_source and same_time and receipt.total == first.total
    if receipt.register != first.register:
        return False
    return same_time or abs(receipt.observed_at - first.observed_at) <= span


def _lock(conn: Connection, receipts: Sequence[Printed]) -> None:
    """PostgreSQL: hold a transaction lock on each (store, receipt number) until commit, in a fixed order."""
    # One lock a store and number (whatever the register or source): a concurrent batch carrying
    # another copy waits here for this transaction's outcome, then reads the committed first copy.
    bulk.advisory_locks(conn, (f"central:receipt:{r.store_id}\x00{r.receipt_no}" for r in receipts))
