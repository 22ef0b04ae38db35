"""Time-based triggers: who is due, fired exactly once per occasion, with a random control group.

A birthday trigger fires for each live customer whose birthday (golden record) falls within the
next ``days_before`` days, once per birthday (the occasion is the year it falls in), and only for
customers the consent gate lets marketing reach on the trigger's ``channel`` at evaluation time,
so a withdrawal keeps a customer out from the next evaluation on. Evaluating a window rather than
one exact day means a missed run (central down on the day) is made up by the next one.

Firing is exactly-once: the occasion is inserted into ``trigger_occasions`` (UNIQUE trigger,
customer, occasion) with ``ON CONFLICT DO NOTHING RETURNING``, and only the rows this transaction
inserted get their action queued, in the same transaction. A customer merged into another keeps
the survivor from firing again for the same occasion. A deterministic share of customers
(``control_percent``, by a hash of trigger name and customer id) is recorded as the control group
and given no action, so the trigger's effect can be measured against it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from central import bulk
from central.campaigns.actions import Firing, TriggerRef, action_named, action_names
from central.campaigns.models import ACTION, CONTROL, Trigger, TriggerOccasion
from central.clock import local_date
from central.customers.consent import CHANNELS
from central.customers.consent_gate import consented
from central.identity.models import Customer, GoldenAttribute
from central.models import table

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
KINDS = ("birthday",)
MAX_DAYS_BEFORE = 31
DEFAULT_CONTROL_PERCENT = 10.0
CHUNK = 1000
_triggers = table(Trigger)
_occasions = table(TriggerOccasion)
_golden = table(GoldenAttribute)
_customers = table(Customer)


class TriggerError(ValueError):
    """A trigger declaration that cannot be accepted; the message names the field and what is expected."""


@dataclass(frozen=True, slots=True)
class Declared:
    """A checked trigger declaration."""

    name: str
    kind: str
    params: dict[str, Any]
    action: str
    action_params: dict[str, Any]
    control_percent: float


def check(
    name: str,
    kind: str,
    params: Mapping[str, Any],
    action: str,
    action_params: Mapping[str, Any],
    control_percent: float = DEFAULT_CONTROL_PERCENT,
) -> Declared:
    """Validate a declaration; TriggerError says what is wrong."""
    if not NAME_RE.match(name):
        raise TriggerError("name: 1-64 lower-case letters, digits, '_', '.' or '-'")
    if kind not in KINDS:
        raise TriggerError(f"kind: expected one of {', '.join(KINDS)}")
    days = params.get("days_before", 3)
    if type(days) is not int or not 0 <= days <= MAX_DAYS_BEFORE:
        raise TriggerError(f"days_before: expected a whole number of days from 0 to {MAX_DAYS_BEFORE}")
    channel = params.get("channel")
    if channel not in CHANNELS:
        raise TriggerError(f"channel: the marketing channel whose consent it needs, one of {', '.join(CHANNELS)}")
    unknown = set(params) - {"days_before", "channel"}
    if unknown:
        raise TriggerError(f"unknown parameter {sorted(unknown)[0]!r} (expected days_before, channel)")
    performer = action_named(action)
    if performer is None:
        raise TriggerError(f"action: expected one of {', '.join(action_names())}")
    problem = performer.check(action_params)
    if problem:
        raise TriggerError(f"action {action}: {problem}")
    if not 0 <= control_percent <= 100:
        raise TriggerError("control_percent: expected a percentage from 0 to 100")
    return Declared(name, kind, {"days_before": days, "channel": channel}, action, dict(action_params), control_percent)


def declare(db: Session, declared: Declared, *, actor: str, now: datetime) -> int:
    """Store a new trigger (enabled); return its id. The caller commits."""
    if db.scalar(select(_triggers.c.id).where(_triggers.c.name == declared.name)) is not None:
        raise TriggerError(f"name: a trigger called {declared.name!r} exists already")
    values = {
        "name": declared.name,
        "kind": declared.kind,
        "params": declared.params,
        "action": declared.action,
        "action_params": declared.action_params,
        "control_percent": declared.control_percent,
        "enabled": True,
        "created_at": now,
        "created_by": actor,
    }
    return int(db.execute(_triggers.insert().values(**values).returning(_triggers.c.id)).scalar_one())


def in_control_group(trigger_name: str, customer_id: int, percent: float) -> bool:
    """Whether the customer is in the trigger's control group: the same answer on every run and instance."""
    digest = hashlib.sha256(f"{trigger_name}\x00{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100 < percent


def birthday_window(today: date, days: int) -> dict[str, str]:
    """Month-day (``MM-DD``) of every date from today to ``days`` ahead, mapped to the occasion (its year).

    In a year without 29 February, birthdays on 29 February are celebrated on the 28th.
    """
    out: dict[str, str] = {}
    for offset in range(days + 1):
        day = today + timedelta(days=offset)
        out[day.strftime("%m-%d")] = str(day.year)
        if day.month == 2 and day.day == 28 and (day + timedelta(days=1)).month == 3:
            out["02-29"] = str(day.year)
    return out


def local_today(now: datetime, timezone: str) -> date:
    """The calendar date at ``now`` in ``timezone``."""
    return local_date(now, timezone)


def evaluate(
    db: Session,
    trigger: Any,
    today: date,
    now: datetime,
    instance: str,
    progress: Callable[..., None] = lambda **counts: None,
) -> dict[str, int]:
    """Fire ``trigger`` for every customer due and not yet fired; commit and report ``progress`` per chunk."""
    window = birthday_window(today, int(trigger.params["days_before"]))
    action = action_named(trigger.action)
    if action is None:
        raise RuntimeError(f"trigger {trigger.name} names action {trigger.action!r}, which this server does not have")
    ref = TriggerRef(trigger.id, trigger.name, trigger.action_params)
    # Live customers whose birthday falls in the window; consent and the ledger are then asked
    # chunk by chunk, with index lookups for just those customers.
    candidates = db.execute(
        select(_golden.c.customer_id, _golden.c.value)
        .join(_customers, _customers.c.id == _golden.c.customer_id)
        .where(
            _golden.c.attribute == "birthday",
            _customers.c.merged_into.is_(None),
            func.substr(_golden.c.value, 6, 5).in_(list(window)),
        )
        .order_by(_golden.c.customer_id)
    ).all()
    counts = {"due": 0, "fired": 0, "control": 0, "queued": 0}
    for start in range(0, len(candidates), CHUNK):
        chunk = {int(cid): (value, window[value[5:10]]) for cid, value in candidates[start : start + CHUNK]}
        ids = sorted(chunk)
        allowed = set(db.scalars(consented("marketing", trigger.params["channel"], today, among=ids)))
        done = _fired_already(db, trigger.id, ids)
        due = [cid for cid in ids if cid in allowed and (cid, chunk[cid][1]) not in done]
        grp = {cid: CONTROL if in_control_group(trigger.name, cid, trigger.control_percent) else ACTION for cid in due}
        inserted = bulk.insert(
            db.connection(),
            _occasions,
            ("trigger_id", "customer_id", "occasion", "grp", "fired_at", "instance"),
            [(trigger.id, cid, chunk[cid][1], grp[cid], now, instance) for cid in due],
            returning=("id", "customer_id", "occasion"),
            skip_conflicts_on=("trigger_id", "customer_id", "occasion"),
        )
        firings = [
            Firing(int(pk), int(cid), str(occ), now, {"birthday": chunk[cid][0]})
            for pk, cid, occ in sorted(inserted)
            if grp[cid] == ACTION
        ]
        queued = action.enqueue(db.connection(), ref, firings, now)
        db.commit()
        counts["due"] += len(due)
        counts["queued"] += queued
        counts["fired"] += len(inserted)
        counts["control"] += len(inserted) - len(firings)
        progress(fired=len(inserted), queued=queued, control=len(inserted) - len(firings))
    db.commit()
    return counts


def _fired_already(db: Session, trigger_id: int, customers: list[int]) -> set[tuple[int, str]]:
    """(live customer, occasion) pairs the trigger already fired for, itself or a customer merged into it."""
    owner = func.coalesce(_customers.c.merged_into, _customers.c.id)
    rows = db.execute(
        select(owner, _occasions.c.occasion)
        .join(_customers, _customers.c.id == _occasions.c.customer_id)
        .where(
            _occasions.c.trigger_id == trigger_id,
            or_(
                _occasions.c.customer_id.in_(customers),
                _occasions.c.customer_id.in_(select(_customers.c.id).where(_customers.c.merged_into.in_(customers))),
            ),
        )
    )
    return {(int(cid), str(occasion)) for cid, occasion in rows}


def evaluate_all(
    db: Session,
    now: datetime,
    timezone: str,
    instance: str,
    progress: Callable[..., None] = lambda **counts: None,
) -> dict[str, int]:
    """Evaluate every enabled trigger; the summed counts (``progress`` hears of each chunk fired)."""
    today = local_today(now, timezone)
    total = {"due": 0, "fired": 0, "control": 0, "queued": 0}
    triggers = db.execute(select(_triggers).where(_triggers.c.enabled.is_(True)).order_by(_triggers.c.id)).all()
    db.commit()
    for trigger in triggers:
        for key, value in evaluate(db, trigger, today, now, instance, progress).items():
            total[key] = total.get(key, 0) + value
    total["triggers"] = len(triggers)
    return total
