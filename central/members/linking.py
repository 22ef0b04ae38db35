"""Member scans attached to sales: the receipt a member's code was scanned for gets that member.

A cashier scans the member's code while the sale is open, and the receipt prints when it is paid,
so the sale a scan belongs to can only be the first sale (a receipt with a positive total, not a
reprint) the same register (the same agent) printed after the scan, within ``members.link_window``
seconds (120 by default: a checkout, not a coupon check followed by the next customer). Even that
sale is not the member's when another member's code was scanned in between, when another scan
took it, or when it names another customer; the scan then links nothing rather than give the sale
to the wrong person. A scan within ``LATE_SCAN`` after a sale no scan claimed may be that
customer's own code shown after paying: it is flagged ``doubtful`` and links nothing (decision
0086). Refunds and voids never take a scan. Scans and receipts may reach central in either order
(or the same batch, after days offline), so every batch that brings either tries to pair the
unpaired ones of its device in that time range.

A code accepted twice (two stores, or two registers, each offline) is flagged ``code_reused`` on
every use, and the uses that arrive after the first link nothing: only one of them can be the
member, and a person decides which. A scan whose key central never certified for that member, or
revoked, is flagged ``unknown_key`` and links nothing either (a store PC cannot vouch for a member
on its own word). The recent digests are published to every store as the downlink document ``member_codes_used``, so a
store that synced since then refuses the second use outright (see shared.member_code).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from central.customers import purchases
from central.customers.models import Receipt
from central.fleet import downlink
from central.members.codes import USED_DOCUMENT
from central.members.models import MemberKey, MemberScan
from central.models import table
from shared.member_code import SKEW_STEPS, STEP_SECONDS

ACCEPTED = "accepted"
REUSED = "code_reused"
UNKNOWN_KEY = "unknown_key"
DOUBTFUL = "doubtful"
# A scan this soon after a sale no scan claimed may be that customer's code shown after paying.
LATE_SCAN = timedelta(seconds=20)
# How long a used code stays on the stores' list: its validity (±skew steps) with a margin for clocks.
USED_RETENTION = timedelta(seconds=STEP_SECONDS * (2 * SKEW_STEPS + 2) * 2)
_scans = table(MemberScan)
_keys = table(MemberKey)
_receipts = table(Receipt)


@dataclass(frozen=True, slots=True)
class ScanRow:
    """One freshly stored, accepted ``scan.member`` event and the customer identity resolution gave it."""

    event_pk: int
    store_id: str
    observed_at: datetime
    payload: dict[str, Any]
    customer_id: int | None


def is_accepted_scan(kind: str, payload: dict[str, Any]) -> bool:
    """True for a ``scan.member`` the store accepted (a refused one names no member)."""
    return kind == "scan.member" and payload.get("result") == ACCEPTED and isinstance(payload.get("member_id"), str)


def record(
    db: Session,
    device_id: str,
    scans: Sequence[ScanRow],
    receipt_times: Sequence[datetime],
    *,
    now: datetime,
    window: float,
) -> int:
    """Store the batch's accepted member scans, pair scans and receipts of the device; the number linked."""
    if scans:
        _insert(db, device_id, scans)
        _publish_used(db, now)
    times = [s.observed_at for s in scans] + list(receipt_times)
    if not times:
        return 0
    span = timedelta(seconds=window)
    return _pair(db, device_id, min(times) - span, max(times) + span, span)


def _insert(db: Session, device_id: str, scans: Sequence[ScanRow]) -> None:
    digests = sorted({_digest(s.payload) for s in scans})
    earlier = set(db.scalars(select(_scans.c.code_digest).where(_scans.c.code_digest.in_(digests))).all())
    fingerprints = sorted({str(s.payload.get("key", "")) for s in scans})
    certified = {
        (r.fingerprint, r.member_id)
        for r in db.execute(
            select(_keys.c.fingerprint, _keys.c.member_id).where(
                _keys.c.fingerprint.in_(fingerprints), _keys.c.revoked_at.is_(None)
            )
        )
    }
    seen: set[str] = set()
    rows = []
    for s in scans:
        digest = _digest(s.payload)
        reused = digest in earlier or digest in seen
        known = (str(s.payload.get("key", "")), s.payload["member_id"]) in certified
        seen.add(digest)
        rows.append(
            {
                "event_pk": s.event_pk,
                "device_id": device_id,
                "store_id": s.store_id,
                "register": str(s.payload.get("register", ""))[:32],
                "member_id": s.payload["member_id"][:64],
                "code_digest": digest,
                "step": int(s.payload.get("step") or 0),
                "observed_at": s.observed_at,
                "customer_id": s.customer_id,
                "flag": REUSED if reused else (None if known else UNKNOWN_KEY),
            }
        )
    db.execute(_scans.insert(), rows)
    reused_digests = [r["code_digest"] for r in rows if r["flag"] == REUSED]
    if reused_digests:
        db.execute(update(_scans).where(_scans.c.code_digest.in_(reused_digests)).values(flag=REUSED))


def _digest(payload: dict[str, Any]) -> str:
    # The agent sends the code's digest as "digest:<hex>" in the scan's code field.
    return str(payload.get("code", "")).removeprefix("digest:")[:64]


def _publish_used(db: Session, now: datetime) -> None:
    recent = db.execute(
        select(_scans.c.code_digest, _scans.c.store_id, _scans.c.step)
        .where(_scans.c.observed_at >= now - USED_RETENTION)
        .order_by(_scans.c.id)
    ).all()
    body = {"used": [{"digest": r.code_digest, "store": r.store_id, "step": r.step} for r in recent]}
    downlink.publish(db, downlink.ALL_STORES, USED_DOCUMENT, body, now=now, actor="ingest")


def _pair(db: Session, device_id: str, start: datetime, end: datetime, span: timedelta) -> int:
    scans = db.execute(
        select(_scans.c.id, _scans.c.observed_at, _scans.c.customer_id, _scans.c.receipt_id, _scans.c.flag)
        .where(_scans.c.device_id == device_id, _scans.c.observed_at.between(start - LATE_SCAN, end + span))
        .order_by(_scans.c.observed_at, _scans.c.id)
    ).all()
    waiting = [
        s
        for s in scans
        if s.receipt_id is None and s.flag is None and s.customer_id is not None and start <= s.observed_at <= end
    ]
    if not waiting:
        return 0
    claimed = {s.receipt_id for s in scans if s.receipt_id is not None}
    # Sales only: a refund or void (a total of 0 or less) and a reprint are no one's purchase.
    receipts = db.execute(
        select(_receipts.c.id, _receipts.c.observed_at, _receipts.c.customer_id, _receipts.c.total)
        .where(
            _receipts.c.device_id == device_id,
            _receipts.c.reprint_of.is_(None),
            _receipts.c.total > 0,
            _receipts.c.observed_at.between(start - LATE_SCAN, end + span),
        )
        .order_by(_receipts.c.observed_at, _receipts.c.id)
    ).all()
    stats: dict[int, purchases.StatRow] = {}
    linked = 0
    for scan in waiting:
        receipt, doubtful = _receipt_of(scan, scans, receipts, claimed, span)
        if doubtful:
            db.execute(update(_scans).where(_scans.c.id == scan.id).values(flag=DOUBTFUL))
        if receipt is None:
            continue
        claimed.add(receipt.id)
        linked += 1
        db.execute(update(_scans).where(_scans.c.id == scan.id).values(receipt_id=receipt.id))
        if receipt.customer_id is None:
            db.execute(update(_receipts).where(_receipts.c.id == receipt.id).values(customer_id=scan.customer_id))
            cid, at = scan.customer_id, receipt.observed_at
            _, n, spent, first, last = stats.get(cid, (cid, 0, Decimal(0), at, at))
            stats[cid] = (cid, n + 1, spent + Decimal(receipt.total), min(first, at), max(last, at))
    purchases.add_to_customers(db.connection(), list(stats.values()))
    return linked


def _receipt_of(
    scan: Any, scans: Sequence[Any], receipts: Sequence[Any], claimed: set[int], span: timedelta
) -> tuple[Any | None, bool]:
    """The sale ``scan`` belongs to, if one plausibly does, and whether the scan is doubtful.

    Only the register's first sale printed after the scan (within the window) can be the member's.
    It is not when another member's code was scanned at the register in between, when another scan
    took it, or when it names another customer. A scan that follows within ``LATE_SCAN`` a sale no
    one claimed may be that customer's own code shown late: doubtful, it links nothing.
    """
    before = [r for r in receipts if scan.observed_at - LATE_SCAN <= r.observed_at < scan.observed_at]
    if any(r.customer_id is None and r.id not in claimed for r in before):
        return None, True
    first = next((r for r in receipts if r.observed_at >= scan.observed_at), None)
    if first is None or first.observed_at > scan.observed_at + span or first.id in claimed:
        return None, False
    if first.customer_id not in (None, scan.customer_id):
        return None, False
    between = (
        s
        for s in scans
        if s.id != scan.id
        and scan.observed_at <= s.observed_at <= first.observed_at
        and (s.observed_at, s.id) > (scan.observed_at, scan.id)
        and s.customer_id != scan.customer_id
    )
    if next(between, None) is not None:
        return None, False
    return first, False
