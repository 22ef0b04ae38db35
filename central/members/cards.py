"""Member cards: the ``member_cards`` document each store's cashier panel shows a scanned member from.

A store's members are the customers holding a member id who bought at the store (``customer_stores``)
or had their code scanned there (``member_scans``) within ``members.cards_days`` days, newest first,
at most :data:`MAX_CARDS`. Each card holds only what a cashier may see, masked here at central so the
store PC never receives a full name or phone::

    {"members": {"M1001": {"name": "张*", "phone": "138****5678", "tier": "loyal",
                           "coupons": [{"title": "double-11", "value": "10.00", "hint": "…7Q2X",
                                        "serial": 1042, "campaign": 7}]}}}

``tier`` is the member's ``value_tier`` tag, only while their profiling consent holds (empty
otherwise). ``coupons`` are the member's codes of campaigns running now at this store, not revoked
and not yet redeemed at central, whether the member claimed them (by member id) or a trigger issued
them to the customer (a birthday or win-back coupon): a title and the code's last four characters,
never the code (the serial lets the till leave out the codes it redeemed itself). The hourly ``member_cards`` job
publishes a store's document only when its content changed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, or_, select, union_all
from sqlalchemy.orm import Session

from central.campaigns import coupons
from central.campaigns.coupon_models import CouponCampaign, CouponCode, CouponRedemption
from central.campaigns.models import TriggerCoupon, TriggerOccasion
from central.customers import consent_gate
from central.customers.models import CustomerStore, CustomerTag
from central.fleet import downlink
from central.fleet.models import DownlinkDocument
from central.identity.models import LINKED, Customer, GoldenAttribute, Identifier
from central.members.models import MemberScan
from central.models import table
from shared.masking import mask_name, mask_phone

DOCUMENT = "member_cards"
MAX_CARDS = 5_000  # per store: the document stays well under the downlink's 1 MiB
HINT_CHARS = 4
_CHUNK = 500
_identifiers = table(Identifier)
_customers = table(Customer)
_stores = table(CustomerStore)
_scans = table(MemberScan)
_golden = table(GoldenAttribute)
_tags = table(CustomerTag)
_campaigns = table(CouponCampaign)
_codes = table(CouponCode)
_redemptions = table(CouponRedemption)
_trigger_coupons = table(TriggerCoupon)
_occasions = table(TriggerOccasion)
_docs = table(DownlinkDocument)


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def store_members(db: Session, since: datetime) -> dict[str, list[tuple[str, int]]]:
    """``store id -> [(member id, live customer id)]`` of members seen there since ``since``, newest first."""
    live = func.coalesce(_customers.c.merged_into, _customers.c.id)
    members = (
        select(_identifiers.c.value.label("member_id"), live.label("customer_id"))
        .join(_customers, _customers.c.id == _identifiers.c.customer_id)
        .where(_identifiers.c.kind == "member_id")
        .subquery()
    )
    bought = select(
        members.c.member_id, members.c.customer_id, _stores.c.store_id, _stores.c.last_purchase_at.label("at")
    ).join(_stores, _stores.c.customer_id == members.c.customer_id)
    scanned = select(
        members.c.member_id, members.c.customer_id, _scans.c.store_id, _scans.c.observed_at.label("at")
    ).join(_scans, _scans.c.member_id == members.c.member_id)
    seen = union_all(
        bought.where(_stores.c.last_purchase_at >= since), scanned.where(_scans.c.observed_at >= since)
    ).subquery()
    rows = db.execute(
        select(seen.c.store_id, seen.c.member_id, seen.c.customer_id, func.max(seen.c.at).label("at"))
        .group_by(seen.c.store_id, seen.c.member_id, seen.c.customer_id)
        .order_by(seen.c.store_id, func.max(seen.c.at).desc(), seen.c.member_id)
    ).all()
    out: dict[str, list[tuple[str, int]]] = {}
    for row in rows:
        listed = out.setdefault(row.store_id, [])
        if len(listed) < MAX_CARDS:
            listed.append((row.member_id, int(row.customer_id)))
    return out


def _profiles(db: Session, customers: Sequence[int], now: datetime) -> dict[int, dict[str, str]]:
    """Masked name and phone, and the value tier where profiling consent holds, of live customers."""
    out: dict[int, dict[str, str]] = {c: {"name": "", "phone": "", "tier": ""} for c in customers}
    live = func.coalesce(_customers.c.merged_into, _customers.c.id)
    for chunk in _chunks(sorted(customers)):
        names = db.execute(
            select(_golden.c.customer_id, _golden.c.value).where(
                _golden.c.attribute == "name", _golden.c.customer_id.in_(chunk)
            )
        )
        for customer_id, value in names:
            out[customer_id]["name"] = mask_name(value)
        phones = db.execute(
            select(live, _identifiers.c.value)
            .join(_customers, _customers.c.id == _identifiers.c.customer_id)
            .where(_identifiers.c.kind == "phone", _identifiers.c.state == LINKED, live.in_(chunk))
            .order_by(_identifiers.c.last_seen_at, _identifiers.c.id)
        )
        for customer_id, value in phones:  # the most recently seen phone wins
            out[int(customer_id)]["phone"] = mask_phone(value)
        allowed = consent_gate.consented("profiling", None, consent_gate.earliest_today(now), among=list(chunk))
        tiers = db.execute(
            select(_tags.c.customer_id, _tags.c.value).where(
                _tags.c.tag == "value_tier", _tags.c.customer_id.in_(chunk), _tags.c.customer_id.in_(allowed)
            )
        )
        for customer_id, value in tiers:
            out[customer_id]["tier"] = value
    return out


def _coupons(
    db: Session, members: Sequence[tuple[str, int]], now: datetime, secret: bytes
) -> dict[int, list[dict[str, Any]]]:
    """Each live customer's usable codes (with the campaign's ``stores``), oldest campaign first: those
    claimed by their member id and those a trigger issued to them (a merge brings the merged-away
    customer's codes to the survivor)."""
    signer = coupons.code_signer(secret)
    owner_of = dict(members)
    found: dict[int, dict[int, Any]] = {}
    usable = (
        select(_codes.c.serial, _campaigns.c.id, _campaigns.c.name, _campaigns.c.value, _campaigns.c.stores)
        .join(_campaigns, _campaigns.c.id == _codes.c.campaign_id)
        .where(
            _codes.c.revoked_at.is_(None),
            _codes.c.serial.not_in(select(_redemptions.c.serial)),
            _campaigns.c.valid_from <= now,
            _campaigns.c.valid_to > now,
        )
    )
    for chunk in _chunks(sorted(owner_of)):
        claimed = usable.add_columns(_codes.c.member_id).where(_codes.c.member_id.in_(chunk))
        for r in db.execute(claimed):
            found.setdefault(owner_of[r.member_id], {})[int(r.serial)] = r
    live = func.coalesce(_customers.c.merged_into, _customers.c.id)
    for chunk in _chunks(sorted(set(owner_of.values()))):
        # Through the occasions, whose customer_id is indexed (trigger_coupons' is not).
        issued = (
            usable.add_columns(live.label("customer_id"))
            .join(_trigger_coupons, _trigger_coupons.c.serial == _codes.c.serial)
            .join(_occasions, _occasions.c.id == _trigger_coupons.c.occasion_id)
            .join(_customers, _customers.c.id == _occasions.c.customer_id)
            .where(or_(_customers.c.id.in_(chunk), _customers.c.merged_into.in_(chunk)))
        )
        for r in db.execute(issued):
            found.setdefault(int(r.customer_id), {})[int(r.serial)] = r
    out: dict[int, list[dict[str, Any]]] = {}
    for customer_id, codes in found.items():
        out[customer_id] = [
            {
                "title": r.name,
                "value": f"{Decimal(r.value):.2f}",
                "hint": signer.make(r.id, int(r.serial))[-HINT_CHARS:],
                "serial": int(r.serial),
                "campaign": r.id,
                "stores": r.stores,
            }
            for r in sorted(codes.values(), key=lambda r: (r.id, r.serial))
        ]
    return out


def documents(db: Session, *, now: datetime, days: float, secret: bytes) -> dict[str, dict[str, Any]]:
    """The ``member_cards`` body of every store with members seen in the last ``days`` days."""
    by_store = store_members(db, now - timedelta(days=days))
    customers = sorted({c for listed in by_store.values() for _, c in listed})
    profiles = _profiles(db, customers, now)
    held = _coupons(db, sorted({pair for listed in by_store.values() for pair in listed}), now, secret)
    out: dict[str, dict[str, Any]] = {}
    for store_id, listed in by_store.items():
        cards: dict[str, Any] = {}
        for member_id, customer_id in listed:
            usable = [
                {k: v for k, v in c.items() if k != "stores"}
                for c in held.get(customer_id, ())
                if c["stores"] is None or store_id in c["stores"]
            ]
            cards[member_id] = {**profiles[customer_id], "coupons": usable}
        out[store_id] = {"members": cards}
    return out


def _published(db: Session) -> dict[str, Any]:
    rows = db.execute(select(_docs.c.store_id, _docs.c.body).where(_docs.c.name == DOCUMENT))
    return {store_id: body for store_id, body in rows if store_id != downlink.ALL_STORES}


def publish(db: Session, secret: bytes, *, now: datetime, days: float, actor: str) -> list[str]:
    """Publish each store's ``member_cards`` where it changed (emptied once none are left); the caller commits."""
    bodies = documents(db, now=now, days=days, secret=secret)
    current = _published(db)
    changed = []
    for store_id in sorted(set(bodies) | set(current)):
        body = bodies.get(store_id, {"members": {}})
        if current.get(store_id) == body:
            continue
        downlink.publish(db, store_id, DOCUMENT, body, now=now, actor=actor)
        changed.append(store_id)
    return changed
