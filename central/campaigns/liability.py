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
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
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

    @property
    def redeemed_in_period_value(self) -> int | None:
        """Redemptions in the period times the face value, in fen (None without a period): what the month cost."""
        return None if self.redeemed_in_period is None else int(self.redeemed_in_period * self.value * 100)

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
            doc["redeemed_in_period_value"] = f"{Decimal(self.redeemed_in_period_value or 0) / 100:.2f}"
        return doc


def liabilities(
    db: Session, now: datetime, period: tuple[datetime, datetime] | None = None, campaign_id: int | None = None
) -> list[Liability]:
    """Every campaign (or one), oldest first, with its codes counted as of ``now`` and redemptions in ``period``.

    Counted per campaign from indexes alone, never code by code: codes issued from the unique
    ``(campaign_id, member_id)`` index, applied redemptions from ``(campaign_id, status)`` (a
    redemption is recorded only for a code of its own campaign, and codes are never deleted, so
    that is the codes redeemed), and revoked codes not redeemed from the partial index of revoked
    codes. A campaign's validity is its own, so its open codes are all outstanding or all expired.
    """
    c, k, r = _campaigns.c, _codes.c, _redemptions.c

    def per_campaign(query: Any) -> dict[int, int]:
        if campaign_id is not None:
            query = query.where(query.selected_columns[0] == campaign_id)
        return {campaign: int(n) for campaign, n in db.execute(query.group_by(query.selected_columns[0]))}

    issued = per_campaign(select(k.campaign_id, func.count()))
    redeemed = per_campaign(select(r.campaign_id, func.count()).where(r.status == APPLIED))
    applied = select(r.id).where(r.serial == k.serial, r.status == APPLIED).exists()
    revoked = per_campaign(select(k.campaign_id, func.count()).where(k.revoked_at.is_not(None), ~applied))
    in_period: dict[int, int] = {}
    if period is not None:
        in_period = per_campaign(
            select(r.campaign_id, func.count()).where(
                r.status == APPLIED, r.observed_at >= period[0], r.observed_at < period[1]
            )
        )
    campaigns = select(c.id, c.name, c.value, c.valid_from, c.valid_to).order_by(c.id)
    if campaign_id is not None:
        campaigns = campaigns.where(c.id == campaign_id)
    out = []
    for campaign, name, value, valid_from, valid_to in db.execute(campaigns):
        counts = issued.get(campaign, 0), redeemed.get(campaign, 0), revoked.get(campaign, 0)
        open_codes = counts[0] - counts[1] - counts[2]
        valid = valid_to > now and valid_to > valid_from
        out.append(
            Liability(
                campaign,
                name,
                Decimal(value),
                valid_from,
                valid_to,
                *counts,
                open_codes if valid else 0,
                0 if valid else open_codes,
                None if period is None else in_period.get(campaign, 0),
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class Totals:
    """Every campaign's figures added up (amounts in fen)."""

    issued: int
    redeemed: int
    revoked: int
    outstanding: int
    outstanding_value: int
    expired: int
    redeemed_in_period: int | None
    redeemed_in_period_value: int | None


def totals(rows: list[Liability]) -> Totals:
    """The totals row of the campaigns page; the period figures are None when the rows have no period."""
    period = bool(rows) and rows[0].redeemed_in_period is not None
    return Totals(
        sum(r.issued for r in rows),
        sum(r.redeemed for r in rows),
        sum(r.revoked for r in rows),
        sum(r.outstanding for r in rows),
        sum(r.outstanding_value for r in rows),
        sum(r.expired for r in rows),
        sum(r.redeemed_in_period or 0 for r in rows) if period else None,
        sum(r.redeemed_in_period_value or 0 for r in rows) if period else None,
    )


# The console's CSV (one row per campaign; no totals line, as the daily sales CSV has none): stable
# English names, counts as integers, amounts in yuan with two decimals, times in the chain's local time.
CSV_HEADER = [
    "campaign_id",
    "campaign",
    "face_value",
    "valid_from",
    "valid_to",
    "issued",
    "redeemed",
    "revoked",
    "outstanding",
    "outstanding_value",
    "expired_unredeemed",
    "period_from",
    "period_to",
    "redeemed_in_period",
    "redeemed_in_period_value",
]


def csv_row(row: Liability, offset_minutes: int, period_days: tuple[date, date]) -> list[Any]:
    """One campaign as CSV cells in ``CSV_HEADER`` order; ``period_days`` are the local days of the period."""
    shift = timedelta(minutes=offset_minutes)
    return [
        row.campaign_id,
        row.name,
        row.value.quantize(Decimal("0.01")),
        (row.valid_from + shift).strftime("%Y-%m-%d %H:%M"),
        (row.valid_to + shift).strftime("%Y-%m-%d %H:%M"),
        row.issued,
        row.redeemed,
        row.revoked,
        row.outstanding,
        _yuan(row.outstanding_value),
        row.expired,
        period_days[0].isoformat(),
        period_days[1].isoformat(),
        row.redeemed_in_period or 0,
        _yuan(row.redeemed_in_period_value or 0),
    ]


def _yuan(fen: int) -> Decimal:
    return (Decimal(fen) / 100).quantize(Decimal("0.01"))
