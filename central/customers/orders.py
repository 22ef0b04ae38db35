"""Online orders: one sale per (source, order number), however many statuses the order is posted with.

An e-commerce or mini-program backend posts an order again each time its status changes, under a
new event id::

    {"event_id": "wx-88-paid", "kind": "order.online", "observed_at": "2026-11-20T08:00:00+08:00",
     "payload": {"order_no": "88", "status": "paid", "total": "59.90", "channel": "mini_program"}}
    {"event_id": "wx-88-shipped", "kind": "order.online", "observed_at": "2026-11-21T09:30:00+08:00",
     "payload": {"order_no": "88", "status": "shipped", "total": "59.90", "channel": "mini_program"}}

Every event is stored and linked to its customer like any other (the timeline shows it), and the
order is kept once in ``online_orders``, keyed by the events' source (``events.device_id``) and
``order_no``. Its **sale** is its earliest event with a total (by ``observed_at``, then by
arrival), whatever order the events arrive in: the only one the statistics count, with its own
time and total. Its **status** is that of its newest event that names one. An order whose status is a cancellation,
closure or refund (:data:`VOID_STATUSES`), or that is placed but not paid (:data:`UNPAID_STATUSES`),
is not counted at all, until a newer status says otherwise; a status in no list counts, and
:func:`status_warning` names it. An event whose total is not the sale's flags the order
``order_total_differs`` for a person to look at; the sale's total is the one counted. An order
event central receives with no earlier one is the order's sale (it is the only record of it). A
status update without a total (a cancellation webhook) never becomes the sale of a known order nor
changes its total; an order known only from such updates is not counted until a total arrives.
An ``order.online`` without an ``order_no`` is a sale of its own, as before.

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

from sqlalchemy import Connection, select

from central import bulk
from central.customers import rebuild
from central.customers.models import OnlineOrder
from central.customers.sales import ONLINE_KIND
from central.identity.models import EventCustomer
from central.ingest.models import Event
from central.models import table

TOTAL_DIFFERS = "order_total_differs"
UNKNOWN_STATUS = "unknown_order_status"
# The statuses central knows, compared after code_key-like folding (lower case, "-" and " " read as
# "_"): the platforms' own spellings (Taobao/Tmall, Youzan, WeChat mini-program shops) and Chinese.
# Each list is in the README ("Online orders") and decision 0089; keep the three in step.
VOID_STATUSES = frozenset(
    {
        *("cancelled", "canceled", "closed", "refunded", "returned", "void", "voided"),
        *("trade_closed", "trade_close", "trade_closed_by_taobao", "trade_canceled", "trade_cancelled"),
        *("refund_success", "refund_succeeded", "refund_finished"),
        *("已取消", "交易关闭", "交易取消", "订单关闭", "已关闭", "已退款", "退款成功", "已退货", "已作废", "作废"),
    }
)
"""Statuses that take an order out of the purchases (cancelled, closed, fully refunded or returned)."""
UNPAID_STATUSES = frozenset(
    {
        *("created", "pending_payment", "awaiting_payment", "unpaid", "not_paid", "wait_pay"),
        *("wait_buyer_pay", "trade_no_create_pay"),
        *("待付款", "待支付", "未支付", "未付款", "等待买家付款"),
    }
)
"""Statuses of an order placed but not paid: no purchase until a newer status says it was paid."""
PAID_STATUSES = frozenset(
    {
        *("paid", "shipped", "delivered", "received", "completed", "finished", "success"),
        *("partially_refunded", "partial_refunded", "refunding"),
        *("wait_seller_send_goods", "seller_consigned_part", "wait_buyer_confirm_goods", "trade_buyer_signed"),
        *("trade_finished", "trade_success"),
        *("已付款", "已支付", "待发货", "已发货", "待收货", "已收货", "已签收", "已完成", "交易成功", "交易完成"),
        *("部分退款", "退款中"),
    }
)
"""Statuses of a paid order (paid, on its way, received, partly refunded): a purchase."""
_CENT = Decimal("0.01")
_orders = table(OnlineOrder)
_owners = table(EventCustomer)
_events = table(Event)
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


def _folded(status: str) -> str:
    return status.strip().lower().replace("-", "_").replace(" ", "_")


def is_void(status: str) -> bool:
    """Whether an order in ``status`` is no purchase (cancelled, closed, refunded, returned)."""
    return _folded(status) in VOID_STATUSES


def is_unpaid(status: str) -> bool:
    """Whether an order in ``status`` is placed but not paid yet (no purchase)."""
    return _folded(status) in UNPAID_STATUSES


def is_purchase(status: str) -> bool:
    """Whether an order whose newest status is ``status`` (or none, "") counts: any status but void or unpaid.

    A status central does not know counts (it may well be a paid one); :func:`status_warning` names it.
    """
    folded = _folded(status)
    return folded not in VOID_STATUSES and folded not in UNPAID_STATUSES


def status_warning(kind: object, payload: object) -> str | None:
    """``unknown_order_status`` for an order event (with an order number) whose status central does not know."""
    if kind != ONLINE_KIND or not isinstance(payload, dict):
        return None
    status, number = payload.get("status"), payload.get("order_no")
    if not isinstance(status, str) or not status.strip() or not isinstance(number, str) or not number:
        return None
    folded = _folded(status)
    known = folded in PAID_STATUSES or folded in UNPAID_STATUSES or folded in VOID_STATUSES
    return None if known else UNKNOWN_STATUS


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """What an ``order.online`` event with an order number says about its order."""

    event_pk: int
    order_no: str
    observed_at: datetime
    status: str
    total: Decimal | None
    """None for a status update that gives no total (a cancellation or refund webhook)."""


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
    priced: bool = True
    """Whether the sale gave a total: a sale without one (all central has of the order) counts only once one arrives."""

    def settle(self) -> None:
        """Whether the order counts now: a priced sale whose newest status is no void nor unpaid one."""
        self.counted = self.priced and is_purchase(self.status)

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
    total: Decimal | None
    try:
        total = Decimal(str(payload["total"])).quantize(_CENT, ROUND_HALF_UP)
    except KeyError:
        total = None  # a status update without a total (shared.payloads allows it with order_no and status)
    except InvalidOperation:
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
    _mark_unpriced(conn, orders.values())
    before = {number: order.counting for number, order in orders.items()}
    # Oldest priced event first: within one transaction the earliest one with a total becomes the sale
    # without a swap.
    for event in sorted(events, key=lambda e: (e.total is None, e.observed_at, e.event_pk)):
        order = orders.get(event.order_no)
        if order is None:
            order = orders[event.order_no] = _Order(
                None,
                event.event_pk,
                event.observed_at,
                Decimal(0) if event.total is None else event.total,
                event.status,
                event.observed_at,
                event.event_pk,
                False,
                1,
                None,
                priced=event.total is not None,
            )
            order.settle()
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


def _mark_unpriced(conn: Connection, found: Iterable[_Order]) -> None:
    """Mark the stored orders whose sale gave no total (stored as 0.00: only those are read again)."""
    zero = [order for order in found if order.total == 0]
    if not zero:
        return
    rows = conn.execute(select(_events.c.id, _events.c.payload).where(_events.c.id.in_([o.event_pk for o in zero])))
    unpriced = {pk for pk, payload in rows if isinstance(payload, dict) and "total" not in payload}
    for order in zero:
        order.priced = order.event_pk not in unpriced


def _fold(order: _Order, event: OrderEvent) -> None:
    """One more event of a known order: maybe its new sale, maybe its new status."""
    order.events += 1
    if event.total is not None:  # a status update without a total says nothing of the amount
        if order.priced and event.total != order.total:
            order.flag = TOTAL_DIFFERS
        if not order.priced or (event.observed_at, event.event_pk) < (order.observed_at, order.event_pk):
            # Posted late but happened first (a "paid" after the "completed"), or the first total of an
            # order central knew only from a status update: the sale is this one.
            order.event_pk, order.observed_at, order.total = event.event_pk, event.observed_at, event.total
            order.priced = True
    if event.status and (event.observed_at, event.event_pk) >= (order.status_at, order.status_pk):
        order.status, order.status_at, order.status_pk = event.status, event.observed_at, event.event_pk
    order.settle()


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
