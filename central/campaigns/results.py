"""Campaign results for the console: triggers' firings, and coupons issued, redeemed and refused.

Every figure is one grouped query in the database, never a loop over codes or redemptions.

- ``issued``: codes handed out (claimed by a member, issued by a trigger or printed anonymously).
- ``redeemed``: redemptions applied (``coupon_redemptions.status = 'applied'``).
- ``conflicts``: double redemptions refused (a code already redeemed, redeemed again, e.g. at
  two offline tills); ``flagged``: every redemption flagged for review, of whatever kind.
- The redemption rate is redeemed / issued. By value tier, the tier is the current ``value_tier``
  tag of the customer the code was issued to: the member who claimed it (by member id) or the
  customer a trigger issued it to (``trigger_coupons``), as the customer they are now (a merge
  moves their codes to the survivor). ``anonymous`` is for codes issued to no one (printed
  flyers), ``untiered`` for a customer without the tag. By store, it is the codes redeemed in that
  store over all codes issued (codes are not issued per store), so the stores' rates add up to the
  campaign's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, case, func, literal, select
from sqlalchemy.orm import Session

from central.campaigns.coupon_models import CouponCampaign, CouponCode, CouponConflict, CouponRedemption
from central.campaigns.models import CONTROL, Trigger, TriggerCoupon, TriggerOccasion
from central.customers.models import CustomerTag
from central.identity.models import Customer, Identifier

APPLIED = "applied"
DOUBLE = "double_redemption"


def rate(part: int, whole: int) -> float | None:
    """``part / whole``, or None when nothing was issued."""
    return None if whole == 0 else part / whole


@dataclass(frozen=True, slots=True)
class TriggerResult:
    """A trigger with how often it fired, how many of those were held back as control, and when last."""

    id: int
    name: str
    kind: str
    action: str
    enabled: bool
    control_percent: float
    fired: int
    control: int
    last_fired_at: datetime | None


def trigger_results(db: Session) -> list[TriggerResult]:
    """Every trigger with its firings (action and control) in one grouped query, by name."""
    o = TriggerOccasion
    query = (
        select(
            Trigger.id,
            Trigger.name,
            Trigger.kind,
            Trigger.action,
            Trigger.enabled,
            Trigger.control_percent,
            func.count(o.id),
            func.coalesce(func.sum(case((o.grp == CONTROL, 1), else_=0)), 0),
            func.max(o.fired_at),
        )
        .outerjoin(o, o.trigger_id == Trigger.id)
        .group_by(Trigger.id, Trigger.name, Trigger.kind, Trigger.action, Trigger.enabled, Trigger.control_percent)
        .order_by(Trigger.name)
    )
    return [TriggerResult(*row) for row in db.execute(query)]


def trigger_result(db: Session, trigger_id: int) -> TriggerResult | None:
    """One trigger's result, or None."""
    return next((t for t in trigger_results(db) if t.id == trigger_id), None)


@dataclass(frozen=True, slots=True)
class CouponResult:
    """A coupon campaign and its figures."""

    id: int
    name: str
    value: Decimal
    valid_from: datetime
    valid_to: datetime
    max_redemptions: int
    issued: int
    redeemed: int
    conflicts: int
    flagged: int

    @property
    def rate(self) -> float | None:
        """Redeemed over issued."""
        return rate(self.redeemed, self.issued)


def coupon_results(db: Session, campaign_id: int | None = None) -> list[CouponResult]:
    """Every coupon campaign (or one) with issued, redeemed, double redemptions and all flags, oldest first."""
    c = CouponCampaign

    def count_of(model: type, *where: Any) -> Any:
        return select(func.count()).select_from(model).where(*where).scalar_subquery()

    query = select(
        c.id,
        c.name,
        c.value,
        c.valid_from,
        c.valid_to,
        c.max_redemptions,
        count_of(CouponCode, CouponCode.campaign_id == c.id),
        count_of(CouponRedemption, CouponRedemption.campaign_id == c.id, CouponRedemption.status == APPLIED),
        count_of(CouponConflict, CouponConflict.campaign_id == c.id, CouponConflict.kind == DOUBLE),
        count_of(CouponConflict, CouponConflict.campaign_id == c.id),
    ).order_by(c.id)
    if campaign_id is not None:
        query = query.where(c.id == campaign_id)
    return [
        CouponResult(r[0], r[1], Decimal(r[2]), r[3], r[4], r[5], r[6], r[7], r[8], r[9]) for r in db.execute(query)
    ]


@dataclass(frozen=True, slots=True)
class Breakdown:
    """One line of a campaign's results by tier or by store."""

    key: str
    issued: int
    redeemed: int
    conflicts: int

    @property
    def rate(self) -> float | None:
        """Redeemed over issued (by store: over the campaign's issued codes)."""
        return rate(self.redeemed, self.issued)


def by_tier(db: Session, campaign_id: int) -> list[Breakdown]:
    """Codes issued and redeemed by the value tier of the customer each was issued to, in one grouped query."""
    # A member's claim names the member id; a trigger's code names no one on the code, only in trigger_coupons.
    owner = func.coalesce(TriggerCoupon.customer_id, Identifier.customer_id)
    issued_to_no_one = and_(CouponCode.member_id.is_(None), TriggerCoupon.serial.is_(None))
    tier = func.coalesce(
        CustomerTag.value, case((issued_to_no_one, literal("anonymous")), else_=literal("untiered"))
    ).label("tier")
    query = (
        select(
            tier,
            # distinct: a code refused twice joins two conflict rows
            func.count(CouponCode.serial.distinct()),
            func.count(CouponRedemption.id.distinct()),
            func.count(CouponConflict.id.distinct()),
        )
        .select_from(CouponCode)
        .outerjoin(TriggerCoupon, TriggerCoupon.serial == CouponCode.serial)
        .outerjoin(Identifier, and_(Identifier.kind == "member_id", Identifier.value == CouponCode.member_id))
        .outerjoin(Customer, Customer.id == owner)
        .outerjoin(
            CustomerTag,
            and_(
                CustomerTag.customer_id == func.coalesce(Customer.merged_into, Customer.id),
                CustomerTag.tag == "value_tier",
            ),
        )
        .outerjoin(
            CouponRedemption, and_(CouponRedemption.serial == CouponCode.serial, CouponRedemption.status == APPLIED)
        )
        .outerjoin(CouponConflict, and_(CouponConflict.serial == CouponCode.serial, CouponConflict.kind == DOUBLE))
        .where(CouponCode.campaign_id == campaign_id)
        .group_by(tier)
        .order_by(tier)
    )
    return [Breakdown(*row) for row in db.execute(query)]


def by_store(db: Session, campaign_id: int, issued: int) -> list[Breakdown]:
    """Redemptions applied and double redemptions refused, by store; rates over the campaign's ``issued``."""
    redeemed = dict(
        db.execute(
            select(CouponRedemption.store_id, func.count())
            .where(CouponRedemption.campaign_id == campaign_id, CouponRedemption.status == APPLIED)
            .group_by(CouponRedemption.store_id)
        ).all()
    )
    refused = dict(
        db.execute(
            select(CouponConflict.store_id, func.count())
            .where(CouponConflict.campaign_id == campaign_id, CouponConflict.kind == DOUBLE)
            .group_by(CouponConflict.store_id)
        ).all()
    )
    stores = sorted(set(redeemed) | set(refused))
    return [Breakdown(s, issued, redeemed.get(s, 0), refused.get(s, 0)) for s in stores]
