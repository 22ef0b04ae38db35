"""A trigger's effect: its action group against its control group over the weeks after each occasion.

For every occasion the trigger fired on (as of ``now``: nothing later counts), the window is the
``weeks`` after it: the local days after the day it fired, up to ``7 * weeks`` days later (the
firing day itself is left out, since a purchase on it may have come before the firing), and for
coupon redemptions the same span from the firing instant. Per group (``action``, ``control``) the
report counts occasions, coupons issued and redeemed in the window, occasions followed by at least
one purchase (repurchase rate), and the net amount spent (returns subtract) per occasion.
Purchases are read from ``customer_days`` of the customer the occasion's customer is now (a merge
moves them to the survivor). One statement, grouped in the database.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Date, bindparam, text
from sqlalchemy.orm import Session

from central.campaigns.models import ACTION, CONTROL
from central.campaigns.triggers import trigger_named
from central.customers import statistics
from central.models import UTCDateTime

DEFAULT_WEEKS = 4
MAX_WEEKS = 52


class UnknownTrigger(LookupError):
    """No trigger has the name asked for."""


@dataclass(frozen=True, slots=True)
class GroupEffect:
    """One group's outcome: counts, rates (None for an empty group) and spend in currency units."""

    occasions: int
    coupons: int
    redeemed: int
    redemption_rate: float | None
    repurchased: int
    repurchase_rate: float | None
    spent: Decimal
    spend_per_customer: Decimal | None


@dataclass(frozen=True, slots=True)
class EffectReport:
    """A trigger's action group against its control group; ``open_windows`` counts occasions still in their window."""

    trigger: str
    kind: str
    action_name: str
    weeks: int
    as_of: datetime
    open_windows: int
    action: GroupEffect
    control: GroupEffect

    @property
    def repurchase_uplift(self) -> float | None:
        """Action minus control repurchase rate, or None while either group is empty."""
        a, c = self.action.repurchase_rate, self.control.repurchase_rate
        return None if a is None or c is None else round(a - c, 4)

    @property
    def spend_uplift(self) -> Decimal | None:
        """Action minus control spend per customer, or None while either group is empty."""
        a, c = self.action.spend_per_customer, self.control.spend_per_customer
        return None if a is None or c is None else a - c

    def counts(self) -> dict[str, Any]:
        """What :func:`from_counts` rebuilds the report from: its names and each group's counts and cents."""

        def group(g: GroupEffect) -> list[int]:
            return [g.occasions, g.coupons, g.redeemed, g.repurchased, int(g.spent * 100)]

        return {
            "trigger": self.trigger,
            "kind": self.kind,
            "action_name": self.action_name,
            "weeks": self.weeks,
            "open_windows": self.open_windows,
            "action": group(self.action),
            "control": group(self.control),
        }

    @classmethod
    def from_counts(cls, counts: dict[str, Any], as_of: datetime) -> EffectReport:
        """The report :meth:`counts` described, as of ``as_of``: rates and means derived as on request."""
        return cls(
            trigger=counts["trigger"],
            kind=counts["kind"],
            action_name=counts["action_name"],
            weeks=int(counts["weeks"]),
            as_of=as_of,
            open_windows=int(counts["open_windows"]),
            action=group_effect(*(int(v) for v in counts["action"])),
            control=group_effect(*(int(v) for v in counts["control"])),
        )

    def to_json(self) -> dict[str, Any]:
        """The report as the API returns it (money as text with two decimals)."""

        def group(g: GroupEffect) -> dict[str, Any]:
            out = asdict(g)
            out["spent"] = f"{g.spent:.2f}"
            out["spend_per_customer"] = None if g.spend_per_customer is None else f"{g.spend_per_customer:.2f}"
            return out

        spend = self.spend_uplift
        return {
            "trigger": self.trigger,
            "kind": self.kind,
            "action_name": self.action_name,
            "weeks": self.weeks,
            "as_of": self.as_of.isoformat().replace("+00:00", "Z"),
            "open_windows": self.open_windows,
            "action": group(self.action),
            "control": group(self.control),
            "repurchase_uplift": self.repurchase_uplift,
            "spend_uplift": None if spend is None else f"{spend:.2f}",
        }


def _sql(postgres: bool, offset_minutes: int) -> str:
    if postgres:
        fired_day = f"CAST((o.fired_at AT TIME ZONE 'UTC') + make_interval(mins => {offset_minutes}) AS date)"
        last_day = f"{fired_day} + :days"
        redeemed_in = "r.observed_at >= o.fired_at AND r.observed_at < o.fired_at + make_interval(days => :days)"
    else:
        fired_day = f"date(o.fired_at, '{offset_minutes:+d} minutes')"
        last_day = f"date(o.fired_at, '{offset_minutes:+d} minutes', '+' || :days || ' days')"
        redeemed_in = (
            "julianday(r.observed_at) >= julianday(o.fired_at)"
            " AND julianday(r.observed_at) < julianday(o.fired_at) + :days"
        )
    per_occasion = (
        "SELECT o.id, o.grp, MAX(CASE WHEN o.fired_at > :open_since THEN 1 ELSE 0 END) AS open_window,"  # noqa: S608
        " MAX(CASE WHEN tc.serial IS NULL THEN 0 ELSE 1 END) AS coupon,"
        " MAX(CASE WHEN r.id IS NULL THEN 0 ELSE 1 END) AS redeemed,"
        " COALESCE(SUM(d.purchases), 0) AS bought, COALESCE(SUM(d.spent), 0) AS spent"
        " FROM trigger_occasions o JOIN customers c ON c.id = o.customer_id"
        " LEFT JOIN customer_days d ON d.customer_id = COALESCE(c.merged_into, c.id)"
        f" AND d.day > {fired_day} AND d.day <= {last_day} AND d.day <= :today"
        " LEFT JOIN trigger_coupons tc ON tc.occasion_id = o.id"
        " LEFT JOIN coupon_redemptions r ON r.serial = tc.serial AND r.status = 'applied'"
        f" AND r.observed_at <= :now AND {redeemed_in}"
        " WHERE o.trigger_id = :trigger AND o.fired_at <= :now GROUP BY o.id, o.grp"
    )
    return (
        "SELECT grp, COUNT(*), SUM(coupon), SUM(redeemed), SUM(CASE WHEN bought > 0 THEN 1 ELSE 0 END),"  # noqa: S608
        f" SUM(spent), SUM(open_window) FROM ({per_occasion}) x GROUP BY grp"
    )


def _group(row: Any | None) -> GroupEffect:
    if row is None:
        return group_effect(0, 0, 0, 0, 0)
    n, coupons, redeemed, repurchased, cents = (int(row[i] or 0) for i in range(1, 6))
    return group_effect(n, coupons, redeemed, repurchased, cents)


def group_effect(n: int, coupons: int, redeemed: int, repurchased: int, cents: int) -> GroupEffect:
    """A group's figures from its counts and its spend in cents (rates and means derived here alone)."""
    spent = (Decimal(cents) / 100).quantize(Decimal("0.01"))
    return GroupEffect(
        occasions=n,
        coupons=coupons,
        redeemed=redeemed,
        redemption_rate=round(redeemed / coupons, 4) if coupons else None,
        repurchased=repurchased,
        repurchase_rate=round(repurchased / n, 4) if n else None,
        spent=spent,
        spend_per_customer=(spent / n).quantize(Decimal("0.01")) if n else None,
    )


def effect_report(
    session: Session,
    trigger_name: str,
    weeks: int = DEFAULT_WEEKS,
    *,
    now: datetime | None = None,
    offset_minutes: int | None = None,
) -> EffectReport:
    """The effect report of trigger ``trigger_name`` as of ``now`` (default: the current time).

    UnknownTrigger if there is none. ``offset_minutes`` is the chain's local time offset, whose days
    ``customer_days`` counts in (default: ``customers.utc_offset_minutes`` of the current app).
    """
    now = now or datetime.now(UTC)
    offset_minutes = statistics.settings()[0] if offset_minutes is None else offset_minutes
    if not 1 <= weeks <= MAX_WEEKS:
        raise ValueError(f"weeks: expected a whole number from 1 to {MAX_WEEKS}")
    trigger = trigger_named(session, trigger_name)
    if trigger is None:
        raise UnknownTrigger(f"no trigger {trigger_name!r}")
    postgres = session.get_bind().dialect.name == "postgresql"
    statement = text(_sql(postgres, offset_minutes)).bindparams(
        bindparam("now", type_=UTCDateTime),
        bindparam("open_since", type_=UTCDateTime),
        bindparam("today", type_=Date()),
    )
    days = 7 * weeks
    today = (now + timedelta(minutes=offset_minutes)).date()
    params = {"trigger": trigger.id, "days": days, "now": now, "open_since": now - timedelta(days=days), "today": today}
    rows = {str(r[0]): r for r in session.execute(statement, params)}
    return EffectReport(
        trigger=trigger.name,
        kind=trigger.kind,
        action_name=trigger.action,
        weeks=weeks,
        as_of=now,
        open_windows=sum(int(r[6] or 0) for r in rows.values()),
        action=_group(rows.get(ACTION)),
        control=_group(rows.get(CONTROL)),
    )


__all__ = ["DEFAULT_WEEKS", "EffectReport", "GroupEffect", "UnknownTrigger", "effect_report", "group_effect"]
