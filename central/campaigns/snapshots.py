"""The campaign pages' reports kept as snapshots, so a page view reads one row instead of computing them.

Two reports read every row of a campaign and take a third of a second or more at chain scale:

- a trigger's effect (:func:`central.campaigns.effect.effect_report`, over the
  :data:`EFFECT_WEEKS` after each occasion), which reads every occasion's purchase window;
- a coupon campaign's figures by value tier (:func:`central.campaigns.results.by_tier`), which
  joins every code to its member's current tier.

The ``reports`` job (:func:`refresh_all`) recomputes both for every trigger and campaign with
those same functions and stores what they returned in ``report_snapshots``, with the time it
computed them; a console user may refresh one at once (:func:`refresh_effect`,
:func:`refresh_tiers`). A snapshot is exactly the on-request report as of its ``computed_at``:
figures move on only at the next refresh (tiers change with the tag recompute, windows with time).

Each report is computed in a read-only transaction (on SQLite one that holds up no writer) and
written in a short one of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from central.campaigns.coupon_models import CouponCampaign
from central.campaigns.effect import EffectReport, effect_report
from central.campaigns.models import ReportSnapshot, Trigger
from central.campaigns.results import Breakdown, by_tier
from central.db import READ_ONLY
from central.models import table

EFFECT = "trigger_effect"
TIERS = "coupon_tiers"
EFFECT_WEEKS = 4  # the window after each occasion the console's effect report counts
_snapshots = table(ReportSnapshot)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class TierSnapshot:
    """A coupon campaign's figures by value tier as computed at ``computed_at``."""

    computed_at: datetime
    tiers: list[Breakdown]


def _read(db: Session, compute: Callable[[], T]) -> T:
    """``compute()`` in a read-only transaction of its own (unless the caller has one open)."""
    if db.in_transaction():
        return compute()
    db.connection(execution_options=READ_ONLY)
    try:
        return compute()
    finally:
        db.rollback()


def _store(db: Session, report: str, subject_id: int, computed_at: datetime, figures: dict[str, Any]) -> None:
    s = _snapshots
    db.execute(delete(s).where(s.c.report == report, s.c.subject_id == subject_id))
    db.execute(insert(s).values(report=report, subject_id=subject_id, computed_at=computed_at, figures=figures))


def _stored(db: Session, report: str, subject_id: int) -> Any:
    s = _snapshots
    return db.execute(
        select(s.c.computed_at, s.c.figures).where(s.c.report == report, s.c.subject_id == subject_id)
    ).first()


def refresh_effect(db: Session, trigger_id: int, now: datetime, offset_minutes: int) -> EffectReport | None:
    """Compute and store trigger ``trigger_id``'s effect as of ``now`` (caller commits); None: no such trigger."""

    def compute() -> EffectReport | None:
        name = db.scalar(select(Trigger.name).where(Trigger.id == trigger_id))
        if name is None:
            return None
        return effect_report(db, name, EFFECT_WEEKS, now=now, offset_minutes=offset_minutes)

    report = _read(db, compute)
    if report is not None:
        _store(db, EFFECT, trigger_id, now, report.counts())
    return report


def stored_effect(db: Session, trigger_id: int) -> EffectReport | None:
    """Trigger ``trigger_id``'s effect report as last stored, as of when it was computed; None before the first."""
    row = _stored(db, EFFECT, trigger_id)
    return None if row is None else EffectReport.from_counts(row.figures, row.computed_at)


def refresh_tiers(db: Session, campaign_id: int, now: datetime) -> TierSnapshot | None:
    """Compute and store campaign ``campaign_id``'s figures by tier now (the caller commits); None: no such campaign."""

    def compute() -> list[Breakdown] | None:
        if db.scalar(select(CouponCampaign.id).where(CouponCampaign.id == campaign_id)) is None:
            return None
        return by_tier(db, campaign_id)

    tiers = _read(db, compute)
    if tiers is None:
        return None
    rows = [[b.key, b.issued, b.redeemed, b.conflicts] for b in tiers]
    _store(db, TIERS, campaign_id, now, {"tiers": rows})
    return TierSnapshot(now, tiers)


def stored_tiers(db: Session, campaign_id: int) -> TierSnapshot | None:
    """Campaign ``campaign_id``'s figures by tier as last stored; None before the first."""
    row = _stored(db, TIERS, campaign_id)
    if row is None:
        return None
    tiers = [Breakdown(str(k), int(i), int(r), int(c)) for k, i, r, c in row.figures["tiers"]]
    return TierSnapshot(row.computed_at, tiers)


def refresh_all(
    db: Session, now: datetime, offset_minutes: int, progress: Callable[..., None] | None = None
) -> dict[str, int]:
    """Refresh every trigger's effect and every coupon campaign's tiers as of ``now``, committing each one."""
    triggers = _read(db, lambda: list(db.scalars(select(Trigger.id).order_by(Trigger.id))))
    campaigns = _read(db, lambda: list(db.scalars(select(CouponCampaign.id).order_by(CouponCampaign.id))))
    counts = {"triggers": 0, "campaigns": 0}  # refreshed (one deleted meanwhile is skipped)
    for trigger_id in triggers:
        done = int(refresh_effect(db, trigger_id, now, offset_minutes) is not None)
        db.commit()
        counts["triggers"] += done
        if progress:
            progress(triggers=done)
    for campaign_id in campaigns:
        done = int(refresh_tiers(db, campaign_id, now) is not None)
        db.commit()
        counts["campaigns"] += done
        if progress:
            progress(campaigns=done)
    return counts
