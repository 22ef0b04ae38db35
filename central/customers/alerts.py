"""Store alerts: a store whose new members dropped by half or more, shown on the overview and sent to a webhook.

The rule (decision 0057): a store's sign-ups on a local day are compared with the mean of the same
weekday in each of the four weeks before (day - 7, - 14, - 21, - 28; a week without sign-ups counts
as zero). It drops when that mean is at least ``overview.alert_min_baseline`` and the day's count is
at most ``(100 - overview.alert_drop_percent) %`` of it. The scheduled job ``store_alerts`` checks
the last full local day, so a day is judged once it is over.

Each alert is a ``store_alerts`` row, UNIQUE (store_id, day, kind), inserted with ``ON CONFLICT DO
NOTHING``: however often the job runs, on however many instances, a store's day gives one row, and
one row is sent once. Calls are signed like the campaign webhooks (``X-CDP-Signature``, HMAC-SHA256
over ``<t>.<body>`` with ``overview.alert_webhook_secret``) and carry ``X-CDP-Delivery:
store-alert-<id>`` as the receiver's idempotency key; a failed call is retried with the webhooks'
backoff and given up (``dead``) after ``webhooks.max_attempts``. The body holds counts only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from central.campaigns.webhooks import DELIVERY_HEADER, SIGNATURE_HEADER, Policy, Transport, signature
from central.config import CentralConfig
from central.customers import dashboard
from central.customers.models import StoreAlert
from central.models import table

log = logging.getLogger(__name__)

NEW_MEMBERS_DROP = "new_members_drop"
PENDING, DELIVERED, DEAD, UNSENT = "pending", "delivered", "dead", "unsent"
WEEKS = 4
_alerts = table(StoreAlert)


@dataclass(frozen=True, slots=True)
class Drop:
    """A store's new members on ``day`` against the mean of the same weekday in the four weeks before."""

    store_id: str
    day: date
    value: int
    baseline: float

    @property
    def percent(self) -> int:
        """How far below the baseline, in whole percent."""
        return round(100 * (1 - self.value / self.baseline))


def drops(
    series: Mapping[str, Mapping[date, int]], day: date, *, drop_percent: float, min_baseline: float
) -> list[Drop]:
    """The stores whose count on ``day`` fell by ``drop_percent`` or more against their four-week same-weekday mean."""
    found = []
    for store_id, days in sorted(series.items()):
        baseline = sum(days.get(day - timedelta(weeks=k), 0) for k in range(1, WEEKS + 1)) / WEEKS
        if baseline <= 0 or baseline < min_baseline:
            continue
        value = days.get(day, 0)
        if value <= baseline * (1 - drop_percent / 100):
            found.append(Drop(store_id, day, value, baseline))
    return found


def window(today: date) -> tuple[date, date]:
    """The days the overview reads: yesterday's four weeks of history through today."""
    return today - timedelta(days=WEEKS * 7 + 1), today


def last_full_day(today: date) -> date:
    """The day the alert judges: yesterday, the last one that is over."""
    return today - timedelta(days=1)


def check(db: Session, config: CentralConfig, now: datetime) -> list[Drop]:
    """The drops of the last full local day, across every store."""
    today = dashboard.local_today(now, config.customers_utc_offset_minutes)
    first, last = window(today)
    series = dashboard.new_members(db, first, last, config.customers_utc_offset_minutes)
    return drops(
        series,
        last_full_day(today),
        drop_percent=config.overview_alert_drop_percent,
        min_baseline=config.overview_alert_min_baseline,
    )


def record(db: Session, found: list[Drop], now: datetime, *, send: bool) -> int:
    """Insert one row per drop unless the store's day has one already; how many are new. The caller commits."""
    insert = postgresql.insert if db.get_bind().dialect.name == "postgresql" else sqlite.insert
    added = 0
    for drop in found:
        statement = (
            insert(_alerts)
            .values(
                store_id=drop.store_id,
                day=drop.day,
                kind=NEW_MEMBERS_DROP,
                value=drop.value,
                baseline=drop.baseline,
                status=PENDING if send else UNSENT,
                attempts=0,
                created_at=now,
                next_attempt_at=now if send else None,
            )
            .on_conflict_do_nothing()
            .returning(_alerts.c.id)
        )
        added += db.execute(statement).first() is not None
    return added


def body(row: Any) -> bytes:
    """The JSON a webhook receives for one alert row (counts only, no personal data)."""
    return orjson.dumps(
        {
            "kind": row.kind,
            "alert_id": row.id,
            "store_id": row.store_id,
            "day": row.day.isoformat(),
            "new_members": row.value,
            "baseline": round(row.baseline, 2),
            "drop_percent": round(100 * (1 - row.value / row.baseline)) if row.baseline else 0,
        }
    )


def deliver_due(
    db: Session,
    clock: Callable[[], datetime],
    config: CentralConfig,
    policy: Policy,
    transport: Transport,
) -> dict[str, int]:
    """Send every pending alert whose time has come; counts by outcome."""
    counts = {"delivered": 0, "retry": 0, "dead": 0}
    due = db.execute(
        select(_alerts)
        .where(
            _alerts.c.status == PENDING, or_(_alerts.c.next_attempt_at.is_(None), _alerts.c.next_attempt_at <= clock())
        )
        .order_by(_alerts.c.id)
    ).all()
    db.commit()
    for row in due:
        payload = body(row)
        headers = {
            "Content-Type": "application/json",
            DELIVERY_HEADER: f"store-alert-{row.id}",
            SIGNATURE_HEADER: signature(config.overview_alert_webhook_secret, int(clock().timestamp()), payload),
        }
        error: str | None
        try:
            status = transport(config.overview_alert_webhook_url, payload, headers, policy.timeout_seconds)
            error = None if 200 <= status < 300 else f"HTTP {status}"
        except OSError as exc:
            error = str(exc) or type(exc).__name__
        attempts, done = row.attempts + 1, clock()
        values: dict[str, Any] = {"attempts": attempts}
        if error is None:
            values.update(status=DELIVERED, finished_at=done)
            counts["delivered"] += 1
        elif attempts >= policy.max_attempts:
            values.update(status=DEAD, finished_at=done, last_error=error[:500])
            counts["dead"] += 1
            log.warning("store alert %s dead after %d attempts: %s", row.id, attempts, error[:200])
        else:
            values.update(next_attempt_at=done + policy.delay(attempts), last_error=error[:500])
            counts["retry"] += 1
        db.execute(update(_alerts).where(_alerts.c.id == row.id).values(**values))
        db.commit()
    return counts


def run(db: Session, config: CentralConfig, clock: Callable[[], datetime], transport: Transport) -> dict[str, int]:
    """One pass of the ``store_alerts`` job: record the last full day's drops, then send what is due."""
    send = bool(config.overview_alert_webhook_url)
    today = dashboard.local_today(clock(), config.customers_utc_offset_minutes)
    first, _ = window(today)
    # Late events (an agent back online) land in past days: every run recounts the whole window.
    stored = dashboard.count_new_members(
        db.connection(), first, today - timedelta(days=1), config.customers_utc_offset_minutes
    )
    db.commit()
    found = check(db, config, clock())
    added = record(db, found, clock(), send=send)
    db.commit()
    counts = {"store_days": stored, "drops": len(found), "recorded": added}
    if send:
        policy = Policy(
            config.webhooks_max_attempts,
            config.webhooks_backoff_seconds,
            config.webhooks_backoff_max_seconds,
            config.webhooks_timeout_seconds,
            config.webhooks_allow_private_addresses,
        )
        counts.update(deliver_due(db, clock, config, policy, transport))
    return counts
