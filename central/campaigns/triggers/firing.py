"""Firing triggers: who is due, fired exactly once per occasion, with a random control group.

Each kind (:mod:`central.campaigns.triggers.kinds`) selects its candidates as one query; this
module keeps those not fired yet (an anti-join on the ledger), asks the consent gate once which
of them the trigger's purpose may reach on its channel at evaluation time, so a withdrawal keeps a
customer out from the next evaluation on, and fires the rest in chunks. Kinds evaluate
windows rather than exact instants, so a missed run (central down) is made up by the next one.

Firing is exactly-once: the occasion is inserted into ``trigger_occasions`` (UNIQUE trigger,
customer, occasion) with ``ON CONFLICT DO NOTHING RETURNING``, and only the rows this transaction
inserted get their action queued, in the same transaction. A customer merged into another keeps
the survivor from firing again for the same occasion. A deterministic share of customers
(``control_percent``, by a hash of trigger name and customer id) is recorded as the control group
and given no action, so the trigger's effect can be measured against it
(:mod:`central.campaigns.effect`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Collection
from datetime import date, datetime
from typing import Any

from sqlalchemy import exists, func, or_, select, text
from sqlalchemy.orm import Session

from central import bulk
from central.campaigns.actions import ActionError, Firing, TriggerRef, action_named
from central.campaigns.models import ACTION, CONTROL, Trigger, TriggerOccasion
from central.campaigns.purposes import purpose_of
from central.campaigns.triggers.kinds import KINDS, When
from central.clock import local_date
from central.customers.consent_gate import consented
from central.identity.models import Customer
from central.identity.registry import DEFAULT_PLACEHOLDER_BIRTHDAYS
from central.models import table

log = logging.getLogger(__name__)
# Customers per transaction; 5,000 keeps every statement's IN lists (the consent gate expands its
# list three times) under SQLite's 32,766 parameters.
CHUNK = 5000
ANALYZE_AFTER = 10_000
_triggers = table(Trigger)
_occasions = table(TriggerOccasion)
_customers = table(Customer)


def in_control_group(trigger_name: str, customer_id: int, percent: float) -> bool:
    """Whether the customer is in the trigger's control group: the same answer on every run and instance."""
    digest = hashlib.sha256(f"{trigger_name}\x00{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100 < percent


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
    placeholder_birthdays: Collection[str] = DEFAULT_PLACEHOLDER_BIRTHDAYS,
) -> dict[str, int]:
    """Fire ``trigger`` for every customer due and not yet fired; commit and report ``progress`` per chunk."""
    action = action_named(trigger.action)
    if action is None:
        raise RuntimeError(f"trigger {trigger.name} names action {trigger.action!r}, which this server does not have")
    ref = TriggerRef(trigger.id, trigger.name, trigger.action_params)
    when = When(today, now, db.get_bind().dialect.name == "postgresql", frozenset(placeholder_birthdays))
    candidates = KINDS[trigger.kind].candidates(trigger.params, when).subquery()
    # Plain str names (SQLAlchemy's are a str subclass, which JSON encoders refuse as keys).
    detail = [c.name.encode().decode() for c in candidates.c if c.name not in ("customer_id", "occasion")]
    unfired = ~exists().where(
        _occasions.c.trigger_id == trigger.id,
        _occasions.c.customer_id == candidates.c.customer_id,
        _occasions.c.occasion == candidates.c.occasion,
    )
    # The customers due, once, and which of them the consent gate lets the trigger reach: one
    # statement over a few ids (index lookups), or over the whole candidate set when it is large
    # (one pass over the decisions instead of one per chunk). Then their occasions chunk by chunk.
    unfired_ids = select(candidates.c.customer_id).where(unfired)
    customers = list(db.scalars(unfired_ids.distinct().order_by(candidates.c.customer_id)))
    purpose = purpose_of(trigger.kind, trigger.params, trigger.action)
    among: Any = customers if len(customers) <= CHUNK else unfired_ids
    allowed = set(db.scalars(consented(purpose, trigger.params["channel"], today, among=among))) if customers else set()
    customers = [cid for cid in customers if cid in allowed]
    counts = {"due": 0, "fired": 0, "control": 0, "queued": 0}
    for start in range(0, len(customers), CHUNK):
        ids = customers[start : start + CHUNK]
        # No anti-join here: _fired_already looks up this chunk's ledger rows by index instead.
        rows = db.execute(select(candidates).where(candidates.c.customer_id.in_(ids))).all()
        done = _fired_already(db, trigger.id, ids)
        due = {
            (int(r.customer_id), str(r.occasion)): {k: getattr(r, k) for k in detail}
            for r in rows
            if (r.customer_id, r.occasion) not in done
        }
        grp = {cid: CONTROL if in_control_group(trigger.name, cid, trigger.control_percent) else ACTION for cid in ids}
        inserted = bulk.insert(
            db.connection(),
            _occasions,
            ("trigger_id", "customer_id", "occasion", "grp", "fired_at", "instance"),
            [(trigger.id, cid, occasion, grp[cid], now, instance) for cid, occasion in sorted(due)],
            returning=("id", "customer_id", "occasion"),
            skip_conflicts_on=("trigger_id", "customer_id", "occasion"),
        )
        firings = [
            Firing(int(pk), int(cid), str(occ), now, due[(int(cid), str(occ))])
            for pk, cid, occ in sorted(inserted)
            if grp[int(cid)] == ACTION
        ]
        queued = action.enqueue(db.connection(), ref, firings, now)
        db.commit()
        counts["due"] += len(due)
        counts["queued"] += queued
        counts["fired"] += len(inserted)
        counts["control"] += len(inserted) - len(firings)
        progress(fired=len(inserted), queued=queued, control=len(inserted) - len(firings))
    if counts["fired"] >= ANALYZE_AFTER and when.postgres:
        # A big first run grows the ledger from nothing; fresh statistics keep the next run's
        # anti-join a hash join instead of a nested loop over the whole ledger per candidate.
        db.execute(text("ANALYZE trigger_occasions"))
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
    placeholder_birthdays: Collection[str] = DEFAULT_PLACEHOLDER_BIRTHDAYS,
) -> dict[str, int]:
    """Evaluate every enabled trigger; the summed counts (``progress`` hears of each chunk fired).

    A trigger whose action cannot be carried out (its coupon campaign ended) does not hold up the
    others: they are evaluated, then ActionError names every trigger that failed.
    """
    today = local_today(now, timezone)
    total = {"due": 0, "fired": 0, "control": 0, "queued": 0}
    triggers = db.execute(select(_triggers).where(_triggers.c.enabled.is_(True)).order_by(_triggers.c.id)).all()
    db.commit()
    failed: list[str] = []
    for trigger in triggers:
        try:
            counts = evaluate(db, trigger, today, now, instance, progress, placeholder_birthdays)
        except ActionError as exc:
            db.rollback()
            log.error("trigger %s not evaluated: %s", trigger.name, exc)
            failed.append(str(exc))
            continue
        for key, value in counts.items():
            total[key] = total.get(key, 0) + value
    total["triggers"] = len(triggers)
    if failed:
        raise ActionError("; ".join(failed))
    return total
