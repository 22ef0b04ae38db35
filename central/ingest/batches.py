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

import dataclasses
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from flask import Blueprint, current_app, has_app_context
from sqlalchemy import JSON, bindparam, case, func, or_, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from central import bulk
from central.auth import AuthenticatedDevice
from central.campaigns import coupon_redemptions, coupons
from central.customers import consent, dashboard, orders, purchases, reprints, statistics
from central.customers.models import Receipt
from central.customers.sales import currency_problem
from central.errors import ConcurrentChange
from central.fleet.models import Device
from central.identity.registry import Registry
from central.identity.resolve import IdentityFact, resolve
from central.ingest.models import Event
from central.members import codes as member_codes
from central.members import linking
from central.models import table
from central.presence import beacons
from central.presence import ingest as presence
from shared import wire

log = logging.getLogger(__name__)
bp = Blueprint("ingest", __name__)

MAX_ATTEMPTS = 5
# Far above any till receipt, and low enough that customer totals stay within NUMERIC(14, 2).
MAX_RECEIPT_TOTAL = Decimal(10) ** 9
_CENT = Decimal("0.01")
_events = table(Event)
_devices = table(Device)
_receipts = table(Receipt)
_RECEIPT_COLUMNS = (
    "event_pk",
    "device_id",
    "store_id",
    "receipt_no",
    "total",
    "observed_at",
    "customer_id",
    "register",
    "printed_at",
    "reprint_of",
    "flag",
)
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
    for received in batch.events:
        event = received
        if received.kind == "scan.member" and "proof" in received.payload:
            # A code the store could not check (no keys yet): central checks it, and never stores it.
            event = dataclasses.replace(received, payload=_settled(received))
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


def _settled(event: wire.Event) -> dict[str, Any]:
    try:
        at = wire.parse_time(event.observed_at).astimezone(UTC)
    except (ValueError, OverflowError):
        return {k: v for k, v in event.payload.items() if k != "proof"}
    return member_codes.settle_unverified(event.payload, at, current_app.config["SECRET_KEY"])


def _event_problem(device: AuthenticatedDevice, event: wire.Event) -> str | None:
    """Why central cannot store an event the wire schema accepted, or None.

    Values a column cannot hold must be rejected here: a database error would fail the whole batch,
    and the agent would send it again forever. (The payload schemas already keep NUL out of text
    and seq within 2^53-1.)
    """
    if event.store_id != device.store_id:
        return "store_mismatch"
    if event.seq > wire.MAX_SEQ:
        return "invalid_seq"
    if event.kind == "pos.receipt" and abs(Decimal(event.payload["total"])) >= MAX_RECEIPT_TOTAL:
        return "invalid_payload:total"
    if problem := currency_problem(event.kind, event.payload) or consent.event_problem(event.kind, event.payload):
        return problem
    return presence.presence_problem(event.kind, event.payload)


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
    resend_from = _gap_before(db, device.device_id, batch)
    # A visit naming a member keeps the name only if it may be attached now (location consent).
    members = beacons.member_visit_customers(
        db,
        [(r.event.event_id, r.event.payload) for r in rows if r.event.kind == "presence.visit"],
        now=now,
        registry=_registry(),
    )
    # Coupon signatures are checked before anything is written: SQLite's write lock is not held meanwhile.
    signer = coupons.code_signer(current_app.config["SECRET_KEY"])
    checked = {
        r.event.event_id: coupon_redemptions.check_code(r.event.payload, signer)
        for r in rows
        if coupon_redemptions.is_redemption(r.event.kind, r.event.payload)
    }
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
    printed = [r for r in fresh if r.event.kind == "pos.receipt"]
    # Reprints are stored as evidence and go no further: no customer, statistics or member scan.
    receipts, set_aside = _store_receipts(db, device, printed, pks, batch.batch_id, now) if printed else ([], [])
    reprinted = {r.event.event_id for r in printed} - {r.event.event_id for r in receipts}
    seen = [r for r in fresh if r.event.kind in presence.KINDS]
    if seen:
        rows_of = [(pks[r.event.event_id], r.event.kind, r.event.store_id, r.event.payload) for r in seen]
        attached = {pks[e]: cid for e, cid in members.items() if e in pks}
        presence.store_presence(conn, device.device_id, rows_of, attached)
    redemptions = [
        coupon_redemptions.Redemption(
            pks[r.event.event_id], r.event.store_id, r.observed_at, r.event.payload, checked[r.event.event_id]
        )
        for r in fresh
        if r.event.event_id in checked
    ]
    if redemptions:
        coupon_redemptions.apply(db, device.device_id, redemptions, now=now)
    others = [r for r in fresh if r.event.kind != "pos.receipt" and (r.event.identifiers or _member_scan(r))]
    customers: list[int | None] = []
    if others:
        # Any other event may name who it is about (a member scan, a signup at the till).
        outcome = resolve(db, [_fact(device, r, pks) for r in others], now, registry=_registry())
        customers = outcome.customer_ids
        consent.record_events(
            db.connection(),
            [
                (r.event, r.observed_at, pks[r.event.event_id], cid)
                for r, cid in zip(others, customers, strict=True)
                if r.event.kind in consent.KINDS
            ],
            now,
            origin=device.device_id,
            default_source="till",
        )
        beacons.after_consent(db, _consent_purposes(r.event for r in others), now=now, actor="ingest")
    scans = [
        linking.ScanRow(pks[r.event.event_id], r.event.store_id, r.observed_at, r.event.payload, customer_id)
        for r, customer_id in zip(others, customers, strict=True)
        if _member_scan(r)
    ]
    if scans or receipts:
        linking.record(db, device.device_id, scans, [r.observed_at for r in receipts], now=now, window=_link_window())
    stored = [
        (pks[r.event.event_id], r.event.kind, r.event.store_id, r.observed_at, r.event.payload)
        for r in fresh
        if r.event.event_id not in reprinted
    ]
    ordered = orders.record(db.connection(), device.device_id, stored)
    statistics.record_sales(db.connection(), orders.counted(stored, ordered))
    orders.recount(db.connection(), ordered, statistics.settings()[0])
    dashboard.signups_stored(db.connection(), stored)
    _touch_device(db, device, rows, fresh, now)
    return wire.Reply(
        accepted=tuple(r.event.event_id for r in fresh),
        duplicate=tuple(r.event.event_id for r in rows if r.event.event_id not in pks),
        rejected=(*batch.rejected, *rejected),
        resend_from=resend_from,
        warnings=tuple(wire.Rejection(event_id, reprints.TOTAL_DIFFERS) for event_id in set_aside),
    )


def _gap_before(db: Session, device_id: str, batch: wire.DecodedBatch) -> int | None:
    """The first seq of a gap between what central holds for the device and this batch, or None.

    One look-up on (device_id, seq): the highest seq stored below the batch's lowest (a backward
    read of one index entry on SQLite and PostgreSQL). A gap means central lost events it had
    acknowledged (restored from a backup), or the agent never sent some (presence data it shed,
    rows it set aside as unreadable) or central rejected them and so stored none. The agent sends
    again the delivered rows it holds in the gap, none of which central has, and counts the seqs
    it holds no row for once: a hole nobody can fill is asked about again only when a resent row
    lands just above it, and costs no resend (docs/decisions/0093-resync-after-a-restore.md).
    A device with nothing stored below the batch is new (or was restored to before its first
    event): nothing to follow on from.
    """
    lowest = min((e.seq for e in batch.events), default=None)
    if lowest is None or lowest <= 1 or lowest > wire.MAX_SEQ:
        return None
    held = db.execute(
        select(func.max(_events.c.seq)).where(_events.c.device_id == device_id, _events.c.seq < lowest)
    ).scalar_one_or_none()
    if held is None or held >= lowest - 1:
        return None
    # Info, not a warning: a shed row just before a batch asks too; the agent's heartbeats say what was lost.
    log.info(
        "device %s sent seq %d on, but central holds its events only up to seq %d; asking it to resend from %d",
        device_id,
        lowest,
        held,
        held + 1,
    )
    return int(held) + 1


def _consent_purposes(events: Iterable[wire.Event]) -> set[str]:
    return {str(e.payload.get("purpose")) for e in events if e.kind in consent.KINDS}


def _member_scan(row: _Row) -> bool:
    return linking.is_accepted_scan(row.event.kind, row.event.payload)


def _reprint_window() -> float:
    return float(current_app.config["CENTRAL"].receipts_reprint_window) if has_app_context() else 21600.0


def _link_window() -> float:
    return float(current_app.config["CENTRAL"].members_link_window) if has_app_context() else 120.0


def member_identifiers(payload: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """A receipt's member phone and card as (type, raw value) for identity resolution."""
    member = payload.get("member")
    if not isinstance(member, dict):
        return ()
    pairs = []
    for key, kind in (("phone", "phone"), ("card", "member_card")):
        value = member.get(key)
        if isinstance(value, str):
            pairs.append((kind, value))
    return tuple(pairs)


def _fact(device: AuthenticatedDevice, row: _Row, pks: dict[str, int]) -> IdentityFact:
    """What identity resolution needs from one fresh event: a receipt's member, plus its envelope."""
    event = row.event
    named = member_identifiers(event.payload) if event.kind == "pos.receipt" else ()
    if _member_scan(row):
        # The store verified the member's code offline; the member id is what it proved.
        named = (("member_id", event.payload["member_id"]),)
    return IdentityFact(
        event_pk=pks[event.event_id],
        source=device.device_id,
        event_id=event.event_id,
        kind=event.kind,
        store_id=event.store_id,
        observed_at=row.observed_at,
        identifiers=(*named, *sorted((event.identifiers or {}).items())),
        app_id=event.app_id,
        attributes=event.attributes or {},
    )


def _registry() -> Registry | None:
    return current_app.config.get("IDENTITY_REGISTRY") if has_app_context() else None


def _store_receipts(
    db: Session, device: AuthenticatedDevice, receipts: list[_Row], pks: dict[str, int], batch_id: str, now: datetime
) -> tuple[list[_Row], list[str]]:
    """Store the newly accepted receipts, resolving the customers of all but reprints; the receipts that count,
    and the event ids of those set aside (a copy whose total differs: counted nowhere, decision 0103)."""
    totals = [Decimal(r.event.payload["total"]).quantize(_CENT, ROUND_HALF_UP) for r in receipts]
    printed = [
        reprints.printed(device.device_id, r.event.store_id, r.event.payload, total, r.observed_at)
        for r, total in zip(receipts, totals, strict=True)
    ]
    verdicts = reprints.classify(db.connection(), printed, window=_reprint_window())
    firsts = [i for i, v in enumerate(verdicts) if not v.is_copy]
    outcome = resolve(db, [_fact(device, receipts[i], pks) for i in firsts], now, registry=_registry())
    customers = dict(zip(firsts, outcome.customer_ids, strict=True))

    def row(i: int, customer_id: int | None, reprint_of: int | None) -> tuple[Any, ...]:
        r, p = receipts[i], printed[i]
        return (
            pks[r.event.event_id],
            device.device_id,
            r.event.store_id,
            r.event.payload["receipt_no"],
            totals[i],
            r.observed_at,
            customer_id,
            p.register,
            p.printed_at,
            reprint_of,
            verdicts[i].flag,
        )

    inserted = bulk.insert(
        db.connection(),
        _receipts,
        _RECEIPT_COLUMNS,
        [row(i, customers[i], None) for i in firsts],
        returning=("id", "event_pk"),
    )
    id_of = {event_pk: receipt_id for receipt_id, event_pk in inserted}
    copies = [row(i, None, _first_id(v, receipts, pks, id_of)) for i, v in enumerate(verdicts) if v.is_copy]
    bulk.insert(db.connection(), _receipts, _RECEIPT_COLUMNS, copies)
    stats: dict[int, purchases.StatRow] = {}
    for i in firsts:
        r, total, customer_id = receipts[i], totals[i], customers[i]
        if customer_id is None:
            continue
        _, n, spent, first, last = stats.get(customer_id, (customer_id, 0, Decimal(0), r.observed_at, r.observed_at))
        stats[customer_id] = (customer_id, n + 1, spent + total, min(first, r.observed_at), max(last, r.observed_at))
    purchases.add_to_customers(db.connection(), list(stats.values()))
    log.debug(
        "batch %s: %d receipts (%d reprints), %d new customers, %d merges, %d to review",
        batch_id,
        len(receipts),
        len(copies),
        outcome.created,
        outcome.merged,
        outcome.reviewed,
    )
    set_aside = [receipts[i].event.event_id for i, v in enumerate(verdicts) if v.flag == reprints.TOTAL_DIFFERS]
    return [receipts[i] for i in firsts], set_aside


def _first_id(verdict: reprints.Verdict, receipts: list[_Row], pks: dict[str, int], id_of: dict[int, int]) -> int:
    """The receipt id of a copy's first copy: stored before, or just inserted from this batch."""
    if verdict.original_id is not None:
        return verdict.original_id
    assert verdict.original_index is not None
    return id_of[pks[receipts[verdict.original_index].event.event_id]]


def _touch_device(db: Session, device: AuthenticatedDevice, rows: list[_Row], fresh: list[_Row], now: datetime) -> None:
    """Record that the device was heard from, its highest seq, and its newest heartbeat.

    A heartbeat replaces the stored one only if its seq is higher than the stored heartbeat's own
    (not the highest seq of any event), so one event with an absurd seq cannot freeze it, and an old
    backlog arriving late changes nothing. Any new heartbeat says the agent is alive now.
    """
    values: dict[str, Any] = {"last_seen_at": now}
    if rows:
        top = max(r.event.seq for r in rows)
        values["last_seq"] = case(
            (_devices.c.last_seq.is_(None), top), (_devices.c.last_seq < top, top), else_=_devices.c.last_seq
        )
    beats = [r.event for r in fresh if r.event.kind == "agent.heartbeat"]
    if beats:
        newest = max(beats, key=lambda e: e.seq)
        # The comparison sees heartbeat_seq as it was before this UPDATE.
        current = or_(_devices.c.heartbeat_seq.is_(None), _devices.c.heartbeat_seq < newest.seq)
        values["agent_version"] = case((current, newest.payload["agent_version"]), else_=_devices.c.agent_version)
        values["last_heartbeat"] = case(
            (current, bindparam("heartbeat", newest.payload, type_=JSON)),
            else_=_devices.c.last_heartbeat,
        )
        values["heartbeat_seq"] = case((current, newest.seq), else_=_devices.c.heartbeat_seq)
        values["heartbeat_at"] = now
    db.execute(update(_devices).where(_devices.c.device_id == device.device_id).values(**values))
