"""Batch ingest: ``POST /api/v1/batches`` stores a device's signed, gzipped batch exactly once.

Each event is answered individually (accepted, duplicate or rejected with a reason), all in one
transaction. The database's UNIQUE (device_id, event_id) is the guarantee against double counting:
events are inserted with ``ON CONFLICT DO NOTHING ... RETURNING``, only the rows actually inserted
count as accepted and feed the identity step, and every other valid event is a duplicate; so a
replayed batch adds nothing, and of two copies of a batch racing each other exactly one stores it.
This takes one statement where "look up the stored ones, then insert the rest" takes two. A batch
whose transaction collides with another (two new customers claiming the same phone, a merge under
way, a deadlock) fails with an IntegrityError or ConcurrentChange, rolls back and is retried whole.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from flask import Blueprint
from sqlalchemy import JSON, bindparam, case, or_, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from central import bulk
from central.auth import AuthenticatedDevice
from central.customers.models import Receipt
from central.fleet.models import Device
from central.identity.linking import ConcurrentChange, ReceiptFact, link_receipts, member_identifiers
from central.ingest.models import Event
from central.models import table
from shared import wire

log = logging.getLogger(__name__)
bp = Blueprint("ingest", __name__)

MAX_ATTEMPTS = 5
MAX_SEQ = 2**63 - 1  # BIGINT
# Far above any till receipt, and low enough that customer totals stay within NUMERIC(14, 2).
MAX_RECEIPT_TOTAL = Decimal(10) ** 9
_CENT = Decimal("0.01")
_events = table(Event)
_devices = table(Device)
_receipts = table(Receipt)
_RECEIPT_COLUMNS = ("event_pk", "device_id", "store_id", "receipt_no", "total", "observed_at", "customer_id")
_EVENT_COLUMNS = (
    "device_id",
    "event_id",
    "seq",
    "kind",
    "store_id",
    "observed_at",
    "received_at",
    "payload",
    "batch_id",
    "identifiers",
    "app_id",
    "attributes",
)
# PostgreSQL's deadlock and serialization failures: the transaction may simply be run again.
_RETRY_SQLSTATES = frozenset({"40P01", "40001"})


@dataclass(frozen=True, slots=True)
class _Row:
    event: wire.Event
    observed_at: datetime


def _sort_events(device: AuthenticatedDevice, batch: wire.DecodedBatch) -> tuple[list[_Row], list[wire.Rejection]]:
    """Split the batch's readable events into storable rows and central-side rejections."""
    rows: list[_Row] = []
    rejected: list[wire.Rejection] = []
    for event in batch.events:
        reason = _event_problem(device, event)
        if reason is not None:
            rejected.append(wire.Rejection(event.event_id, reason))
            continue
        try:
            observed_at = wire.parse_time(event.observed_at).astimezone(UTC)
        except (ValueError, OverflowError):
            rejected.append(wire.Rejection(event.event_id, "invalid_observed_at"))
            continue
        rows.append(_Row(event, observed_at))
    return rows, rejected


def _event_problem(device: AuthenticatedDevice, event: wire.Event) -> str | None:
    """Why central cannot store an event the wire schema accepted, or None.

    Values a column cannot hold must be rejected here: a database error would fail the whole batch,
    and the agent would send it again forever.
    """
    if event.store_id != device.store_id:
        return "store_mismatch"
    if event.seq > MAX_SEQ:
        return "invalid_seq"
    if event.kind == "pos.receipt":
        # PostgreSQL text cannot hold NUL, and receipt_no is copied out of the payload into a column.
        if "\x00" in event.payload["receipt_no"]:
            return "invalid_payload:receipt_no"
        if abs(Decimal(event.payload["total"])) >= MAX_RECEIPT_TOTAL:
            return "invalid_payload:total"
    if event.kind == "agent.heartbeat" and "\x00" in event.payload["agent_version"]:
        return "invalid_payload:agent_version"
    return None


def _is_retryable(exc: Exception) -> bool:
    if isinstance(exc, IntegrityError | ConcurrentChange):
        return True
    return isinstance(exc, OperationalError) and getattr(exc.orig, "sqlstate", None) in _RETRY_SQLSTATES


def store_batch(db: Session, device: AuthenticatedDevice, batch: wire.DecodedBatch, now: datetime) -> wire.Reply:
    """Store the batch in one transaction, retrying if a concurrent transaction got in the way."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            reply = _store_once(db, device, batch, now)
            db.commit()
            return reply
        except (IntegrityError, OperationalError, ConcurrentChange) as exc:
            db.rollback()
            if not _is_retryable(exc) or attempt == MAX_ATTEMPTS:
                raise
            log.info(
                "batch %s from %s collided with another transaction; retrying",
                batch.batch_id,
                device.device_id,
            )
    raise AssertionError("unreachable")


def _store_once(db: Session, device: AuthenticatedDevice, batch: wire.DecodedBatch, now: datetime) -> wire.Reply:
    rows, rejected = _sort_events(device, batch)
    conn = db.connection()
    # ON CONFLICT DO NOTHING against UNIQUE (device_id, event_id): the rows that come back are the
    # accepted events; every other row was already stored, by an earlier copy of this batch or by a
    # concurrent one that committed first (PostgreSQL waits for that one's outcome before deciding).
    inserted = bulk.insert(
        conn,
        _events,
        _EVENT_COLUMNS,
        [
            (
                device.device_id,
                r.event.event_id,
                r.event.seq,
                r.event.kind,
                r.event.store_id,
                r.observed_at,
                now,
                r.event.payload,
                batch.batch_id,
                r.event.identifiers,
                r.event.app_id,
                r.event.attributes,
            )
            for r in rows
        ],
        returning=("id", "event_id"),
        skip_conflicts_on=("device_id", "event_id"),
    )
    pks = {event_id: pk for pk, event_id in inserted}
    fresh = [r for r in rows if r.event.event_id in pks]
    receipts = [r for r in fresh if r.event.kind == "pos.receipt"]
    if receipts:
        _store_receipts(db, device, receipts, pks, batch.batch_id, now)
    _touch_device(db, device, rows, fresh, now)
    return wire.Reply(
        accepted=tuple(r.event.event_id for r in fresh),
        duplicate=tuple(r.event.event_id for r in rows if r.event.event_id not in pks),
        rejected=(*batch.rejected, *rejected),
    )


def _store_receipts(
    db: Session, device: AuthenticatedDevice, receipts: list[_Row], pks: dict[str, int], batch_id: str, now: datetime
) -> None:
    """Run the identity step for the newly accepted receipts and store them with their customers."""
    totals = [Decimal(r.event.payload["total"]).quantize(_CENT, ROUND_HALF_UP) for r in receipts]
    outcome = link_receipts(
        db,
        [
            ReceiptFact(r.event.event_id, total, r.observed_at, member_identifiers(r.event.payload))
            for r, total in zip(receipts, totals, strict=True)
        ],
        now,
    )
    bulk.insert(
        db.connection(),
        _receipts,
        _RECEIPT_COLUMNS,
        [
            (
                pks[r.event.event_id],
                device.device_id,
                r.event.store_id,
                r.event.payload["receipt_no"],
                total,
                r.observed_at,
                customer_id,
            )
            for r, total, customer_id in zip(receipts, totals, outcome.customer_ids, strict=True)
        ],
    )
    log.debug(
        "batch %s: %d receipts, %d new customers, %d merges",
        batch_id,
        len(receipts),
        outcome.customers_created,
        outcome.customers_merged,
    )


def _touch_device(db: Session, device: AuthenticatedDevice, rows: list[_Row], fresh: list[_Row], now: datetime) -> None:
    """Record that the device was heard from, its highest seq, and its newest heartbeat."""
    values: dict[str, Any] = {"last_seen_at": now}
    if rows:
        top = max(r.event.seq for r in rows)
        values["last_seq"] = case(
            (_devices.c.last_seq.is_(None), top), (_devices.c.last_seq < top, top), else_=_devices.c.last_seq
        )
    beats = [r.event for r in fresh if r.event.kind == "agent.heartbeat"]
    if beats:
        newest = max(beats, key=lambda e: e.seq)
        # A heartbeat older than what the device already reported (a resent backlog) changes nothing;
        # the comparison sees last_seq as it was before this UPDATE.
        current = or_(_devices.c.last_seq.is_(None), _devices.c.last_seq <= newest.seq)
        values["agent_version"] = case((current, newest.payload["agent_version"]), else_=_devices.c.agent_version)
        values["last_heartbeat"] = case(
            (current, bindparam("heartbeat", newest.payload, type_=JSON)),
            else_=_devices.c.last_heartbeat,
        )
    db.execute(update(_devices).where(_devices.c.device_id == device.device_id).values(**values))
