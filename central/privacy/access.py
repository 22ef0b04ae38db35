"""A copy of everything central holds about one person, as one JSON document (PIPL Art. 45; decision 0097).

The document is for the person: identifiers and attributes in full, unmasked. It is written a
section at a time, the long ones (events, sales) read a page at a time, so a customer with tens of
thousands of purchases costs a page of memory, not the whole history. Shape::

    {"format": "cdp-personal-data", "version": 1, "customer_id": 42, "exported_at": "...",
     "erased_at": null, "identifiers": [...], "golden_record": [...], "attribute_observations": [...],
     "consents": [...], "statistics": {...}, "tags": [...], "segments": [...], "segment_history": [...],
     "triggers": [...], "coupons": [...], "notes": [...], "member_keys": [...], "member_scans": [...],
     "visits": [...], "sales": [...], "online_orders": [...], "events": [...]}

``sales`` are the person's receipts and orders with store, time, total and items; ``events`` is
every event linked to them (complaints, sign-ups, consents, logins) with its payload as stored.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from central.campaigns.coupon_models import CouponCampaign, CouponCode, CouponRedemption
from central.campaigns.models import Trigger, TriggerCoupon, TriggerOccasion
from central.csvfiles import open_private
from central.customers.consent_models import ConsentDecision
from central.customers.models import CustomerNote, CustomerStats, CustomerTag, OnlineOrder, Receipt
from central.customers.sales import SALE_KINDS
from central.identity.models import AttributeObservation, EventCustomer, GoldenAttribute, Identifier
from central.ingest.models import Event
from central.members.models import MemberKey, MemberScan
from central.presence.models import PresenceVisit
from central.privacy.models import Erasure
from central.privacy.subjects import customers_of
from central.segments.models import Segment, SegmentMember, SegmentMembershipEvent

FORMAT = "cdp-personal-data"
VERSION = 1
PAGE = 500  # rows read per page of the long sections


@dataclass(frozen=True)
class Written:
    """What one export wrote: rows per section (the audit row's detail)."""

    counts: dict[str, int]


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__}")


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=_plain, sort_keys=True)


def _rows(db: Session, query: Any, page: int = PAGE) -> Iterator[dict[str, Any]]:
    """Each row of ``query`` as a dict, read ``page`` rows at a time."""
    for row in db.execute(query.execution_options(yield_per=page)).mappings():
        yield dict(row)


class _Document:
    """Writes the JSON object one member (and one array element) at a time."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.first = True
        self.counts: dict[str, int] = {}

    def field(self, name: str, value: Any) -> None:
        self.out.write(("{\n" if self.first else ",\n") + json.dumps(name) + ": " + _dump(value))
        self.first = False

    def array(self, name: str, items: Iterable[Any]) -> None:
        self.out.write(("{\n" if self.first else ",\n") + json.dumps(name) + ": [")
        self.first = False
        count = 0
        for item in items:
            self.out.write(("\n  " if count == 0 else ",\n  ") + _dump(item))
            count += 1
        self.out.write("\n]" if count else "]")
        self.counts[name] = count

    def close(self) -> None:
        self.out.write("\n}\n")


def _event_pks(db: Session, ids: Sequence[int]) -> Select[int]:
    return select(EventCustomer.event_pk).where(EventCustomer.customer_id.in_(ids))


def _events(db: Session, ids: Sequence[int], kinds: Sequence[str] | None, exclude: bool) -> Iterator[dict[str, Any]]:
    query = select(
        Event.id,
        Event.device_id.label("source"),
        Event.event_id,
        Event.kind,
        Event.store_id,
        Event.observed_at,
        Event.received_at,
        Event.identifiers,
        Event.attributes,
        Event.payload,
    ).where(Event.id.in_(_event_pks(db, ids)))
    if kinds is not None:
        query = query.where(Event.kind.not_in(kinds) if exclude else Event.kind.in_(kinds))
    yield from _rows(db, query.order_by(Event.id))


def _sales(db: Session, ids: Sequence[int]) -> Iterator[dict[str, Any]]:
    for row in _events(db, ids, SALE_KINDS, exclude=False):
        payload = row["payload"] if isinstance(row["payload"], dict) else {}
        yield {
            "event": row["id"],
            "kind": row["kind"],
            "source": row["source"],
            "store_id": row["store_id"],
            "observed_at": row["observed_at"],
            "receipt_no": payload.get("receipt_no"),
            "order_no": payload.get("order_no"),
            "total": payload.get("total"),
            "items": payload.get("items", []),
        }


def _online_orders(db: Session, ids: Sequence[int]) -> Iterator[dict[str, Any]]:
    query = (
        select(
            OnlineOrder.device_id.label("source"),
            OnlineOrder.order_no,
            OnlineOrder.observed_at,
            OnlineOrder.total,
            OnlineOrder.status,
            OnlineOrder.status_at,
        )
        .where(OnlineOrder.event_pk.in_(_event_pks(db, ids)))
        .order_by(OnlineOrder.id)
    )
    yield from _rows(db, query)


def write(db: Session, customer_id: int, out: TextIO, *, now: datetime) -> Written:
    """Write the document about ``customer_id`` (a live or erased customer) to ``out``."""
    ids = customers_of(db, customer_id)
    doc = _Document(out)
    erasure = db.scalar(select(Erasure).where(Erasure.customer_id == customer_id))
    doc.field("format", FORMAT)
    doc.field("version", VERSION)
    doc.field("customer_id", customer_id)
    doc.field("exported_at", now)
    doc.field("erased_at", erasure.erased_at if erasure is not None else None)
    doc.array(
        "identifiers",
        _rows(
            db,
            select(
                Identifier.kind.label("type"),
                Identifier.value,
                Identifier.state,
                Identifier.created_at.label("first_seen_at"),
                Identifier.last_seen_at,
            )
            .where(Identifier.customer_id.in_(ids))
            .order_by(Identifier.id),
        ),
    )
    doc.array(
        "golden_record",
        _rows(
            db,
            select(
                GoldenAttribute.attribute,
                GoldenAttribute.value,
                GoldenAttribute.source,
                GoldenAttribute.verified,
                GoldenAttribute.observed_at,
            )
            .where(GoldenAttribute.customer_id.in_(ids))
            .order_by(GoldenAttribute.attribute),
        ),
    )
    doc.array(
        "attribute_observations",
        _rows(
            db,
            select(
                AttributeObservation.attribute,
                AttributeObservation.value,
                AttributeObservation.source,
                AttributeObservation.verified,
                AttributeObservation.observed_at,
                AttributeObservation.event_pk.label("event"),
            )
            .where(AttributeObservation.customer_id.in_(ids))
            .order_by(AttributeObservation.id),
        ),
    )
    doc.array(
        "consents",
        _rows(
            db,
            select(
                ConsentDecision.purpose,
                ConsentDecision.channel,
                ConsentDecision.granted,
                ConsentDecision.observed_at,
                ConsentDecision.recorded_at,
                ConsentDecision.source,
                ConsentDecision.notice_version,
                ConsentDecision.scope,
                ConsentDecision.event_pk.label("event"),
            )
            .where(ConsentDecision.customer_id.in_(ids))
            .order_by(ConsentDecision.observed_at, ConsentDecision.id),
        ),
    )
    stats = db.execute(select(CustomerStats).where(CustomerStats.customer_id == customer_id)).scalar_one_or_none()
    doc.field(
        "statistics",
        {c.name: getattr(stats, c.key) for c in CustomerStats.__table__.columns if c.name != "customer_id"}
        if stats is not None
        else None,
    )
    doc.array(
        "tags",
        _rows(
            db,
            select(CustomerTag.tag, CustomerTag.value, CustomerTag.inputs.label("why"), CustomerTag.computed_at).where(
                CustomerTag.customer_id.in_(ids)
            ),
        ),
    )
    doc.array(
        "segments",
        _rows(
            db,
            select(Segment.name, Segment.description, SegmentMember.entered_at)
            .join(Segment, Segment.id == SegmentMember.segment_id)
            .where(SegmentMember.customer_id.in_(ids)),
        ),
    )
    doc.array(
        "segment_history",
        _rows(
            db,
            select(Segment.name, SegmentMembershipEvent.change, SegmentMembershipEvent.at)
            .join(Segment, Segment.id == SegmentMembershipEvent.segment_id)
            .where(SegmentMembershipEvent.customer_id.in_(ids))
            .order_by(SegmentMembershipEvent.id),
        ),
    )
    doc.array(
        "triggers",
        _rows(
            db,
            select(
                Trigger.name.label("trigger"),
                Trigger.kind,
                TriggerOccasion.occasion,
                TriggerOccasion.grp.label("group"),
                TriggerOccasion.fired_at,
            )
            .join(Trigger, Trigger.id == TriggerOccasion.trigger_id)
            .where(TriggerOccasion.customer_id.in_(ids))
            .order_by(TriggerOccasion.id),
        ),
    )
    member_ids = select(Identifier.value).where(Identifier.customer_id.in_(ids), Identifier.kind == "member_id")
    issued = select(TriggerCoupon.serial).where(TriggerCoupon.customer_id.in_(ids))
    doc.array(
        "coupons",
        _rows(
            db,
            select(
                CouponCampaign.name.label("campaign"),
                CouponCampaign.value,
                CouponCode.serial,
                CouponCode.issued_at,
                CouponCode.revoked_at,
                CouponRedemption.observed_at.label("redeemed_at"),
                CouponRedemption.store_id.label("redeemed_in"),
            )
            .join(CouponCampaign, CouponCampaign.id == CouponCode.campaign_id)
            .outerjoin(CouponRedemption, CouponRedemption.serial == CouponCode.serial)
            .where(CouponCode.member_id.in_(member_ids) | CouponCode.serial.in_(issued))
            .order_by(CouponCode.serial),
        ),
    )
    doc.array(
        "notes",
        _rows(
            db,
            select(CustomerNote.created_at, CustomerNote.author, CustomerNote.text)
            .where(CustomerNote.customer_id.in_(ids))
            .order_by(CustomerNote.id),
        ),
    )
    doc.array(
        "member_keys",
        _rows(
            db,
            select(
                MemberKey.member_id,
                MemberKey.fingerprint,
                MemberKey.valid_from,
                MemberKey.valid_until,
                MemberKey.revoked_at,
            )
            .where(MemberKey.member_id.in_(member_ids))
            .order_by(MemberKey.id),
        ),
    )
    doc.array(
        "member_scans",
        _rows(
            db,
            select(MemberScan.store_id, MemberScan.member_id, MemberScan.observed_at, MemberScan.flag)
            .where(MemberScan.customer_id.in_(ids))
            .order_by(MemberScan.id),
        ),
    )
    doc.array(
        "visits",
        _rows(
            db,
            select(
                PresenceVisit.store_id,
                PresenceVisit.medium,
                PresenceVisit.started_at,
                PresenceVisit.ended_at,
                PresenceVisit.dwell_s,
                PresenceVisit.zones,
            )
            .where(PresenceVisit.customer_id.in_(ids))
            .order_by(PresenceVisit.started_at),
        ),
    )
    doc.array("sales", _sales(db, ids))
    doc.array("online_orders", _online_orders(db, ids))
    doc.array(
        "till_receipts",
        _rows(
            db,
            select(Receipt.store_id, Receipt.receipt_no, Receipt.total, Receipt.observed_at, Receipt.flag)
            .where(Receipt.customer_id.in_(ids))
            .order_by(Receipt.id),
        ),
    )
    doc.array("events", _events(db, ids, None, exclude=False))
    doc.close()
    return Written(doc.counts)


def export_file(db: Session, customer_id: int, path: Path, *, now: datetime) -> Written:
    """Write the document to ``path``, owner-only, moved into place once whole (:func:`open_private`)."""
    with open_private(path) as out:
        return write(db, customer_id, out, now=now)
