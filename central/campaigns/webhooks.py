"""Webhook delivery: signed POSTs, retried with exponential backoff, dead-lettered after the last attempt.

Each call carries::

    Content-Type: application/json
    X-CDP-Delivery: 42                       (the delivery id; the body's occasion_id is the idempotency key)
    X-CDP-Signature: t=1764470400,v1=<hex>   (HMAC-SHA256 with the trigger's secret over "<t>.<body>")

A receiver recomputes the HMAC over the timestamp, a dot and the raw body, compares in constant
time, and refuses old timestamps. A 2xx answer delivers the call; anything else (an error status,
a refused connection, a timeout) schedules the next attempt ``backoff * 2^(attempts-1)`` seconds
later (at most ``backoff_max``), and the attempt numbered ``max_attempts`` that fails leaves the
call ``dead`` with its last error, listed by ``GET /api/v1/webhooks/dead``. Before each attempt the
consent gate is asked again: a customer who withdrew since the trigger fired is not called about
(``cancelled``).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from central.campaigns.models import DEAD, DELIVERED, PENDING, Trigger, WebhookDelivery
from central.campaigns.purposes import purpose_of
from central.customers.consent_gate import verdict as consent_verdict
from central.models import table

log = logging.getLogger(__name__)

CANCELLED = "cancelled"
SIGNATURE_HEADER = "X-CDP-Signature"
DELIVERY_HEADER = "X-CDP-Delivery"
BATCH = 100
_deliveries = table(WebhookDelivery)
_triggers = table(Trigger)

Transport = Callable[[str, bytes, dict[str, str], float], int]
"""POST ``body`` to ``url`` with ``headers`` within ``timeout`` seconds; return the status or raise OSError."""


def requests_transport(*, allow_private: bool = False) -> Transport:
    """The production transport: requests, no redirects followed, public addresses only unless
    ``allow_private`` (:mod:`central.outbound`)."""
    import requests

    from central import outbound

    def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
        try:
            with outbound.session(allow_private=allow_private) as session:
                response = session.post(url, data=body, headers=headers, timeout=timeout, allow_redirects=False)
        except requests.RequestException as exc:
            raise OSError(_reason(exc)) from None
        return response.status_code

    return post


def _reason(exc: BaseException) -> str:
    """A failed call in words: an address refused says so plainly, anything else by its type and message."""
    from central import outbound

    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, outbound.BlockedAddress):
            return f"refused: {cause}"
        cause = cause.__cause__ or cause.__context__
    return f"{type(exc).__name__}: {exc}"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-CDP-Signature`` value for ``body`` sent at ``timestamp`` (Unix seconds)."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, header: str, body: bytes, now: int, tolerance: int = 300) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` within ``tolerance`` seconds of ``now``."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body), header)


@dataclass(frozen=True)
class Policy:
    """How hard to try: attempts before dead-lettering, backoff, per-call timeout."""

    max_attempts: int = 8
    backoff_seconds: float = 30.0
    backoff_max_seconds: float = 3600.0
    timeout_seconds: float = 10.0
    allow_private: bool = False  # receivers on HQ's own network (webhooks.allow_private_addresses)

    def delay(self, attempts: int) -> timedelta:
        """Wait after the ``attempts``-th failed attempt."""
        return timedelta(seconds=min(self.backoff_max_seconds, self.backoff_seconds * 2 ** (attempts - 1)))


def _customer_and_channel(row: Any, trigger: Any) -> tuple[int | None, str | None]:
    try:
        customer_id = int(orjson.loads(row.body)["customer_id"])
    except (ValueError, KeyError, TypeError):
        return None, None
    return customer_id, (trigger.params or {}).get("channel")


def deliver_due(
    db: Session,
    clock: Callable[[], datetime],
    policy: Policy,
    *,
    transport: Transport | None = None,
    timezone: str = "UTC",
    limit: int = 1000,
) -> dict[str, int]:
    """Attempt every pending call whose time has come (at most ``limit``); return counts by outcome."""
    from central.campaigns.triggers import local_today

    counts = {"delivered": 0, "retry": 0, "dead": 0, "cancelled": 0}
    post = transport or requests_transport(allow_private=policy.allow_private)
    now = clock()
    due = db.execute(
        select(_deliveries)
        .where(_deliveries.c.status == PENDING, _deliveries.c.next_attempt_at <= now)
        .order_by(_deliveries.c.next_attempt_at, _deliveries.c.id)
        .limit(limit)
    ).all()
    triggers = {t.id: t for t in db.execute(select(_triggers)).all()}
    db.commit()
    for row in due:
        now = clock()
        secret, prepared = _prepare(db, row, triggers, local_today(now, timezone))
        if secret is None:
            status, reason = prepared
            _finish(db, row.id, status, row.attempts, now, reason)
            counts[status] += 1
            continue
        body = prepared
        headers = {
            "Content-Type": "application/json",
            DELIVERY_HEADER: str(row.id),
            SIGNATURE_HEADER: signature(secret, int(now.timestamp()), body),
        }
        error: str | None
        try:
            status = post(row.url, body, headers, policy.timeout_seconds)
            error = None if 200 <= status < 300 else f"HTTP {status}"
        except OSError as exc:
            error = str(exc) or type(exc).__name__
        attempts = row.attempts + 1
        done = clock()
        if error is None:
            _finish(db, row.id, DELIVERED, attempts, done, None)
            counts["delivered"] += 1
        elif attempts >= policy.max_attempts:
            _finish(db, row.id, DEAD, attempts, done, error)
            counts["dead"] += 1
            log.warning("webhook delivery %s dead after %d attempts: %s", row.id, attempts, error[:200])
        else:
            db.execute(
                update(_deliveries)
                .where(_deliveries.c.id == row.id)
                .values(attempts=attempts, next_attempt_at=done + policy.delay(attempts), last_error=error[:500])
            )
            db.commit()
            counts["retry"] += 1
    return counts


def _prepare(db: Session, row: Any, triggers: dict[int, Any], today: date) -> tuple[Any, Any]:
    """``(secret, body)`` for a call that may go now, else ``(None, (status, reason))`` to end it."""
    if row.segment_id is not None:
        from central.segments.exports import prepare_call

        return prepare_call(db, row, today)
    trigger = triggers.get(row.trigger_id)
    customer_id, channel = _customer_and_channel(row, trigger) if trigger else (None, None)
    if trigger is None or customer_id is None or channel is None:
        return None, (DEAD, "the delivery's trigger or customer is unknown")
    # The trigger's own purpose: marketing, or service for a complaint follow-up.
    purpose = purpose_of(trigger.kind, trigger.params or {}, trigger.action)
    verdict = consent_verdict(db, customer_id, purpose, channel, today)
    if not verdict:
        return None, (CANCELLED, f"consent: {verdict.reason}")
    return trigger.action_params["secret"], row.body.encode()


def _finish(db: Session, delivery_id: int, status: str, attempts: int, at: datetime, error: str | None) -> None:
    values: dict[str, Any] = {"status": status, "attempts": attempts, "finished_at": at}
    if error is not None:
        values["last_error"] = error[:500]
    db.execute(update(_deliveries).where(_deliveries.c.id == delivery_id).values(**values))
    db.commit()


def dead_letters(db: Session, limit: int = 100) -> list[Any]:
    """The newest dead-lettered calls."""
    query = select(_deliveries).where(_deliveries.c.status == DEAD).order_by(_deliveries.c.id.desc()).limit(limit)
    return list(db.execute(query))


def retry_dead(db: Session, delivery_id: int, now: datetime) -> bool:
    """Put a dead call back in the queue with a fresh set of attempts; False if it is not dead."""
    result = db.execute(
        update(_deliveries)
        .where(_deliveries.c.id == delivery_id, _deliveries.c.status == DEAD)
        .values(status=PENDING, attempts=0, next_attempt_at=now, finished_at=None)
    )
    db.commit()
    return bool(result.rowcount)  # type: ignore[attr-defined]
