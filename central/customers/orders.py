"""Online orders: one sale per (source, order number), however many statuses the order is posted with.

An e-commerce or mini-program backend posts an order again each time its status changes, under a
new event id::

    {"event_id": "wx-88-paid", "kind": "order.online", "observed_at": "2026-11-20T08:00:00+08:00",
     "payload": {"order_no": "88", "status": "paid", "total": "59.90", "channel": "mini_program"}}
    {"event_id": "wx-88-shipped", "kind": "order.online", "observed_at": "2026-11-21T09:30:00+08:00",
     "payload": {"order_no": "88", "status": "shipped", "total": "59.90", "channel": "mini_program"}}

Every event is stored and linked to its customer like any other (the timeline shows it), and the
order is kept once in ``online_orders``, keyed by the events' source (``events.device_id``) and
``order_no``. Its **sale** is its earliest event (by ``observed_at``, then by arrival), whatever
order the events arrive in: the only one the statistics count, with its own time and total. Its
**status** is that of its newest event that names one. An order whose status is a cancellation,
closure or refund (:data:`VOID_STATUSES`) is not counted at all, until a newer status says
otherwise. An event whose total is not the sale's flags the order ``order_total_differs`` for a
person to look at; the sale's total is the one counted. An order event central receives with no
earlier one is the order's sale (it is the only record of it). An ``order.online`` without an
``order_no`` is a sale of its own, as before.

When a new event changes which event counts (an earlier one arrived, or the order was cancelled),
the customers owning the events concerned are recounted from their events in the same transaction
(:func:`central.customers.rebuild.rebuild_customers`, which reads only counted sales through
:func:`central.customers.rebuild.counted`), so first and last purchases, windows and categories are exact, not patched.

On PostgreSQL a transaction holds an advisory lock on each (source, order number) it records until
it commits, so a concurrent transaction with another event of the order waits and then sees it.
Decision 0089.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Connection

from central import bulk
from central.customers import rebuild
from central.customers.models import OnlineOrder
from central.customers.sales import ONLINE_KIND
from central.identity.models import EventCustomer
from central.models import table

TOTAL_DIFFERS = "order_total_differs"
# Statuses that take an order out of the purchases, compared after code_key-like folding (lower case,
# "-" and " " read as "_"), with the Chinese spellings sources use.
VOID_STATUSES = frozenset(
    {"cancelled", "canceled", "closed", "refunded", "returned", "已取消", "交易关闭", "已关闭", "已退款", "已退货"}
)
_CENT = Decimal("0.01")
_orders = table(OnlineOrder)
_owners = table(EventCustomer)
_COLUMNS = (
    "id",
    "order_no",
    "event_pk",
    "observed_at",
    "total",
    "status",
    "status_at",
    "status_pk",
    "counted",
    "events",
    "flag",
)
_WRITTEN = _COLUMNS[2:]
# (event_pk, kind, store_id, observed_at in UTC, payload): statistics.StoredEvent.
Stored = tuple[int, str, str, datetime, dict[str, Any]]


def is_void(status: str) -> bool:
    """Whether an order in ``status`` is no purchase (cancelled, closed, refunded, returned)."""
    return status.strip().lower().replace("-", "_").replace(" ", "_") in VOID_STATUSES


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """What an ``order.online`` event with an order number says about its order."""

    event_pk: int
    order_no: str
    observed_at: datetime
    status: str
    total: Decimal


@dataclass(slots=True)
class _Order:
    id: int | None
    event_pk: int
    observed_at: datetime
    total: Decimal
    status: str
    status_at: datetime
    status_pk: int
    counted: bool
    events: int
    flag: str | None

    @property
    def counting(self) -> int | None:
        """The event the statistics count for this order, if any."""
        return self.event_pk if self.counted else None

    def row(self) -> tuple[Any, ...]:
        return (
            self.event_pk,
            self.observed_at,
            self.total,
            self.status,
            self.status_at,
            self.status_pk,
            self.counted,
            self.events,
            self.flag,
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    """What recording a transaction's order events decided."""

    uncounted: frozenset[int]
    """Fresh events the statistics must not add (status updates, cancelled orders)."""
    recount: tuple[int, ...]
    """Events stored before whose owners' statistics must be recounted (they stopped or started counting)."""


NOTHING = Outcome(frozenset(), ())


def order_event(event_pk: int, kind: str, observed_at: datetime, payload: dict[str, Any]) -> OrderEvent | None:
    """The order event a stored event is, or None (another kind, or an order with no order number)."""
    order_no = payload.get("order_no") if kind == ONLINE_KIND else None
    if not isinstance(order_no, str) or not order_no:
        return None
    status = payload.get("status")
    try:
        total = Decimal(str(payload["total"])).quantize(_CENT, ROUND_HALF_UP)
    except (KeyError, InvalidOperation):
        total = Decimal(0)
    return OrderEvent(event_pk, order_no, observed_at, status.strip() if isinstance(status, str) else "", total)


def record(conn: Connection, device_id: str, stored: Iterable[Stored]) -> Outcome:
    """Fold the freshly stored order events of source ``device_id`` into their orders."""
    events = [e for s in stored if (e := order_event(s[0], s[1], s[3], s[4])) is not None]
    if not events:
        return NOTHING
    numbers = sorted({e.order_no for e in events})
    bulk.advisory_locks(conn, (f"central:order:{device_id}\x00{n}" for n in numbers))
    found = bulk.select_matching(conn, _orders, ("device_id", "order_no"), [(device_id, n) for n in numbers], _COLUMNS)
    orders: dict[str, _Order] = {}
    for oid, number, pk, at, total, status, status_at, status_pk, counted, seen, flag in found:
        orders[number] = _Order(
            oid,
            pk,
            bulk.stored_instant(at),
            Decimal(str(total)).quantize(_CENT, ROUND_HALF_UP),
            status,
            bulk.stored_instant(status_at),
            status_pk,
            bool(counted),
            seen,
            flag,
        )
    before = {number: order.counting for number, order in orders.items()}
    # Oldest first: within one transaction the earliest event becomes the sale without a swap.
    for event in sorted(events, key=lambda e: (e.observed_at, e.event_pk)):
        order = orders.get(event.order_no)
        if order is None:
            orders[event.order_no] = _Order(
                None,
                event.event_pk,
                event.observed_at,
                event.total,
                event.status,
                event.observed_at,
                event.event_pk,
                not is_void(event.status),
                1,
                None,
            )
            continue
        _fold(order, event)
    fresh = {e.event_pk for e in events}
    counting = {order.counting for order in orders.values()}
    recount: set[int] = set()
    for number, was in before.items():
        now = orders[number].counting
        if was != now:
            recount.update(pk for pk in (was, now) if pk is not None and pk not in fresh)
    bulk.insert(
        conn,
        _orders,
        ("device_id", "order_no", *_WRITTEN),
        [(device_id, number, *o.row()) for number, o in sorted(orders.items()) if o.id is None],
    )
    bulk.update_rows(
        conn, _orders, "id", _WRITTEN, [(o.id, *o.row()) for _, o in sorted(orders.items()) if o.id is not None]
    )
    return Outcome(frozenset(fresh - counting), tuple(sorted(recount)))


def _fold(order: _Order, event: OrderEvent) -> None:
    """One more event of a known order: maybe its new sale, maybe its new status."""
    order.events += 1
    if event.total != order.total:
        order.flag = TOTAL_DIFFERS
    if (event.observed_at, event.event_pk) < (order.observed_at, order.event_pk):
        # Posted late but happened first (a "paid" after the "completed"): the sale is this one.
        order.event_pk, order.observed_at, order.total = event.event_pk, event.observed_at, event.total
    if event.status and (event.observed_at, event.event_pk) >= (order.status_at, order.status_pk):
        order.status, order.status_at, order.status_pk = event.status, event.observed_at, event.event_pk
        order.counted = not is_void(event.status)


def counted(stored: Sequence[Stored], outcome: Outcome) -> list[Stored]:
    """``stored`` without the events that ``outcome`` says do not count."""
    if not outcome.uncounted:
        return list(stored)
    return [s for s in stored if s[0] not in outcome.uncounted]


def recount(conn: Connection, outcome: Outcome, offset_minutes: int) -> None:
    """Recount from their events the owners of ``outcome.recount`` (after the transaction's sales were added)."""
    if not outcome.recount:
        return
    owners = bulk.select_matching(conn, _owners, ("event_pk",), [(pk,) for pk in outcome.recount], ("customer_id",))
    rebuild.rebuild_customers(conn, sorted({int(cid) for (cid,) in owners}), offset_minutes)
