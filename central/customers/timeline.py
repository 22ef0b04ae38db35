"""A customer's timeline: purchases, online orders, scans, complaints, visits, coupons and notes, newest first.

An online order posted again at each status shows every event; the order's sale (the one event
that counts, central.customers.orders) shows the order's status now and the amount, its other
events their own status and no amount. A receipt set aside (a copy of one of the customer's
receipts with another total, counted nowhere: central.customers.set_aside) shows as a
``receipt.set_aside`` entry with its amount, why, and the total that counts.

Each kind of entry lives in its own table, so a page is read as keyset pages of each source merged
in Python: every source is asked for the entries before the cursor, newest first, one more than a
page, and the newest ``limit`` of all of them make the page. The cursor is the last entry's
``(time, source rank, row id)``, so a page never repeats or skips an entry however many arrive in
between, and no query ever counts past rows (no OFFSET). Times are UTC.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, true
from sqlalchemy.orm import Session

from central.campaigns.coupon_models import CouponCampaign, CouponCode, CouponRedemption
from central.campaigns.models import TriggerCoupon, TriggerOccasion
from central.customers import notes, set_aside
from central.customers.models import CustomerNote, OnlineOrder
from central.customers.sales import ONLINE_KIND, fen
from central.identity.models import LINKED, TRUSTED, Customer, EventCustomer, Identifier
from central.ingest.models import Event
from central.models import table
from central.params import MAX_ROW_ID
from central.presence.models import PresenceVisit
from central.sources.events import device_for

PAGE = 50
# Which event kinds the timeline shows, and the payload fields it lists for each.
COMPLAINT_KIND = "service.complaint"  # its entry names who filed it (payload ``operator``)
CONSOLE_DEVICE = device_for(notes.SOURCE)  # the events' device of what the console files
EVENT_FIELDS = {
    "pos.receipt": ("receipt_no", "payment_method"),
    "pos.sale": ("sale_no", "receipt_no"),
    "order.online": ("order_no", "channel", "status"),
    "scan.member": ("result", "member_id"),
    "scan.coupon": ("coupon_id", "result"),
    "scan.product": ("sku", "code"),
    "service.complaint": ("ticket_no", "category", "severity", "channel", "text"),
}
MIXED_TENDERS = "mixed"
"""What the timeline shows as a receipt's payment method when it lists tenders of more than one method
(its ``payment_method`` is only the first)."""
SET_ASIDE_KIND = "receipt.set_aside"
"""A receipt kept as evidence and counted nowhere (decision 0103); its fields name why and what counts instead."""
# Ties on time are broken by source (higher first), then row id (higher first).
SET_ASIDE, EVENT, VISIT, ISSUED, REDEEMED, NOTE = 6, 5, 4, 3, 2, 1
_events = table(Event)
_owners = table(EventCustomer)
_visits = table(PresenceVisit)
_codes = table(CouponCode)
_campaigns = table(CouponCampaign)
_redemptions = table(CouponRedemption)
_notes = table(CustomerNote)
_orders = table(OnlineOrder)
_identifiers = table(Identifier)
_customers = table(Customer)
_trigger_coupons = table(TriggerCoupon)
_occasions = table(TriggerOccasion)


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a timeline page ends: the last entry's time, source rank and row id."""

    at: datetime
    rank: int
    id: int

    def encode(self) -> str:
        """The cursor as a URL parameter: ``<epoch microseconds>.<rank>.<id>``."""
        micros = int(self.at.timestamp()) * 1_000_000 + self.at.microsecond
        return f"{micros}.{self.rank}.{self.id}"

    @classmethod
    def decode(cls, text: str) -> Cursor:
        """Read a cursor back; ValueError for anything that is not one."""
        parts = text.split(".")
        if len(parts) != 3 or not all(p.isdigit() and len(p) <= 20 for p in parts):
            raise ValueError(f"not a timeline cursor: {text[:40]!r}")
        micros, rank, row = (int(p) for p in parts)
        if row > MAX_ROW_ID:  # no row has it, and a database cannot bind it
            raise ValueError(f"not a timeline cursor: {text[:40]!r}")
        at = datetime.fromtimestamp(micros // 1_000_000, UTC).replace(microsecond=micros % 1_000_000)
        return cls(at, rank, row)


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of the timeline: when, what kind, where, an amount if any, and what it said."""

    at: datetime
    rank: int
    id: int
    kind: str
    store_id: str = ""
    amount: Decimal | None = None
    fields: tuple[tuple[str, str], ...] = ()
    author: str = ""
    # Who sent a complaint central did not file itself: an online source (``source:crm``) or a
    # store's device. Its ``operator`` is then what the sender said, not a console user.
    sender: str = ""

    @property
    def cursor(self) -> Cursor:
        return Cursor(self.at, self.rank, self.id)


@dataclass
class Page:
    """A page of entries and the cursor of the next page (None on the last)."""

    entries: list[Entry] = field(default_factory=list)
    next: Cursor | None = None


def _before(at: Any, row_id: Any, rank: int, cursor: Cursor | None) -> ColumnElement[bool]:
    """Rows of source ``rank`` that come after ``cursor`` in newest-first order."""
    if cursor is None:
        return true()
    if rank < cursor.rank:
        return at <= cursor.at
    if rank > cursor.rank:
        return at < cursor.at
    return or_(at < cursor.at, and_(at == cursor.at, row_id < cursor.id))


def _amount(raw: Any) -> Decimal | None:
    if raw is None or isinstance(raw, bool):
        return None
    try:
        return fen(str(raw))
    except InvalidOperation:
        return None


def _mixed(tenders: Any) -> bool:
    """Whether a receipt's ``tenders`` name more than one payment method (微信支付 20.00 + 现金 20.00)."""
    if not isinstance(tenders, list):
        return False
    return len({t.get("method") for t in tenders if isinstance(t, dict)}) > 1


def _text(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def tree(db: Session, customer_id: int) -> list[int]:
    """The customer and every customer merged into it."""
    merged = db.scalars(select(_customers.c.id).where(_customers.c.merged_into == customer_id))
    return [customer_id, *merged]


def _event_entries(db: Session, customer_id: int, cursor: Cursor | None, limit: int) -> list[Entry]:
    rows = db.execute(
        select(
            _events.c.id,
            _events.c.kind,
            _events.c.store_id,
            _events.c.observed_at,
            _events.c.payload,
            _events.c.device_id,
        )
        .join(_owners, _owners.c.event_pk == _events.c.id)
        .where(
            _owners.c.customer_id == customer_id,
            _events.c.kind.in_(EVENT_FIELDS),
            _before(_events.c.observed_at, _events.c.id, EVENT, cursor),
        )
        .order_by(_events.c.observed_at.desc(), _events.c.id.desc())
        .limit(limit)
    ).all()
    # An online order's sale shows the order's status now; its other events (status updates) no amount.
    sales = dict(
        db.execute(
            select(_orders.c.event_pk, _orders.c.status).where(
                _orders.c.event_pk.in_([r[0] for r in rows if r[1] == ONLINE_KIND])
            )
        ).all()
    )
    out = []
    for pk, kind, store, at, payload, device in rows:
        payload = payload if isinstance(payload, dict) else {}
        if sales.get(pk):
            payload = {**payload, "status": sales[pk]}
        shown = tuple(
            (name, _text(payload[name])) for name in EVENT_FIELDS[kind] if payload.get(name) not in (None, "")
        )
        if kind == "pos.receipt" and _mixed(payload.get("tenders")):
            shown = tuple((name, MIXED_TENDERS if name == "payment_method" else text) for name, text in shown)
        amount = _amount(payload.get("total") if kind != "scan.coupon" else payload.get("value"))
        if kind == ONLINE_KIND and pk not in sales and payload.get("order_no"):
            amount = None
        # A complaint filed in the console names the console user who filed it, as a note its author;
        # one sent by a source or a store names its sender, and its operator only as the sender's word.
        author = sender = ""
        if kind == COMPLAINT_KIND and device == CONSOLE_DEVICE:
            author = _text(payload.get("operator"))
        elif kind == COMPLAINT_KIND:
            sender = device
            if payload.get("operator") not in (None, ""):
                shown += (("operator", _text(payload["operator"])),)
        out.append(Entry(at, EVENT, pk, kind, store or "", amount, shown, author, sender))
    return out


def _set_aside_entries(db: Session, customer_id: int, cursor: Cursor | None, limit: int) -> list[Entry]:
    at, pk = set_aside.copy_columns()
    rows = set_aside.of_customer(db.connection(), customer_id, _before(at, pk, SET_ASIDE, cursor), limit)
    return [
        Entry(
            r.observed_at,
            SET_ASIDE,
            r.event_pk,
            SET_ASIDE_KIND,
            r.store_id,
            fen(r.total),
            (("receipt_no", r.receipt_no), ("set_aside", r.reason), ("counted_total", f"{fen(r.counted_total):.2f}")),
        )
        for r in rows
    ]


def _visit_entries(ids: Sequence[int], db: Session, cursor: Cursor | None, limit: int) -> list[Entry]:
    rows = db.execute(
        select(_visits.c.id, _visits.c.store_id, _visits.c.started_at, _visits.c.dwell_s, _visits.c.medium)
        .where(_visits.c.customer_id.in_(ids), _before(_visits.c.started_at, _visits.c.id, VISIT, cursor))
        .order_by(_visits.c.started_at.desc(), _visits.c.id.desc())
        .limit(limit)
    )
    return [
        Entry(at, VISIT, pk, "presence.visit", store, None, (("dwell_min", f"{dwell / 60:.1f}"), ("medium", medium)))
        for pk, store, at, dwell, medium in rows
    ]


def member_ids(db: Session, ids: Sequence[int]) -> list[str]:
    """The ``member_id`` identifiers the customers hold (members claim coupons with these)."""
    return list(
        db.scalars(
            select(_identifiers.c.value).where(
                _identifiers.c.customer_id.in_(ids),
                _identifiers.c.kind == "member_id",
                _identifiers.c.state.in_((LINKED, TRUSTED)),
            )
        )
    )


def _coupon_entries(
    ids: Sequence[int], members: Sequence[str], db: Session, cursor: Cursor | None, limit: int
) -> list[Entry]:
    """Codes issued to the customers, claimed by their member ids or issued by a trigger, and their redemptions."""
    # Through the occasions, whose customer_id is indexed (trigger_coupons' is not).
    by_trigger = (
        select(_trigger_coupons.c.serial)
        .join(_occasions, _occasions.c.id == _trigger_coupons.c.occasion_id)
        .where(_occasions.c.customer_id.in_(ids))
    )
    theirs: ColumnElement[bool] = _codes.c.serial.in_(by_trigger)
    if members:
        theirs = or_(_codes.c.member_id.in_(members), theirs)
    issued = db.execute(
        select(_codes.c.serial, _codes.c.issued_at, _campaigns.c.name, _campaigns.c.value)
        .join(_campaigns, _campaigns.c.id == _codes.c.campaign_id)
        .where(theirs, _before(_codes.c.issued_at, _codes.c.serial, ISSUED, cursor))
        .order_by(_codes.c.issued_at.desc(), _codes.c.serial.desc())
        .limit(limit)
    )
    out = [
        Entry(at, ISSUED, serial, "coupon.issued", "", value, (("campaign", name), ("serial", str(serial))))
        for serial, at, name, value in issued
    ]
    redeemed = db.execute(
        select(
            _redemptions.c.id,
            _redemptions.c.observed_at,
            _redemptions.c.store_id,
            _redemptions.c.serial,
            _redemptions.c.status,
            _campaigns.c.name,
            _campaigns.c.value,
        )
        .join(_codes, _codes.c.serial == _redemptions.c.serial)
        .join(_campaigns, _campaigns.c.id == _redemptions.c.campaign_id)
        .where(theirs, _before(_redemptions.c.observed_at, _redemptions.c.id, REDEEMED, cursor))
        .order_by(_redemptions.c.observed_at.desc(), _redemptions.c.id.desc())
        .limit(limit)
    )
    out += [
        Entry(
            at,
            REDEEMED,
            pk,
            "coupon.redeemed",
            store,
            value,
            (("campaign", name), ("serial", str(serial)), ("status", status)),
        )
        for pk, at, store, serial, status, name, value in redeemed
    ]
    return out


def _note_entries(ids: Sequence[int], db: Session, cursor: Cursor | None, limit: int) -> list[Entry]:
    rows = db.execute(
        select(_notes.c.id, _notes.c.created_at, _notes.c.author, _notes.c.text)
        .where(_notes.c.customer_id.in_(ids), _before(_notes.c.created_at, _notes.c.id, NOTE, cursor))
        .order_by(_notes.c.created_at.desc(), _notes.c.id.desc())
        .limit(limit)
    )
    return [Entry(at, NOTE, pk, "note", "", None, (("text", text),), author) for pk, at, author, text in rows]


def page(db: Session, customer_id: int, cursor: Cursor | None = None, limit: int = PAGE) -> Page:
    """One page of a live customer's timeline, newest first, starting after ``cursor``."""
    ids = tree(db, customer_id)
    wanted = limit + 1
    entries = _event_entries(db, customer_id, cursor, wanted)
    entries += _set_aside_entries(db, customer_id, cursor, wanted)
    entries += _visit_entries(ids, db, cursor, wanted)
    entries += _coupon_entries(ids, member_ids(db, ids), db, cursor, wanted)
    entries += _note_entries(ids, db, cursor, wanted)
    entries.sort(key=lambda e: (e.at, e.rank, e.id), reverse=True)
    shown = entries[:limit]
    return Page(shown, shown[-1].cursor if len(entries) > limit else None)
