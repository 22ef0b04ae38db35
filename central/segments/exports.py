"""Segment exports: members as CSV rows (streamed) or as chunks POSTed to the segment's webhook.

Both read the members of the last evaluation a page at a time by key, and ask the consent gate
again for each page, so a customer who withdrew since the evaluation is not exported. Identifiers
and names are masked (138****5678, 张*) unless the exporting role may see them unmasked (admin).
Webhook chunks are queued as ``webhook_deliveries`` and sent by the ``webhooks`` job with the
same signature, retries, backoff and dead letters as trigger calls; before each attempt the gate
is asked again and withdrawn members are dropped from the chunk.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from central.campaigns.models import DEAD, PENDING, WebhookDelivery
from central.customers.consent_gate import consented
from central.identity.models import LINKED, TRUSTED, GoldenAttribute, Identifier
from central.models import table
from central.segments.definitions import PURPOSE
from central.segments.evaluation import members_page
from central.segments.models import Segment
from shared.masking import mask_identifier, mask_name
from shared.wire import format_time

HEADER = ["customer_id", "name", "phone", "email", "member_id", "member_card", "entered_at"]
KINDS = ("phone", "email", "member_id", "member_card")
PAGE = 1000
CANCELLED = "cancelled"
_identifiers = table(Identifier)
_golden = table(GoldenAttribute)
_deliveries = table(WebhookDelivery)
_segments = table(Segment)


def _allowed(db: Session, channel: str, today: date, ids: list[int]) -> set[int]:
    if not ids:
        return set()
    return set(db.scalars(consented(PURPOSE, channel, today, among=ids)))


def _details(db: Session, ids: list[int], unmasked: bool) -> dict[int, dict[str, str]]:
    out: dict[int, dict[str, str]] = {cid: {} for cid in ids}
    rows = db.execute(
        sa.select(_identifiers.c.customer_id, _identifiers.c.kind, _identifiers.c.value)
        .where(
            _identifiers.c.customer_id.in_(ids),
            _identifiers.c.kind.in_(KINDS),
            _identifiers.c.state.in_((LINKED, TRUSTED)),
        )
        .order_by(_identifiers.c.id)
    )
    for cid, kind, value in rows:
        out[cid].setdefault(kind, value if unmasked else mask_identifier(kind, value))
    names = db.execute(
        sa.select(_golden.c.customer_id, _golden.c.value).where(
            _golden.c.customer_id.in_(ids), _golden.c.attribute == "name"
        )
    )
    for cid, name in names:
        out[cid]["name"] = name if unmasked else mask_name(name)
    return out


def member_records(
    db: Session, segment: Any, today: date, *, unmasked: bool, page: int = PAGE
) -> Iterator[dict[str, Any]]:
    """The segment's members whom marketing may still reach, one dict per member, masked unless ``unmasked``."""
    after = 0
    while True:
        rows = members_page(db, segment.id, after, page)
        if not rows:
            return
        after = rows[-1].customer_id
        allowed = _allowed(db, segment.channel, today, [r.customer_id for r in rows])
        kept = [r for r in rows if r.customer_id in allowed]
        details = _details(db, [r.customer_id for r in kept], unmasked)
        for row in kept:
            found = details[row.customer_id]
            yield {
                "customer_id": row.customer_id,
                **{k: found.get(k, "") for k in ("name", *KINDS)},
                "entered_at": format_time(row.entered_at),
            }


def csv_rows(db: Session, segment: Any, today: date, *, unmasked: bool) -> Iterator[list[Any]]:
    """The CSV rows (after :data:`HEADER`) of a segment's export."""
    for record in member_records(db, segment, today, unmasked=unmasked):
        yield [record[column] for column in HEADER]


def csv_chunks(
    sessions: sessionmaker[Session], segment: Any, today: date, *, unmasked: bool, size: int = 64 * 1024
) -> Iterator[str]:
    """The export as CSV text (header first) in pieces of about ``size`` characters, read in its own session."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(HEADER)
    with sessions() as db:
        for row in csv_rows(db, segment, today, unmasked=unmasked):
            writer.writerow(row)
            if buffer.tell() > size:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
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
