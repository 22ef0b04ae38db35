"""Coupon redemptions at sync: each applied atomically, every one central cannot accept flagged for review.

A till redeems offline and sends a ``scan.coupon`` event with ``result: "accepted"``. Inside the
batch's transaction, central:

1. checks the code's signature again (a till's word is not proof: a till that knew the serials,
   which are sequential, could otherwise redeem codes it never saw) and that central issued it;
   central makes the code's deterministic signature again with its own key and compares, which
   costs a third of a verification (``shared.coupon_code.CodeSigner``);
2. claims each code with ``INSERT INTO coupon_redemptions ... ON CONFLICT (serial) DO NOTHING
   RETURNING serial``: of two tills that redeemed the same single-use code, exactly one row wins,
   whichever batch commits first (PostgreSQL makes the second wait on the unique index);
3. counts the claimed ones into their campaign with a conditional update
   (``SET redeemed = redeemed + n WHERE redeemed + n <= max_redemptions``); when the campaign has
   less room, it locks the row, takes what fits (earliest observed first) and marks the rest
   ``flagged``.

Everything not applied becomes a ``coupon_conflicts`` row (double_redemption, over_redemption,
forged, unknown_code, revoked, outside_validity) holding the event's payload beside the event
itself, which ingest stored as usual: nothing is dropped, nothing is accepted silently. Codes are
claimed in serial order and campaigns counted in id order, so two batches never wait on each other
in a cycle.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from central import bulk
from central.campaigns.coupon_models import CouponCampaign, CouponCode, CouponConflict, CouponRedemption
from central.models import table
from shared import coupon_code

APPLIED = "applied"
FLAGGED = "flagged"
_campaigns = table(CouponCampaign)
_codes = table(CouponCode)
_redemptions = table(CouponRedemption)
_conflicts = table(CouponConflict)
_REDEMPTION_COLUMNS = (
    "serial",
    "campaign_id",
    "event_pk",
    "device_id",
    "store_id",
    "observed_at",
    "applied_at",
    "status",
)
_CONFLICT_COLUMNS = (
    "kind",
    "campaign_id",
    "serial",
    "event_pk",
    "device_id",
    "store_id",
    "observed_at",
    "flagged_at",
    "detail",
    "payload",
)


@dataclass(frozen=True, slots=True)
class Checked:
    """A redeemed code after its signature check: the decoded code, or why it is forged."""

    code: coupon_code.CouponCode | None
    problem: str | None


def check_code(payload: dict[str, Any], key: coupon_code.CodeSigner | bytes) -> Checked:
    """Decode and check a redemption's code (pure CPU: done before the batch's transaction writes).

    ``key`` is central's code signer, or its public key alone (which checks the same codes, slower).
    """
    try:
        code = coupon_code.decode(str(payload.get("code", "")))
    except coupon_code.CouponFormatError as exc:
        return Checked(None, f"not a coupon code ({exc})")
    genuine = key.issued(code) if isinstance(key, coupon_code.CodeSigner) else code.verifies(key)
    if not genuine:
        return Checked(code, "the code is not signed by central's coupon key")
    return Checked(code, None)


@dataclass(frozen=True, slots=True)
class Redemption:
    """One freshly stored ``scan.coupon`` event that a till accepted, with its code checked."""

    event_pk: int
    store_id: str
    observed_at: datetime
    payload: dict[str, Any]
    checked: Checked


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one batch's redemptions came to."""

    applied: int
    flagged: int


def is_redemption(kind: str, payload: dict[str, Any]) -> bool:
    """True for a coupon scan the till accepted (refusals are kept as events and change nothing)."""
    return kind == "scan.coupon" and payload.get("result") == coupon_code.ACCEPTED


@dataclass(slots=True)
class _Batch:
    device_id: str
    now: datetime
    conflicts: list[tuple[Any, ...]]

    def flag(self, kind: str, r: Redemption, detail: str, campaign: int | None, serial: int | None) -> None:
        self.conflicts.append(
            (kind, campaign, serial, r.event_pk, self.device_id, r.store_id, r.observed_at, self.now, detail, r.payload)
        )


def apply(db: Session, device_id: str, redemptions: list[Redemption], *, now: datetime) -> Outcome:
    """Apply one batch's redemptions (codes checked by :func:`check_code`) inside its transaction."""
    batch = _Batch(device_id, now, [])
    decoded: dict[int, tuple[Redemption, coupon_code.CouponCode]] = {}
    for r in sorted(redemptions, key=lambda r: (r.observed_at, r.event_pk)):
        code = r.checked.code
        if r.checked.problem is not None or code is None:
            ids = (None, None) if code is None else (code.campaign, code.serial)
            batch.flag("forged", r, r.checked.problem or "not a coupon code", *ids)
        elif code.serial in decoded:
            batch.flag("double_redemption", r, "redeemed twice in one batch", code.campaign, code.serial)
        else:
            decoded[code.serial] = (r, code)
    known = {
        row.serial: row
        for row in db.execute(
            select(_codes.c.serial, _codes.c.campaign_id, _codes.c.revoked_at).where(_codes.c.serial.in_(decoded))
        )
    }
    campaigns = {
        row.id: row
        for row in db.execute(
            select(_campaigns.c.id, _campaigns.c.valid_from, _campaigns.c.valid_to).where(
                _campaigns.c.id.in_({c.campaign for _, c in decoded.values()})
            )
        )
    }
    rows: list[tuple[Any, ...]] = []
    for serial in sorted(decoded):
        r, code = decoded[serial]
        status = APPLIED
        issued = known.get(serial)
        campaign = campaigns.get(code.campaign)
        if issued is None or issued.campaign_id != code.campaign or campaign is None:
            batch.flag("unknown_code", r, "central never issued this code", code.campaign, serial)
            continue
        if issued.revoked_at is not None:
            batch.flag("revoked", r, "revoked before the redemption reached central", code.campaign, serial)
            status = FLAGGED
        elif not campaign.valid_from <= r.observed_at <= campaign.valid_to:
            batch.flag("outside_validity", r, "redeemed outside the campaign's validity window", code.campaign, serial)
            status = FLAGGED
        rows.append((serial, code.campaign, r.event_pk, device_id, r.store_id, r.observed_at, now, status))
    claimed = {
        int(s)
        for (s,) in bulk.insert(
            db.connection(), _redemptions, _REDEMPTION_COLUMNS, rows, ("serial",), skip_conflicts_on=("serial",)
        )
    }
    counted: dict[int, list[int]] = defaultdict(list)
    taken = [row[0] for row in rows if row[0] not in claimed]
    firsts = {
        r.serial: r
        for r in (
            db.execute(
                select(_redemptions.c.serial, _redemptions.c.device_id, _redemptions.c.store_id).where(
                    _redemptions.c.serial.in_(taken)
                )
            )
            if taken
            else ()
        )
    }
    for row in rows:
        serial, campaign_id, status = row[0], row[1], row[7]
        if serial not in claimed:
            first = firsts.get(serial)
            where = "" if first is None else f" (first at store {first.store_id}, device {first.device_id})"
            batch.flag("double_redemption", decoded[serial][0], f"already redeemed{where}", campaign_id, serial)
        elif status == APPLIED:
            counted[campaign_id].append(serial)
    for serials in counted.values():
        serials.sort(key=lambda s: (decoded[s][0].observed_at, decoded[s][0].event_pk))
    over = _count(db, counted)
    for campaign_id, serial in over:
        batch.flag("over_redemption", decoded[serial][0], "campaign at max_redemptions", campaign_id, serial)
    if over:
        db.execute(update(_redemptions).where(_redemptions.c.serial.in_([s for _, s in over])).values(status=FLAGGED))
    bulk.insert(db.connection(), _conflicts, _CONFLICT_COLUMNS, batch.conflicts)
    return Outcome(applied=sum(len(v) for v in counted.values()) - len(over), flagged=len(batch.conflicts))


def _count(db: Session, counted: dict[int, list[int]]) -> list[tuple[int, int]]:
    """Add each campaign's claimed codes to its count, never past its maximum; return what did not fit."""
    over: list[tuple[int, int]] = []
    for campaign_id in sorted(counted):
        serials = counted[campaign_id]  # in the order they were observed
        n = len(serials)
        c = _campaigns.c
        done = db.execute(
            update(_campaigns)
            .where(c.id == campaign_id, c.redeemed + n <= c.max_redemptions)
            .values(redeemed=c.redeemed + n)
            .returning(c.id)
        ).first()
        if done is not None:
            continue
        row = db.execute(select(c.redeemed, c.max_redemptions).where(c.id == campaign_id).with_for_update()).one()
        room = max(0, min(n, row.max_redemptions - row.redeemed))
        if room:
            db.execute(
                update(_campaigns)
                .where(c.id == campaign_id, c.redeemed + room <= c.max_redemptions)
                .values(redeemed=c.redeemed + room)
            )
        over.extend((campaign_id, s) for s in serials[room:])
    return over
