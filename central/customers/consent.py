"""Recording consent: ``consent.given`` and ``consent.withdrawn`` events, console and API decisions.

Every decision is one row of ``consent_decisions``, named once by ``(origin, origin_id)`` (an
event's device and event id, or a console/API call's id), so a duplicate delivery or a retried
call adds nothing. Rows are never updated: which decision holds is worked out when asked
(:mod:`central.customers.consent_gate`), latest by observed time first. Events are recorded in
the ingest transaction that stores them, right after identity resolution named their customer::

    {"kind": "consent.withdrawn", "observed_at": "2026-11-23T09:58:25+08:00",
     "identifiers": {"phone": "13812345678"},
     "payload": {"purpose": "marketing", "channel": "sms", "notice_version": "2026-01"}}

A decision for ``profiling`` or ``location`` covers every channel; one for ``marketing`` or
``service`` covers the channel it names, or every channel when it names none.

A grant is only informed if we know which notice the customer was shown (PIPL Art. 14 and 17), so
every path refuses a grant that names no notice version: an event with ``invalid_payload:notice_version``
(:func:`event_problem`), a console/API call with the same reason (:func:`parse_request`). A withdrawal
needs none. Backfills of legacy grants that never kept one name a marker such as ``legacy`` on the
command line (decision 0107).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Connection

from central import bulk
from central.customers import profiling
from central.customers.consent_models import ALL_CHANNELS, GUARDIAN, ConsentDecision
from central.models import table
from shared.payloads import CONSENT_CHANNELS, CONSENT_PURPOSES, CONSENT_SOURCES

PURPOSES = CONSENT_PURPOSES
CHANNELS = CONSENT_CHANNELS
SOURCES = CONSENT_SOURCES
PER_CHANNEL = frozenset({"service", "marketing"})
"""Purposes decided per channel; the others hold for the customer as a whole."""
KINDS = {"consent.given": True, "consent.withdrawn": False}
MAX_NOTICE = 32
"""Longest notice version (``consent_decisions.notice_version``, the payload schema's ``Text(32)``)."""
NO_NOTICE = "invalid_payload:notice_version"
"""Why a grant that names no notice version is refused, on every path."""
_decisions = table(ConsentDecision)
_COLUMNS = (
    "customer_id",
    "event_pk",
    "purpose",
    "channel",
    "granted",
    "observed_at",
    "recorded_at",
    "source",
    "notice_version",
    "scope",
    "origin",
    "origin_id",
    "actor",
)


class ConsentError(ValueError):
    """A console or API decision that cannot be recorded as asked; the message says which field.

    ``field`` is where in the body (``decisions[0].notice_version``), ``reason`` the code an event
    with the same fault is refused with (``invalid_payload:notice_version``).
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.reason = f"invalid_payload:{field.rpartition('.')[2]}" if field else "invalid_payload"


@dataclass(frozen=True, slots=True)
class Decision:
    """One consent given (``granted``) or withdrawn, for one customer, purpose and channel."""

    customer_id: int
    purpose: str
    channel: str
    granted: bool
    observed_at: datetime
    source: str
    origin: str
    origin_id: str
    notice_version: str = ""
    scope: str = ""
    event_pk: int | None = None
    actor: str | None = None

    def row(self, now: datetime) -> tuple[Any, ...]:
        return (
            self.customer_id,
            self.event_pk,
            self.purpose,
            self.channel,
            self.granted,
            self.observed_at,
            now,
            self.source,
            self.notice_version,
            self.scope,
            self.origin,
            self.origin_id,
            self.actor,
        )


class ConsentEvent(Protocol):
    """What recording needs of a stored event (``shared.wire.Event`` has it)."""

    @property
    def kind(self) -> str: ...
    @property
    def event_id(self) -> str: ...
    @property
    def payload(self) -> dict[str, Any]: ...


def notice_of(payload: Mapping[str, Any]) -> str:
    """The notice version a consent payload names (``policy_version`` in the first release), or ""."""
    return str(payload.get("notice_version") or payload.get("policy_version") or "")


def notice_problem(notice: str) -> str | None:
    """Why ``notice`` cannot name a privacy notice version, or None."""
    if len(notice) > MAX_NOTICE or any(ord(c) < 32 or ord(c) == 127 for c in notice):
        return f"the notice version must be at most {MAX_NOTICE} characters, without control characters"
    return None


def event_problem(kind: str, payload: Mapping[str, Any]) -> str | None:
    """Why a consent event cannot be recorded, before it is stored: ``invalid_payload:notice_version``
    for a grant that names no notice version, or a notice version with control characters;
    ``invalid_payload:scope`` for a scope other than ``guardian``; else None.

    Stored, such a grant would hold without any proof of what the customer was told.
    """
    if kind not in KINDS:
        return None
    if payload.get("scope", "") not in ("", GUARDIAN):
        # Stored, a guardian's grant spelt otherwise ("parent") would be kept and never count for the minor.
        return "invalid_payload:scope"
    notice = notice_of(payload)
    missing = KINDS[kind] and not notice.strip()
    return NO_NOTICE if missing or notice_problem(notice) else None


def channel_for(purpose: str, channel: str | None) -> str:
    """The stored channel: the one named for per-channel purposes, else every channel."""
    return channel if purpose in PER_CHANNEL and channel else ALL_CHANNELS


def from_event(
    event: ConsentEvent,
    observed_at: datetime,
    event_pk: int | None,
    customer_id: int | None,
    *,
    origin: str,
    default_source: str,
) -> Decision | None:
    """The decision a stored consent event states, or None (not a consent event, or it names no customer).

    The payload was already checked against its schema, so purpose, channel and source are known values.
    """
    granted = KINDS.get(event.kind)
    if granted is None or customer_id is None:
        return None
    payload = event.payload
    purpose = payload["purpose"]
    return Decision(
        customer_id=customer_id,
        purpose=purpose,
        channel=channel_for(purpose, payload.get("channel")),
        granted=granted,
        observed_at=observed_at,
        source=payload.get("source") or default_source,
        origin=origin,
        origin_id=event.event_id,
        notice_version=notice_of(payload),
        scope=payload.get("scope", ""),
        event_pk=event_pk,
    )


def record(conn: Connection, decisions: Sequence[Decision], now: datetime) -> int:
    """Store decisions not stored before (by ``(origin, origin_id)``); return how many were new.

    Customers whose profiling consent no longer holds lose their profiling tags here and now
    (:func:`central.customers.profiling.forget_refused`), whatever path the decision came by.
    """
    if not decisions:
        return 0
    inserted = bulk.insert(
        conn,
        _decisions,
        _COLUMNS,
        [d.row(now) for d in decisions],
        returning=("id",),
        skip_conflicts_on=("origin", "origin_id"),
    )
    if inserted:
        # A profiling withdrawal takes the customer's profiling tags with it, in this transaction.
        profiling.forget_refused(conn, {d.customer_id for d in decisions if d.purpose == profiling.PURPOSE}, now.date())
    return len(inserted)


def record_events(
    conn: Connection,
    rows: Iterable[tuple[ConsentEvent, datetime, int, int | None]],
    now: datetime,
    *,
    origin: str,
    default_source: str,
) -> int:
    """Record the consent events among freshly stored ``(event, observed_at, event_pk, customer_id)`` rows."""
    decisions = [
        d
        for event, observed_at, pk, customer_id in rows
        if event.kind in KINDS
        and (d := from_event(event, observed_at, pk, customer_id, origin=origin, default_source=default_source))
    ]
    return record(conn, decisions, now)


def parse_request(customer_id: int, body: Any, *, now: datetime, origin: str, actor: str | None) -> list[Decision]:
    """The decisions of a console/API request body, or ConsentError naming the bad field.

    ``{"decisions": [{"purpose": "marketing", "channel": "sms", "granted": false,
    "notice_version": "2026-01", "source": "console", "observed_at": "...", "id": "..."}]}``;
    a single decision may be posted without the ``decisions`` list. ``id`` makes a retried call
    idempotent; without one every call is a new decision. A grant must name the notice version the
    customer was shown. ``source`` is ``origin`` (``api`` or ``console``) unless the body names
    another of :data:`SOURCES` (an admin recording a signed form from a till, say).
    """
    items = body.get("decisions", [body]) if isinstance(body, dict) else None
    if not isinstance(items, list) or not items or len(items) > 100:
        raise ConsentError("expected a decision object or {'decisions': [...]} with 1 to 100 decisions")
    out = []
    for n, item in enumerate(items):
        where = f"decisions[{n}]" if "decisions" in body else "body"
        if not isinstance(item, dict):
            raise ConsentError("expected an object", field=where)
        out.append(_decision(customer_id, item, where, now=now, origin=origin, actor=actor))
    return out


def _decision(
    customer_id: int, item: dict[str, Any], where: str, *, now: datetime, origin: str, actor: str | None
) -> Decision:
    purpose, channel, granted = item.get("purpose"), item.get("channel"), item.get("granted")
    if purpose not in PURPOSES:
        raise ConsentError(f"expected one of {', '.join(PURPOSES)}", field=f"{where}.purpose")
    if channel is not None and channel not in CHANNELS:
        raise ConsentError(f"expected one of {', '.join(CHANNELS)} or none for all", field=f"{where}.channel")
    if not isinstance(granted, bool):
        raise ConsentError("expected true or false", field=f"{where}.granted")
    source = item.get("source", origin)
    if source not in SOURCES:
        raise ConsentError(f"expected one of {', '.join(SOURCES)}", field=f"{where}.source")
    observed_at = _time(item.get("observed_at"), now, f"{where}.observed_at")
    decision_id = item.get("id") or str(uuid.uuid4())
    if not isinstance(decision_id, str) or len(decision_id) > 64 or "\x00" in decision_id:
        raise ConsentError("expected text of at most 64 characters", field=f"{where}.id")
    notice = item.get("notice_version", "")
    if not isinstance(notice, str) or notice_problem(notice):
        raise ConsentError(
            f"expected text of at most {MAX_NOTICE} characters, without control characters",
            field=f"{where}.notice_version",
        )
    if granted and not notice.strip():
        raise ConsentError(
            "a grant must name the version of the privacy notice the customer was shown",
            field=f"{where}.notice_version",
        )
    scope = item.get("scope", "")
    if scope not in ("", GUARDIAN):
        raise ConsentError(f"expected {GUARDIAN!r} or nothing", field=f"{where}.scope")
    return Decision(
        customer_id=customer_id,
        purpose=purpose,
        channel=channel_for(purpose, channel),
        granted=granted,
        observed_at=observed_at,
        source=source,
        origin=origin,
        origin_id=decision_id,
        notice_version=notice,
        scope=scope,
        actor=actor,
    )


def _time(raw: Any, now: datetime, where: str) -> datetime:
    if raw is None:
        return now
    from shared import wire

    try:
        value = wire.parse_time(raw) if isinstance(raw, str) else None
    except (ValueError, OverflowError):
        value = None
    if value is None or value > now:
        raise ConsentError("expected an RFC 3339 time with offset, not in the future", field=where)
    return value
