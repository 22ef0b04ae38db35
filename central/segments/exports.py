"""Segment exports: members as CSV rows (streamed) or as chunks POSTed to the segment's webhook.

Both read the members of the last evaluation in one streamed statement, ordered by id, that also
applies the consent gate's rule to each member, so a customer who withdrew (or was merged away) since
the evaluation is not exported. Identifiers and names are masked (138****5678, 张*) unless the
exporting role may see them unmasked (admin).
Webhook chunks are queued as ``webhook_deliveries`` and sent by the ``webhooks`` job with the
same signature, retries, backoff and dead letters as trigger calls; before each attempt the gate
is asked again and withdrawn members are dropped from the chunk.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from datetime import date, datetime
from itertools import groupby
from operator import itemgetter
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from central.campaigns.models import DEAD, PENDING, WebhookDelivery
from central.csvfiles import SpreadsheetWriter
from central.customers.consent_gate import consent_holds, consented
from central.db import READ_ONLY
from central.identity.models import LINKED, TRUSTED, Customer, GoldenAttribute, Identifier
from central.models import table
from central.segments.definitions import PURPOSE
from central.segments.models import Segment, SegmentMember
from shared.masking import mask_identifier, mask_name
from shared.wire import format_time

HEADER = ["customer_id", "name", "phone", "email", "member_id", "member_card", "entered_at"]
KINDS = ("phone", "email", "member_id", "member_card")
STREAM = 1000
FIRST = 4096  # characters in the first piece of a CSV download
HELD = (LINKED, TRUSTED)
CANCELLED = "cancelled"
_identifiers = table(Identifier)
_golden = table(GoldenAttribute)
_deliveries = table(WebhookDelivery)
_segments = table(Segment)
_members = table(SegmentMember)
_customers = table(Customer)


def _allowed(db: Session, channel: str, today: date, ids: list[int]) -> set[int]:
    if not ids:
        return set()
    return set(db.scalars(consented(PURPOSE, channel, today, among=ids)))


def members_query(segment: Any, today: date) -> sa.Select[Any]:
    """The segment's members whom marketing may still reach, by id, with their name and identifiers (a row
    for each, by id; one row without when they have none): one statement, so that it streams (the consent
    gate's rule is a condition on each member)."""
    who = _members.c.customer_id
    live = _customers.alias("member")
    held = _identifiers.alias("held")
    return (
        sa.select(who, _members.c.entered_at, _golden.c.value, held.c.kind, held.c.value)
        .select_from(
            _members.join(live, live.c.id == who)
            .outerjoin(_golden, sa.and_(_golden.c.customer_id == who, _golden.c.attribute == "name"))
            .outerjoin(held, sa.and_(held.c.customer_id == who, held.c.kind.in_(KINDS), held.c.state.in_(HELD)))
        )
        .where(*_reachable(segment, today, live))
        .order_by(who, held.c.id)
    )


def _reachable(segment: Any, today: date, live: Any) -> tuple[sa.ColumnElement[bool], ...]:
    """The conditions on a row of the segment's members (joined to ``live``, their customers) that
    marketing may still reach them: not merged away since, and their consent still holds."""
    who = _members.c.customer_id
    return (
        _members.c.segment_id == segment.id,
        live.c.merged_into.is_(None),  # merged away since: its survivor is a member, or not, in its own right
        consent_holds(PURPOSE, segment.channel, today, who),
    )


def members_page(db: Session, segment: Any, today: date, after: int = 0, limit: int = 100) -> list[Any]:
    """The members marketing may still reach with ids above ``after`` (keyset pagination), with when
    they entered: a customer who withdrew consent since the last evaluation is not listed."""
    who = _members.c.customer_id
    live = _customers.alias("member")
    query = (
        sa.select(who, _members.c.entered_at)
        .select_from(_members.join(live, live.c.id == who))
        .where(*_reachable(segment, today, live), who > after)
        .order_by(who)
        .limit(limit)
    )
    return list(db.execute(query))


def _rows(db: Session, segment: Any, today: date, unmasked: bool) -> Iterator[list[Any]]:
    if db.get_bind().dialect.name == "postgresql":
        # The statement's cost estimate grows with the segment; compiling it (JIT) before the first
        # row cost PostgreSQL 3 s at 10,000 members, more than all the rows took to find.
        db.execute(sa.text("SET LOCAL jit = off"))
    entered: dict[datetime, str] = {}  # most members entered at the same evaluation
    rows = db.execute(members_query(segment, today).execution_options(yield_per=STREAM))
    for cid, held in groupby(rows, key=itemgetter(0)):
        first: dict[str, str] = {}
        for row in held:
            kind, value = row[3], row[4]
            if kind is not None and kind not in first:
                first[kind] = value if unmasked else mask_identifier(kind, value)
        at, name = row[1], row[2]
        when = entered.get(at) or entered.setdefault(at, format_time(at))
        shown = (name or "") if unmasked else mask_name(name)
        yield [cid, shown, *(first.get(kind, "") for kind in KINDS), when]


def member_records(db: Session, segment: Any, today: date, *, unmasked: bool) -> Iterator[dict[str, Any]]:
    """The segment's members whom marketing may still reach, one dict per member, masked unless ``unmasked``.

    Read from one streamed statement: the database hands rows over as it finds them, and this process
    holds only ``STREAM`` of them at a time."""
    for row in _rows(db, segment, today, unmasked):
        yield dict(zip(HEADER, row, strict=True))


def csv_rows(db: Session, segment: Any, today: date, *, unmasked: bool) -> Iterator[list[Any]]:
    """The CSV rows (after :data:`HEADER`) of a segment's export."""
    return _rows(db, segment, today, unmasked)


def csv_chunks(
    sessions: sessionmaker[Session], segment: Any, today: date, *, unmasked: bool, size: int = 64 * 1024
) -> Iterator[str]:
    """The export as CSV text (header first) in pieces of about ``size`` characters, read in its own session.

    The first piece is a few rows, so that a browser shows the download starting at once."""
    buffer = io.StringIO()
    piece = FIRST
    writer = SpreadsheetWriter(buffer)
    writer.writerow(HEADER)
    with sessions() as db:
        # Read-only: on SQLite a download of seconds otherwise holds the write lock, and every request
        # that writes (a login, an audit row) waits for it to end.
        db.connection(execution_options=READ_ONLY)
        for row in csv_rows(db, segment, today, unmasked=unmasked):
            writer.writerow(row)
            if buffer.tell() > piece:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
                piece = size
    yield buffer.getvalue()


def queue_webhook(
    db: Session, segment: Any, today: date, now: datetime, *, unmasked: bool, chunk: int
) -> tuple[str, int, int]:
    """Queue the members as signed webhook calls of ``chunk`` members each; the caller commits.

    Returns the export's id (in every body) and how many calls and members were queued.
    """
    if not segment.webhook_url:
        raise ValueError(f"segment {segment.name!r} has no webhook_url; set one with its webhook_secret")
    export_id = str(uuid.uuid4())
    calls = members = 0
    batch: list[dict[str, Any]] = []

    def flush(last: bool) -> None:
        nonlocal calls
        body = {
            "segment": segment.name,
            "version": segment.evaluated_version,
            "channel": segment.channel,
            "export_id": export_id,
            "chunk": calls + 1,
            "last": last,
            "members": batch,
        }
        db.execute(
            sa.insert(_deliveries).values(
                trigger_id=None,
                segment_id=segment.id,
                url=segment.webhook_url,
                body=orjson.dumps(body).decode(),
                status=PENDING,
                attempts=0,
                created_at=now,
                next_attempt_at=now,
            )
        )
        calls += 1

    for record in member_records(db, segment, today, unmasked=unmasked):
        if len(batch) == chunk:
            flush(last=False)
            batch = []
        batch.append(record)
        members += 1
    flush(last=True)  # an empty segment still says so: one call with no members
    return export_id, calls, members


def prepare_call(db: Session, row: Any, today: date) -> tuple[str, bytes] | tuple[None, tuple[str, str]]:
    """A segment call about to be attempted: ``(secret, body)``, or ``(None, (status, reason))`` to end it.

    Members who may no longer be reached on the segment's channel are dropped from the body (and the
    stored body is updated); a call left with no members when it had some is cancelled.
    """
    segment = db.execute(sa.select(_segments).where(_segments.c.id == row.segment_id)).first()
    if segment is None or not segment.webhook_secret:
        return None, (DEAD, "the call's segment or its webhook secret is gone")
    body = orjson.loads(row.body)
    members = body.get("members", [])
    ids = [int(m["customer_id"]) for m in members]
    allowed = _allowed(db, segment.channel, today, ids)
    kept = [m for m in members if int(m["customer_id"]) in allowed]
    if members and not kept:
        return None, (CANCELLED, "consent: every member of the chunk withdrew or was merged away")
    if len(kept) != len(members):
        body["members"] = kept
        row_body = orjson.dumps(body).decode()
        db.execute(sa.update(_deliveries).where(_deliveries.c.id == row.id).values(body=row_body))
        db.commit()
        return segment.webhook_secret, row_body.encode()
    return segment.webhook_secret, row.body.encode()
