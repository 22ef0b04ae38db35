"""Events from online sources and backfills: stored exactly once and resolved, in one transaction.

The one path for every event that does not come from an agent: ``POST /api/v1/sources/<name>/events``,
``central-server load-events`` and ``central-server import-members`` all end here. Events are
stored in the agents' ``events`` table under ``device_id = "source:<name>"`` with the source's own
event id, with ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` exactly as batch ingest does
(``central.ingest.batches``): only the rows actually inserted are fresh, everything else is a
duplicate, forever. Every fresh event that names an identifier goes through
:func:`central.identity.resolve.resolve` in the same transaction, which records the customer it
was linked to in ``event_customers`` (the one place merges and splits keep current). An event id
repeated within one call is a duplicate of its first copy, so the outcome never depends on where a
backfill's chunks happen to end; the API answers each id once, for its first copy.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import orjson
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from central import bulk
from central.customers import consent, dashboard, orders, purchases, reprints, statistics
from central.customers.models import Receipt
from central.customers.sales import currency_problem
from central.identity import golden
from central.identity.models import EventCustomer
from central.identity.registry import Registry
from central.identity.resolve import IdentityFact, Resolution, resolve
from central.ingest.batches import (
    _EVENT_COLUMNS,
    _RECEIPT_COLUMNS,
    MAX_ATTEMPTS,
    MAX_RECEIPT_TOTAL,
    _is_retryable,
    _reprint_window,
)
from central.ingest.models import Event
from central.models import table
from central.presence import beacons
from shared import payloads, wire
from shared.ids import UUID7

log = logging.getLogger(__name__)

# "console" is the console's own: a source called so would write the events (complaints, notes'
# evidence) the console files, and be shown as a console user's.
SOURCE_RE = re.compile(r"^(?!console\Z)[a-z0-9][a-z0-9_.-]{0,56}\Z")
SOURCE_PREFIX = "source:"
# Receipts name their member in the payload; the registry's types for those fields.
_MEMBER_FIELDS = (("phone", "phone"), ("card", "member_card"))
_events = table(Event)
_receipts = table(Receipt)
_owners = table(EventCustomer)
_CENT = Decimal("0.01")
ONLINE = "app"
"""Where a consent decision an online source posts was taken, unless its payload says (decision 0107)."""
_new_batch_id = UUID7()
# How far past central's clock an online source's or a backfill's event may be dated
# (sources.max_ahead_minutes). A source whose clock is off, or that sends local time labelled as
# UTC (eight hours ahead here), would otherwise date sales in the future, where they would stay
# their customer's last purchase, and keep them "active", for as long.
DEFAULT_MAX_AHEAD = timedelta(hours=1)
# Before this, an online or backfilled event's date is a placeholder, not a sale's: 0001-01-01, or
# a null Unix time (1970-01-01 08:00 in Beijing time), which would count as a customer's first
# purchase decades ago. No event of this product's chains is from 1970.
EARLIEST = datetime(1971, 1, 1, tzinfo=UTC)


def device_for(source: str) -> str:
    """The ``events.device_id`` of a source's events: ``source:<name>``."""
    return SOURCE_PREFIX + source


@dataclass(frozen=True, slots=True)
class SourceRow:
    """A readable event of a source with its time in UTC."""

    event: wire.Event
    observed_at: datetime


@dataclass
class Staged:
    """What one call stored: per-event answers, the facts resolved and what resolution said."""

    accepted: list[str] = field(default_factory=list)
    duplicate: list[str] = field(default_factory=list)
    rejected: list[wire.Rejection] = field(default_factory=list)
    warnings: list[wire.Rejection] = field(default_factory=list)  # accepted, but an identifier was left out
    set_aside: list[str] = field(default_factory=list)  # receipts kept as evidence, not counted (decision 0103)
    pks: dict[str, int] = field(default_factory=dict)
    facts: list[IdentityFact] = field(default_factory=list)
    resolution: Resolution | None = None

    def reply(self) -> wire.Reply:
        """The answer to the call: every event id in exactly one list, that of its first copy."""
        answered = {*self.accepted, *(r.event_id for r in self.rejected)}
        duplicate = tuple(e for e in dict.fromkeys(self.duplicate) if e not in answered)
        return wire.Reply(tuple(self.accepted), duplicate, tuple(self.rejected))


def observed(text: str, latest: datetime) -> datetime | str:
    """An event's ``observed_at`` in UTC, or why it cannot be (``invalid_observed_at``, also for a
    placeholder date before :data:`EARLIEST`, or ``observed_at_in_future`` when after ``latest``)."""
    try:
        moment = wire.parse_time(text).astimezone(UTC)
    except (ValueError, OverflowError):
        return "invalid_observed_at"
    if moment < EARLIEST:
        return "invalid_observed_at"
    return moment if moment <= latest else "observed_at_in_future"


def attribute_problem(row: SourceRow) -> str | None:
    """``invalid_attribute:birthday`` for a birthday no one can have when the event was observed (unreadable,
    before 1900 or after the event: :func:`central.identity.golden.plausible_birthday`), the bounds the
    legacy import calls ``implausible_date``; a placeholder such as 2099-01-01 would make an adult a minor.
    ``unsupported_currency`` for a sale in another currency than the chain's (:func:`currency_problem`)."""
    if problem := currency_problem(row.event.kind, row.event.payload):
        return problem
    if row.event.kind == "pos.receipt" and abs(Decimal(row.event.payload["total"])) >= MAX_RECEIPT_TOTAL:
        return "invalid_payload:total"  # as an agent's: more than a receipt's column holds
    birthday = (row.event.attributes or {}).get("birthday")
    if birthday is None:
        return None
    day = golden.read_birthday(birthday) if isinstance(birthday, str) else None
    if day is None or not golden.plausible_birthday(day, row.observed_at):
        return "invalid_attribute:birthday"
    return None


def read_events(
    raw_events: Iterable[Any], latest: datetime, max_event_chars: int = payloads.MAX_EVENT_BYTES
) -> tuple[list[SourceRow], list[str], list[wire.Rejection]]:
    """Decode raw events dated at the latest ``latest``: storable rows, ids repeated within the call,
    rejections.

    An id's first copy decides its answer, stored or rejected; a later copy of it is never stored,
    not even when the first was refused and the later one would pass (a client that resends a
    corrected event does so in a new call, where it is read on its own).
    """
    rows: list[SourceRow] = []
    repeated: list[str] = []
    rejected: list[wire.Rejection] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_events):
        event_id = raw.get("event_id") if isinstance(raw, dict) else None
        if isinstance(event_id, str) and event_id in seen:
            repeated.append(event_id)
            continue
        if isinstance(event_id, str):
            seen.add(event_id)
        event = wire.decode_source_event(raw, max_event_chars)
        if isinstance(event, wire.Rejection):
            rejected.append(event if event.event_id is not None else wire.Rejection(None, event.reason, index))
            continue
        observed_at = observed(event.observed_at, latest)
        if isinstance(observed_at, str):
            rejected.append(wire.Rejection(event.event_id, observed_at))
            continue
        row = SourceRow(event, observed_at)
        if problem := attribute_problem(row):
            rejected.append(wire.Rejection(event.event_id, problem))
            continue
        rows.append(row)
    return rows, repeated, rejected


def insert_events(db: Session, device_id: str, rows: Sequence[SourceRow], now: datetime) -> dict[str, int]:
    """Insert the rows not stored before; return event id -> events.id for those actually inserted."""
    batch_id = _new_batch_id()
    inserted = bulk.insert(
        db.connection(),
        _events,
        _EVENT_COLUMNS,
        [
            (
                device_id,
                r.event.event_id,
                r.event.seq,
                r.event.kind,
                r.event.store_id,
                r.observed_at,
                now,
                r.event.payload,
                batch_id,
                r.event.identifiers,
                r.event.app_id,
                r.event.attributes,
            )
            for r in rows
        ],
        returning=("id", "event_id"),
        skip_conflicts_on=("device_id", "event_id"),
    )
    return {event_id: pk for pk, event_id in inserted}


EVENT_ID_CONFLICT = "event_id_conflict"
_STORED = ("event_id", "kind", "store_id", "observed_at", "payload", "identifiers", "app_id", "attributes")


def conflicting(db: Session, device_id: str, repeats: Sequence[SourceRow]) -> set[str]:
    """The event ids among ``repeats`` (rows whose id the source already used) stored with other content.

    A retry sends the same event again and is a duplicate; the same id with another kind, time,
    store, payload, identifiers or attributes is a collision (a counter reset, an order number used
    as the event id) whose new content would otherwise be dropped without a word.
    """
    if not repeats:
        return set()
    stored = {
        row[0]: row[1:]
        for row in bulk.select_matching(
            db.connection(),
            _events,
            ("device_id", "event_id"),
            [(device_id, r.event.event_id) for r in repeats],
            _STORED,
        )
    }
    out = set()
    for r in repeats:
        was = stored.get(r.event.event_id)
        if was is None:
            continue
        kind, store_id, at, payload, identifiers, app_id, attributes = was
        then = (kind, store_id, bulk.stored_instant(at), _json(payload), _json(identifiers), app_id, _json(attributes))
        if content(r) != then:
            out.add(r.event.event_id)
    return out


def content(row: SourceRow) -> tuple[Any, ...]:
    """What an event says, to tell a retry (the same) from another event under a used id."""
    e = row.event
    return (
        e.kind,
        e.store_id,
        row.observed_at,
        e.payload or None,
        e.identifiers or None,
        e.app_id,
        e.attributes or None,
    )


def _json(value: Any) -> Any:
    """A JSON column as the driver hands it back (SQLite's text, PostgreSQL's decoded value), decoded;
    an empty object as None, as an event without it is stored."""
    decoded = orjson.loads(value) if isinstance(value, str | bytes) else value
    return decoded or None


def fact_identifiers(event: wire.Event) -> tuple[tuple[str, str], ...]:
    """The (type, raw value) pairs an event names: its envelope, and a receipt's ``payload.member``."""
    pairs = list((event.identifiers or {}).items())
    member = event.payload.get("member") if event.kind == "pos.receipt" else None
    if isinstance(member, dict):
        named = {kind for kind, _ in pairs}
        for field_name, kind in _MEMBER_FIELDS:
            value = member.get(field_name)
            if isinstance(value, str) and kind not in named:
                pairs.append((kind, value))
    return tuple(pairs)


def consent_problem(event: wire.Event, registry: Registry) -> str | None:
    """Why a consent event cannot be recorded, before it is stored: a grant naming no notice version
    (``invalid_payload:notice_version``, :func:`central.customers.consent.event_problem`), or
    ``consent_without_identifier`` when it names no identifier the registry can use (none at all,
    ``12345``, a test number, a staff phone).

    Accepted, such an event would be kept with no decision recorded, or with one no one could show
    was informed: the source would believe a decision had landed that no one will ever be held to.
    """
    if event.kind not in consent.KINDS:
        return None
    if problem := consent.event_problem(event.kind, event.payload):
        return problem
    strong, weak, _ = registry.usable(fact_identifiers(event), event.app_id)
    return None if strong or weak else "consent_without_identifier"


def unusable_identifiers(event: wire.Event, registry: Registry) -> list[str]:
    """``unusable_identifier:<type>:<why>`` for each identifier the registry leaves out of an accepted
    event (``invalid``, ``blocked``, ``staff_phone``, ``placeholder``, ...; see Registry.check)."""
    out = []
    for kind, raw in fact_identifiers(event):
        value, why = registry.check(kind, raw, event.app_id)
        if value is None:
            out.append(f"unusable_identifier:{kind}:{why}")
    return out


def identity_fact(device_id: str, row: SourceRow, pk: int, operator: str | None = None) -> IdentityFact:
    """The fact identity resolution needs from one stored event."""
    return IdentityFact(
        event_pk=pk,
        source=device_id,
        event_id=row.event.event_id,
        kind=row.event.kind,
        store_id=row.event.store_id,
        observed_at=row.observed_at,
        identifiers=fact_identifiers(row.event),
        app_id=row.event.app_id,
        attributes=dict(row.event.attributes or {}),
        operator=operator,
    )


def stage_rows(
    db: Session,
    source: str,
    rows: Sequence[SourceRow],
    now: datetime,
    *,
    registry: Registry,
    allow_weak_merge: float | None = None,
    consent_source: str = ONLINE,
) -> Staged:
    """Store and resolve readable events in the caller's transaction (the caller commits).

    A consent event's decision is recorded as taken at ``consent_source`` unless its payload names
    where it was taken (``app`` for an online source's events, ``import`` for a backfill's).
    """
    device_id = device_for(source)
    pks = insert_events(db, device_id, rows, now)
    staged = Staged(pks=pks)
    conflicts = conflicting(db, device_id, [r for r in rows if r.event.event_id not in pks])
    for row in rows:
        event_id = row.event.event_id
        if event_id in pks:
            staged.accepted.append(event_id)
        elif event_id in conflicts:
            staged.rejected.append(wire.Rejection(event_id, EVENT_ID_CONFLICT))
        else:
            staged.duplicate.append(event_id)
    # A receipt another sender (an agent, another source) already brought is kept as evidence and
    # goes no further: no customer, no statistics (decisions 0085 and 0089).
    copies = store_receipts(
        db, device_id, [r for r in rows if r.event.event_id in pks and r.event.kind == "pos.receipt"], pks
    )
    staged.facts = [
        fact
        for row in rows
        if row.event.event_id in pks
        and row.event.event_id not in copies
        and (fact := identity_fact(device_id, row, pks[row.event.event_id])).identifiers
    ]
    if staged.facts:
        staged.resolution = resolve(db, staged.facts, now, registry=registry, allow_weak_merge=allow_weak_merge)
        by_id = {row.event.event_id: row for row in rows}
        consent.record_events(
            db.connection(),
            [
                (by_id[f.event_id].event, f.observed_at, f.event_pk, cid)
                for f, cid in zip(staged.facts, staged.resolution.customer_ids, strict=True)
                if f.kind in consent.KINDS
            ],
            now,
            origin=device_id,
            default_source=consent_source,
        )
        beacons.after_consent(
            db,
            {str(by_id[f.event_id].event.payload.get("purpose")) for f in staged.facts if f.kind in consent.KINDS},
            now=now,
            actor=device_id,
        )
        link_till_receipts(
            db,
            [
                pks[r.event.event_id]
                for r in rows
                if r.event.kind == "pos.receipt"
                and r.event.store_id
                and r.event.event_id in pks
                and r.event.event_id not in copies
                and fact_identifiers(r.event)
            ],
        )
    staged.set_aside = [event_id for event_id, flag in copies.items() if flag == reprints.TOTAL_DIFFERS]
    stored = [
        (pks[r.event.event_id], r.event.kind, r.event.store_id, r.observed_at, r.event.payload)
        for r in rows
        if r.event.event_id in pks and r.event.event_id not in copies
    ]
    # An online order posted again with a new status is stored, and counted once (decision 0089).
    ordered = orders.record(db.connection(), device_id, stored)
    statistics.record_sales(db.connection(), orders.counted(stored, ordered))
    orders.recount(db.connection(), ordered, statistics.settings()[0])
    dashboard.signups_stored(db.connection(), stored)
    return staged


def link_till_receipts(db: Session, event_pks: Sequence[int]) -> None:
    """Give a source's freshly stored store receipts (not copies) the customers their events were linked to,
    and add them to those customers' till figures (``receipts_count``, ``total_spent``), as an agent's.

    A receipt a store printed is a till receipt however it reached central (an agent, an online
    source, a backfill: decision 0091 as amended); merges and splits then move it with its event.
    """
    conn = db.connection()
    for listed in bulk.integer_lists(sorted(event_pks)):
        conn.exec_driver_sql(
            f"UPDATE {_receipts.name} SET customer_id = (SELECT ec.customer_id FROM {_owners.name} ec"  # noqa: S608
            f" WHERE ec.event_pk = {_receipts.name}.event_pk) WHERE event_pk IN ({listed})"
        )
    stats: list[purchases.StatRow] = []
    for chunk in range(0, len(event_pks), 5000):
        found = conn.execute(
            select(
                _receipts.c.customer_id,
                func.count(),
                func.sum(_receipts.c.total),
                func.min(_receipts.c.observed_at),
                func.max(_receipts.c.observed_at),
            )
            .where(_receipts.c.event_pk.in_(event_pks[chunk : chunk + 5000]), _receipts.c.customer_id.is_not(None))
            .group_by(_receipts.c.customer_id)
        )
        stats += [(int(cid), int(n), Decimal(total), first, last) for cid, n, total, first, last in found]
    merged: dict[int, purchases.StatRow] = {}
    for cid, n, total, first, last in stats:
        _, n0, total0, first0, last0 = merged.get(cid, (cid, 0, Decimal(0), first, last))
        merged[cid] = (cid, n0 + n, total0 + total, min(first, first0), max(last, last0))
    purchases.add_to_customers(conn, list(merged.values()))


def store_receipts(
    db: Session, device_id: str, receipts: Sequence[SourceRow], pks: dict[str, int]
) -> dict[str, str | None]:
    """Store a source's freshly accepted receipts in ``receipts``; the event ids of the copies, with their flags.

    Stored with no customer: :func:`link_till_receipts` gives a store's receipt the customer its
    event is linked to once identities are resolved. Stored so that the same receipt coming again
    from an agent or another source is recognised as a copy, and so that one coming from here
    after an agent's is.
    """
    if not receipts:
        return {}
    totals = [Decimal(r.event.payload["total"]).quantize(_CENT, ROUND_HALF_UP) for r in receipts]
    printed = [
        reprints.printed(device_id, r.event.store_id, r.event.payload, total, r.observed_at)
        for r, total in zip(receipts, totals, strict=True)
    ]
    verdicts = reprints.classify(db.connection(), printed, window=_reprint_window())

    def row(i: int, reprint_of: int | None) -> tuple[Any, ...]:
        r, p = receipts[i], printed[i]
        return (
            pks[r.event.event_id],
            device_id,
            r.event.store_id,
            p.receipt_no,
            totals[i],
            r.observed_at,
            None,
            p.register,
            p.printed_at,
            reprint_of,
            verdicts[i].flag,
        )

    firsts = [i for i, v in enumerate(verdicts) if not v.is_copy]
    inserted = bulk.insert(
        db.connection(), _receipts, _RECEIPT_COLUMNS, [row(i, None) for i in firsts], ("id", "event_pk")
    )
    id_of = {event_pk: receipt_id for receipt_id, event_pk in inserted}
    copies = []
    for i, verdict in enumerate(verdicts):
        if not verdict.is_copy:
            continue
        if verdict.original_id is not None:
            copies.append(row(i, verdict.original_id))
        else:
            assert verdict.original_index is not None
            copies.append(row(i, id_of[pks[receipts[verdict.original_index].event.event_id]]))
    bulk.insert(db.connection(), _receipts, _RECEIPT_COLUMNS, copies)
    return {receipts[i].event.event_id: v.flag for i, v in enumerate(verdicts) if v.is_copy}


def store_rows(
    db: Session,
    source: str,
    rows: Sequence[SourceRow],
    now: datetime,
    *,
    registry: Registry,
    consent_source: str = ONLINE,
) -> Staged:
    """Store readable events in one transaction, retrying it whole if a concurrent one got in the way."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            staged = stage_rows(db, source, rows, now, registry=registry, consent_source=consent_source)
            db.commit()
            return staged
        except Exception as exc:  # _is_retryable decides; anything else is raised again
            db.rollback()
            if not _is_retryable(exc) or attempt == MAX_ATTEMPTS:
                raise
            log.info("events from source %s collided with another transaction; retrying", source)
    raise AssertionError("unreachable")


def store_source_events(
    db: Session,
    source: str,
    raw_events: Iterable[Any],
    now: datetime,
    *,
    registry: Registry,
    max_ahead: timedelta = DEFAULT_MAX_AHEAD,
    max_event_chars: int = payloads.MAX_EVENT_BYTES,
) -> Staged:
    """Decode, store and resolve one call's raw events in one transaction (committed)."""
    rows, repeated, rejected = read_events(raw_events, now + max_ahead, max_event_chars)
    storable = []
    for row in rows:
        problem = consent_problem(row.event, registry)
        if problem is None:
            storable.append(row)
        else:
            rejected.append(wire.Rejection(row.event.event_id, problem))
    staged = store_rows(db, source, storable, now, registry=registry)
    staged.duplicate.extend(repeated)
    staged.rejected.extend(rejected)
    staged.warnings = accepted_warnings(storable, staged.accepted, registry, set_aside=staged.set_aside)
    return staged


def accepted_warnings(
    rows: Sequence[SourceRow], accepted: Sequence[str], registry: Registry, *, set_aside: Sequence[str] = ()
) -> list[wire.Rejection]:
    """What the sender is told of its accepted events: each identifier the registry left out
    (``unusable_identifier:<type>:<why>``), then an order status central does not know
    (``unknown_order_status``: the order counts), then a receipt kept as evidence and counted nowhere
    because it repeats a stored receipt's number with another total (``reprint_total_differs``,
    decision 0103)."""
    fresh = set(accepted)
    aside = set(set_aside)
    out: list[wire.Rejection] = []
    for row in rows:
        if row.event.event_id not in fresh:
            continue
        whys = unusable_identifiers(row.event, registry)
        if status := orders.status_warning(row.event.kind, row.event.payload):
            whys.append(status)
        if row.event.event_id in aside:
            whys.append(reprints.TOTAL_DIFFERS)
        out.extend(wire.Rejection(row.event.event_id, why) for why in whys)
    return out
