"""The agent's half of the declared payload schemas: every capture is checked before the outbox.

Central cleans each payload against its kind's schema (shared/payloads.py) and so does the agent,
on the thread that produced the record, before the record is queued for the writer: unknown fields
are dropped, and a payload that does not fit (unknown kind, a field of the wrong type, too deep,
larger than the per-event limit) never becomes an event. It goes to the quarantine instead, sealed,
with the schema's reason code, and is counted as ``refused_payloads`` in the agent's health. Its
stream offset still moves, so the capture journal does not hold the input forever.

The writer thread does not pay for this: sealing and committing stay its only work.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import orjson

from edge_agent.records import Capture, Quarantined, Record
from shared import payloads

REFUSED_COUNTER = "refused_payloads"
"""The outbox counter (``count:refused_payloads`` in its meta table) of captures refused here."""
AGENT_SOURCE = "agent"
"""The quarantine source named for records the agent made itself (heartbeats, gaps)."""
SCHEMA_REASONS = ("unknown_kind", "invalid_payload", "payload_too_deep", "event_too_large")


def is_refusal(record: Record) -> bool:
    """True for a quarantined record that :func:`admit` made out of a capture."""
    return isinstance(record, Quarantined) and record.reason.split(":", 1)[0] in SCHEMA_REASONS


def admit(
    record: Record, *, clock: Callable[[], float] = time.time, max_event_bytes: int = payloads.MAX_EVENT_BYTES
) -> Record:
    """The record as it may enter the outbox: a capture cleaned by its schema, or quarantined with why."""
    if not isinstance(record, Capture):
        return record
    cleaned: dict[str, Any] | None = None
    reason: str | None = "invalid_payload"
    try:
        payload = orjson.loads(record.payload_json)
    except orjson.JSONDecodeError:
        pass
    else:
        cleaned, reason = payloads.check_event(record.kind, payload, max_chars=max_event_bytes)
    if cleaned is None:
        return Quarantined(
            source=record.source or AGENT_SOURCE,
            reason=reason or "invalid_payload",
            raw=record.payload_json,
            received_at=clock(),
            offset=record.offset,
        )
    if cleaned == payload:
        return record
    return replace(record, payload_json=orjson.dumps(cleaned))
