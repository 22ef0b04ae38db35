"""What the coupons issued still owe: per campaign, codes outstanding and their face value, for the monthly close.

Per campaign, over its codes (``coupon_codes``) and their applied redemptions, in one grouped query:

* ``issued``: every code handed out; ``redeemed``: codes with an applied redemption;
* ``revoked``: codes withdrawn and not redeemed;
* ``outstanding``: codes neither redeemed nor revoked while the campaign is still valid at ``now``
  (its end after ``now`` and after its start), and ``outstanding_value`` = outstanding x face value:
  the liability;
* ``expired``: codes neither redeemed nor revoked whose campaign is over (or ended before it
  started): no longer owed;
* ``redeemed_in_period``: applied redemptions whose till time (``observed_at``) falls in
  ``[start, end)``, when a period is given: what the month cost.

So ``issued = redeemed + revoked + outstanding + expired``. Amounts in fen.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from central.campaigns.coupon_models import CouponCampaign, CouponCode, CouponRedemption
from central.campaigns.coupon_redemptions import APPLIED
from central.models import table

_campaigns = table(CouponCampaign)
_codes = table(CouponCode)
_redemptions = table(CouponRedemption)


@dataclass(frozen=True, slots=True)
class Liability:
    """One campaign's codes by what became of them, and what the outstanding ones are worth (fen)."""

    campaign_id: int
    name: str
    value: Decimal
    valid_from: datetime
    valid_to: datetime
    issued: int
    redeemed: int
    revoked: int
    outstanding: int
    expired: int
    redeemed_in_period: int | None

    @property
    def outstanding_value(self) -> int:
        """Outstanding codes times the face value, in fen."""
        return int(self.outstanding * self.value * 100)

    def to_json(self) -> dict[str, Any]:
        """The figures as ``coupons list --json`` and the API give them (amounts as text, two decimals)."""
        doc: dict[str, Any] = {
            "revoked": self.revoked,
            "outstanding": self.outstanding,
            "outstanding_value": f"{Decimal(self.outstanding_value) / 100:.2f}",
            "expired_unredeemed": self.expired,
        }
        if self.redeemed_in_period is not None:
            doc["redeemed_in_period"] = self.redeemed_in_period
        return doc


def liabilities(
    db: Session, now: datetime, period: tuple[datetime, datetime] | None = None, campaign_id: int | None = None
) -> list[Liability]:
    """Every campaign (or one), oldest first, with its codes counted as of ``now`` and redemptions in ``period``."""
    c, k, r = _campaigns.c, _codes.c, _redemptions.c
    open_code = and_(k.serial.is_not(None), r.id.is_(None), k.revoked_at.is_(None))
    valid = and_(c.valid_to > now, c.valid_to > c.valid_from)

    def tally(condition: Any) -> Any:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    query = (
        select(
            c.id,
            c.name,
            c.value,
            c.valid_from,
            c.valid_to,
            func.count(k.serial),
            tally(r.id.is_not(None)),
            tally(and_(r.id.is_(None), k.revoked_at.is_not(None))),
            tally(and_(open_code, valid)),
            tally(and_(open_code, ~valid)),
        )
        .select_from(_campaigns)
        .outerjoin(_codes, k.campaign_id == c.id)
        .outerjoin(_redemptions, and_(r.serial == k.serial, r.status == APPLIED))
        .group_by(c.id, c.name, c.value, c.valid_from, c.valid_to)
        .order_by(c.id)
    )
    if campaign_id is not None:
        query = query.where(c.id == campaign_id)
    in_period: dict[int, int] = {}
    if period is not None:
        counted = db.execute(
            select(r.campaign_id, func.count())
            .where(r.status == APPLIED, r.observed_at >= period[0], r.observed_at < period[1])
            .group_by(r.campaign_id)
        )
        in_period = {campaign: n for campaign, n in counted}
    out = []
    for row in db.execute(query):
        issued, redeemed, revoked, outstanding, expired = (int(v) for v in row[5:10])
        in_month = None if period is None else in_period.get(row[0], 0)
        out.append(
            Liability(
                row[0],
                row[1],
                Decimal(row[2]),
                row[3],
                row[4],
                issued,
                redeemed,
                revoked,
                outstanding,
                expired,
                in_month,
            )
        )
    return out
