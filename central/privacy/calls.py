"""Webhook calls about an erased person: the trigger calls about them, and their rows in segment exports.

A trigger's call is about one customer (its occasion's): still to be sent, it is cancelled; sent
or not, its body is emptied. A segment export's call carries a chunk of members, each with their
identifiers and name as the export found them: the person's entries leave the body, and a call
still to be sent that named nobody else is cancelled. Sent and dead calls are kept for their
retention (``retention.webhook_days``) as the record of what went where; after an erasure they no
longer say anything about the person.

Segment bodies are found by the text of their members' ``customer_id`` (the export writes compact
JSON), then read: the table holds a few weeks of calls, not the events.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import orjson
from sqlalchemy import Connection, or_, select, update

from central.campaigns.models import PENDING, TriggerOccasion, WebhookDelivery
from central.models import table

CANCELLED = "cancelled"
_calls = table(WebhookDelivery)


def scrub_calls(conn: Connection, ids: Sequence[int], now: datetime) -> int:
    """Cancel the calls about customers ``ids`` still to be sent, take them out of every call's body; rows changed."""
    calls = _calls.c
    occasions = select(TriggerOccasion.id).where(TriggerOccasion.customer_id.in_(ids))
    about = calls.occasion_id.in_(occasions)
    conn.execute(
        update(_calls)
        .where(about, calls.status == PENDING)
        .values(status=CANCELLED, finished_at=now, last_error="customer erased")
    )
    changed = int(conn.execute(update(_calls).where(about).values(body="{}")).rowcount or 0)
    return changed + _segment_calls(conn, set(ids), now)


def _segment_calls(conn: Connection, ids: set[int], now: datetime) -> int:
    calls = _calls.c
    if not ids:
        return 0
    named = or_(*(calls.body.contains(f'"customer_id":{int(cid)},') for cid in sorted(ids)))
    found = conn.execute(select(calls.id, calls.body, calls.status).where(calls.segment_id.is_not(None), named))
    changed = 0
    for call_id, text, status in found.all():
        body = orjson.loads(text)
        members = body.get("members") or []
        kept = [m for m in members if int(m.get("customer_id", 0)) not in ids]
        if len(kept) == len(members):
            continue  # the text matched inside a value, not a member
        body["members"] = kept
        values: dict[str, object] = {"body": orjson.dumps(body).decode()}
        if status == PENDING and not kept:
            values |= {"status": CANCELLED, "finished_at": now, "last_error": "customer erased"}
        conn.execute(update(_calls).where(calls.id == call_id).values(**values))
        changed += 1
    return changed
