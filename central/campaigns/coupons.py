"""Coupon campaigns at central: create them, issue signed codes, publish the ``coupons`` downlink document.

A campaign has a value, a validity window, a total ``max_redemptions`` that central enforces at sync,
and a per-store ``offline_budget``: how many of its codes one store may redeem on its own say-so
(see docs/decisions/0053-coupons.md). Codes are signed with central's coupon key, derived from
``secret.key`` like the downlink key, so every central instance signs alike; agents hold only the
public half, from the ``coupons`` document::

    {"format": 1, "key": "<base64 Ed25519 public key>",
     "campaigns": [{"id": 7, "name": "double-11", "value": "10.00", "valid_from": "...Z",
                    "valid_to": "...Z", "offline_budget": 50, "stores": null}],
     "revoked": [1042, 1043]}

The document is republished whenever a campaign is created or a code revoked.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import case, func, literal, select, update
from sqlalchemy.orm import Session

from central import audit, bulk
from central.campaigns.coupon_models import CouponCampaign, CouponCode
from central.fleet import downlink
from central.models import UTCDateTime, table
from central.params import id_limit, whole_number
from central.stores import known_stores, unknown_stores_message
from shared import coupon_code
from shared.crypto import b64, derive_key, public_key_of
from shared.masking import mask_identifier
from shared.wire import format_time

DOCUMENT = "coupons"
FORMAT = 1
# Ended campaigns stay in the document this long, so a till says "expired" rather than "unknown".
KEEP_ENDED = timedelta(days=30)
MAX_ISSUE = 100_000
MAX_VALUE = 10**9  # a coupon's value is below this (999,999,999.99 at most)
# Members one claim request may name (a member app's backend handing a campaign to many members).
MAX_CLAIMS = 1_000
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")
STORE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,32}\Z")
_campaigns = table(CouponCampaign)
_codes = table(CouponCode)


class CouponError(ValueError):
    """A request central refuses; the message says what to change.

    ``reason`` is a stable code for the refusal and ``field`` the request field at fault, if one:
    the console words the refusal in the page's language from them.
    """

    def __init__(self, message: str, reason: str = "refused", field: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.field = field


class NotFound(CouponError):
    """No such campaign, code or conflict."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "not_found")


def ended_before_start(valid_from: datetime, valid_to: datetime) -> bool:
    """Whether a campaign's end is not after its start: no code of it is valid at any moment.

    A campaign ended before it started has its start moved to its end (:func:`end_campaign`); one
    saved before an end had to be after its start may still hold an end before its start. Both read
    as ended at their end: their times are kept as stored, flagged (``ended_before_start``), never
    running and issuing no code, whenever the end is.
    """
    return valid_to <= valid_from


@dataclass(frozen=True, slots=True)
class Campaign:
    """One campaign as listed."""

    id: int
    name: str
    value: Decimal
    valid_from: datetime
    valid_to: datetime
    max_redemptions: int
    redeemed: int
    offline_budget: int
    stores: list[str] | None
    issued: int = 0

    @property
    def ended_before_start(self) -> bool:
        """Whether its end is not after its start: see :func:`ended_before_start`."""
        return ended_before_start(self.valid_from, self.valid_to)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "value": f"{self.value:.2f}",
            "valid_from": format_time(self.valid_from),
            "valid_to": format_time(self.valid_to),
            "ended_before_start": self.ended_before_start,
            "max_redemptions": self.max_redemptions,
            "redeemed": self.redeemed,
            "offline_budget": self.offline_budget,
            "stores": self.stores,
            "issued": self.issued,
        }


@dataclass(frozen=True, slots=True)
class Issued:
    """A code handed out: its serial, the text to print as a QR code, and the member (if any)."""

    serial: int
    code: str
    member_id: str | None

    def to_json(self) -> dict[str, Any]:
        return {"serial": self.serial, "code": self.code, "member_id": self.member_id}


@functools.lru_cache(maxsize=4)
def signing_key(secret: bytes) -> bytes:
    """Central's Ed25519 private key for coupon codes, derived from ``secret.key``."""
    return derive_key(secret, "coupon-signing-ed25519")


@functools.lru_cache(maxsize=4)
def public_key(secret: bytes) -> bytes:
    """The public half tills verify codes with."""
    return public_key_of(signing_key(secret))


@functools.lru_cache(maxsize=4)
def code_signer(secret: bytes) -> coupon_code.CodeSigner:
    """Central's coupon key loaded once: it signs codes at issue and recognises them at redemption."""
    return coupon_code.CodeSigner(signing_key(secret))


def parse_value(text: str) -> Decimal:
    """A coupon value such as ``10`` or ``12.50`` (positive, below :data:`MAX_VALUE`, at most 2 decimals)."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise CouponError(f"value {text!r} is not an amount such as 10.00", "bad_amount", "value") from None
    if value.is_finite() and value >= MAX_VALUE:
        raise CouponError(f"value {text!r} must be below {MAX_VALUE:,}", "amount_too_large", "value")
    # The bound first: quantizing a number of more digits than the context holds raises.
    if not value.is_finite() or value <= 0 or value != value.quantize(Decimal("0.01")):
        raise CouponError(f"value {text!r} must be a positive amount with at most 2 decimals", "bad_amount", "value")
    return value


def parse_time(key: str, text: str) -> datetime:
    """An ISO 8601 time with a UTC offset for field ``key``; CouponError says what is expected."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CouponError(f"{key} must be an ISO 8601 time such as 2026-12-01T00:00+08:00", "bad_time", key) from None
    if moment.tzinfo is None:
        raise CouponError(f"{key} needs a UTC offset (+08:00 or Z)", "no_offset", key)
    return moment


def create_campaign(
    db: Session,
    *,
    name: str,
    value: Decimal,
    valid_from: datetime,
    valid_to: datetime,
    max_redemptions: int,
    offline_budget: int,
    stores: list[str] | None,
    now: datetime,
    actor: str,
    secret: bytes,
) -> Campaign:
    """Create a campaign and publish the coupons document; the caller commits.

    Refused (CouponError) when its validity is over by ``now`` (no till could ever redeem a code of
    it), or when it names a store central does not know (:func:`central.stores.known_stores`: a
    store's first enrollment token makes it known, so a campaign may name a store opening later).
    """
    if not NAME_RE.match(name):
        raise CouponError(
            f"name {name!r} must be 1-128 characters of A-Z, a-z, 0-9, _ . - (no spaces)", "bad_name", "name"
        )
    if valid_to <= valid_from:
        raise CouponError("valid_to must be after valid_from", "bad_period", "valid_to")
    if valid_to <= now:
        raise CouponError(
            f"valid_to {format_time(valid_to)} is not after now ({format_time(now)}): the campaign would be over"
            " before it exists; give an end in the future",
            "period_over",
            "valid_to",
        )
    if not 1 <= max_redemptions <= 10**12:
        raise CouponError("max_redemptions must be between 1 and 10^12", "bad_max_redemptions", "max_redemptions")
    if not 0 <= offline_budget <= 10**6:
        raise CouponError(
            "offline_budget (a store's offline redemptions) must be between 0 and 1,000,000",
            "bad_offline_budget",
            "offline_budget",
        )
    for store in stores or ():
        if not STORE_RE.match(store):
            expected = "1-32 characters of A-Z, a-z, 0-9, _ . -"
            raise CouponError(f"store id {store!r} must be {expected}", "bad_store", "stores")
    unknown = sorted(set(stores or ()) - known_stores(db, stores or ()))
    if unknown:
        raise CouponError(unknown_stores_message(unknown), "unknown_store", "stores")
    if db.scalar(select(_campaigns.c.id).where(_campaigns.c.name == name)) is not None:
        raise CouponError(f"a campaign named {name!r} exists already (coupons list)", "exists", "name")
    values = {
        "name": name,
        "value": value,
        "valid_from": valid_from,
        "valid_to": valid_to,
        "max_redemptions": max_redemptions,
        "redeemed": 0,
        "offline_budget": offline_budget,
        "stores": sorted(set(stores)) if stores else None,
        "created_at": now,
        "created_by": actor[:128],
    }
    campaign_id = db.execute(_campaigns.insert().values(**values).returning(_campaigns.c.id)).scalar_one()
    audit.record(db, at=now, actor=actor, action="coupons.create", subject=name, detail={"id": campaign_id})
    publish_document(db, now=now, actor=actor, secret=secret)
    return get_campaign(db, str(campaign_id))


def end_campaign(db: Session, ref: str, *, now: datetime, actor: str, secret: bytes) -> bool:
    """End a campaign now: no code of it is issued or redeemed after ``now``; the caller commits.

    Its end moves to ``now`` and the coupons document is republished, so tills refuse its codes
    ("expired") from their next sync. A campaign that had not started yet ends before it starts:
    its start moves to ``now`` as well (its window empty, never an end before its start), and the
    audit row keeps the start it was to have. False when the campaign had ended already.
    """
    row = _row(db, ref)
    start = _campaigns.c.valid_from
    done = db.execute(
        update(_campaigns)
        .where(_campaigns.c.id == row.id, _campaigns.c.valid_to > now)
        .values(valid_to=now, valid_from=case((start > now, literal(now, UTCDateTime)), else_=start))
        .returning(_campaigns.c.id)
    ).first()
    if done is None:
        return False
    detail: dict[str, Any] = {"id": row.id}
    if row.valid_from > now:
        detail["valid_from"] = format_time(row.valid_from)
    audit.record(db, at=now, actor=actor, action="coupons.end", subject=row.name, detail=detail)
    publish_document(db, now=now, actor=actor, secret=secret)
    return True


def _campaign(row: Any, issued: int = 0) -> Campaign:
    return Campaign(
        row.id,
        row.name,
        Decimal(row.value),
        row.valid_from,
        row.valid_to,
        row.max_redemptions,
        row.redeemed,
        row.offline_budget,
        row.stores,
        issued,
    )


def list_campaigns(db: Session) -> list[Campaign]:
    """Every campaign with how many codes were issued, oldest first."""
    counts = db.execute(select(_codes.c.campaign_id, func.count()).group_by(_codes.c.campaign_id))
    issued: dict[int, int] = {campaign_id: n for campaign_id, n in counts}
    rows = db.execute(select(_campaigns).order_by(_campaigns.c.id))
    return [_campaign(r, issued.get(r.id, 0)) for r in rows]


def running_names(db: Session, now: datetime) -> list[str]:
    """The names of the campaigns that can still issue codes at ``now``, by name (no code is counted)."""
    running = (_campaigns.c.valid_to > now, _campaigns.c.valid_to > _campaigns.c.valid_from)
    return list(db.scalars(select(_campaigns.c.name).where(*running).order_by(_campaigns.c.name)))


def _row(db: Session, ref: str) -> Any:
    if ref.isascii() and ref.isdigit():
        # An id past what the column holds names no campaign (and PostgreSQL would refuse to bind it).
        number = whole_number(ref, id_limit(CouponCampaign.id))
        row = None if number is None else db.execute(select(_campaigns).where(_campaigns.c.id == number)).first()
    else:
        row = db.execute(select(_campaigns).where(_campaigns.c.name == ref)).first()
    if row is None:
        raise NotFound(f"no coupon campaign {ref!r} (coupons list shows them)")
    return row


def get_campaign(db: Session, ref: str) -> Campaign:
    """A campaign by id or name, with its count of issued codes; NotFound otherwise."""
    row = _row(db, ref)
    issued = db.scalar(select(func.count()).select_from(_codes).where(_codes.c.campaign_id == row.id)) or 0
    return _campaign(row, issued)


def _code(secret: bytes, campaign: int, serial: int) -> str:
    return code_signer(secret).make(campaign, serial)


def issue_for_member(db: Session, ref: str, member_id: str, *, now: datetime, actor: str, secret: bytes) -> Issued:
    """The member's code for a campaign: claimed once, the same code on every later claim; the caller commits."""
    return issue_for_members(db, ref, [member_id], now=now, actor=actor, secret=secret)[0]


def issue_for_members(
    db: Session, ref: str, member_ids: list[str], *, now: datetime, actor: str, secret: bytes
) -> list[Issued]:
    """Each member's code for a campaign, in the order named, in one statement; the caller commits.

    A member who claimed before gets the same code again, so a claim may be retried safely. Audited
    as ``coupons.issue``: the member masked, or how many members a claim named.
    """
    if not 1 <= len(member_ids) <= MAX_CLAIMS:
        raise CouponError(f"a claim names 1 to {MAX_CLAIMS} members")
    if not all(1 <= len(m) <= 64 for m in member_ids):
        raise CouponError("a member id is 1 to 64 characters")
    campaign = _row(db, ref)
    if now > campaign.valid_to or ended_before_start(campaign.valid_from, campaign.valid_to):
        raise CouponError(f"campaign {campaign.name} ended at {format_time(campaign.valid_to)}")
    wanted = list(dict.fromkeys(member_ids))
    serials: dict[str, int] = {
        m: int(s)
        for s, m in bulk.insert(
            db.connection(),
            _codes,
            ("campaign_id", "member_id", "issued_at"),
            [(campaign.id, m, now) for m in wanted],
            returning=("serial", "member_id"),
            skip_conflicts_on=("campaign_id", "member_id"),
        )
    }
    earlier = [m for m in wanted if m not in serials]
    if earlier:
        found = db.execute(
            select(_codes.c.serial, _codes.c.member_id).where(
                _codes.c.campaign_id == campaign.id, _codes.c.member_id.in_(earlier)
            )
        )
        serials.update((m, int(s)) for s, m in found)
    named = {"member": mask_identifier("member_id", wanted[0])} if len(wanted) == 1 else {"members": len(wanted)}
    audit.record(
        db,
        at=now,
        actor=actor,
        action="coupons.issue",
        subject=campaign.name,
        detail={**named, "new": len(wanted) - len(earlier)},
    )
    signer = code_signer(secret)
    return [Issued(serials[m], signer.make(campaign.id, serials[m]), m) for m in member_ids]


def issue_anonymous(db: Session, ref: str, count: int, *, now: datetime, actor: str, secret: bytes) -> list[Issued]:
    """``count`` codes for nobody in particular (printed flyers); the caller commits."""
    if not 1 <= count <= MAX_ISSUE:
        raise CouponError(f"count must be between 1 and {MAX_ISSUE}")
    campaign = _row(db, ref)
    rows = bulk.insert(
        db.connection(), _codes, ("campaign_id", "issued_at"), [(campaign.id, now)] * count, returning=("serial",)
    )
    audit.record(db, at=now, actor=actor, action="coupons.issue", subject=campaign.name, detail={"count": count})
    return [Issued(int(s), _code(secret, campaign.id, int(s)), None) for (s,) in sorted(rows)]


def revoke(db: Session, serial: int, *, now: datetime, actor: str, secret: bytes) -> None:
    """Revoke one code everywhere (tills refuse it once they have the new document); the caller commits."""
    done = db.execute(
        update(_codes)
        .where(_codes.c.serial == serial, _codes.c.revoked_at.is_(None))
        .values(revoked_at=now)
        .returning(_codes.c.serial)
    ).first()
    if done is None:
        if db.scalar(select(_codes.c.serial).where(_codes.c.serial == serial)) is None:
            raise NotFound(f"no coupon code with serial {serial}")
        return
    audit.record(db, at=now, actor=actor, action="coupons.revoke", subject=str(serial))
    publish_document(db, now=now, actor=actor, secret=secret)


def document(db: Session, *, now: datetime, secret: bytes) -> dict[str, Any]:
    """The ``coupons`` document: current and recently ended campaigns, the key, revoked serials."""
    rows = db.execute(select(_campaigns).where(_campaigns.c.valid_to >= now - KEEP_ENDED).order_by(_campaigns.c.id))
    campaigns = [
        {
            "id": r.id,
            "name": r.name,
            "value": f"{Decimal(r.value):.2f}",
            "valid_from": format_time(r.valid_from),
            "valid_to": format_time(r.valid_to),
            "offline_budget": r.offline_budget,
            "stores": r.stores,
        }
        for r in rows
    ]
    ids = [c["id"] for c in campaigns]
    revoked = db.scalars(
        select(_codes.c.serial)
        .where(_codes.c.campaign_id.in_(ids), _codes.c.revoked_at.is_not(None))
        .order_by(_codes.c.serial)
    ).all()
    return {"format": FORMAT, "key": b64(public_key(secret)), "campaigns": campaigns, "revoked": list(revoked)}


def publish_document(db: Session, *, now: datetime, actor: str, secret: bytes) -> int:
    """Publish the coupons document to every store; return its downlink version."""
    return downlink.publish(
        db, downlink.ALL_STORES, DOCUMENT, document(db, now=now, secret=secret), now=now, actor=actor
    )
