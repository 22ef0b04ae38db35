"""What flows into and out of the outbox: records from sources, pending rows, statistics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from shared.wire import Event


@dataclass(frozen=True, slots=True)
class Capture:
    """An event to append; ``source``/``offset`` say how far into that source's stream it reaches.

    The payload crosses from the source's thread to the writer's as immutable JSON bytes: nobody can
    change it after it was handed over, and the single writer thread does not spend time encoding.
    """

    kind: str
    payload_json: bytes
    observed_at: str
    source: str | None = None
    offset: int | None = None

    @classmethod
    def of(
        cls, kind: str, payload: dict[str, Any], observed_at: str, source: str | None = None, offset: int | None = None
    ) -> Capture:
        return cls(kind, orjson.dumps(payload), observed_at, source, offset)

    def payload(self) -> dict[str, Any]:
        """The payload decoded (for inspection and tests)."""
        result: dict[str, Any] = orjson.loads(self.payload_json)
        return result


@dataclass(frozen=True, slots=True)
class Quarantined:
    """Input that could not be turned into an event, kept sealed with the reason."""

    source: str
    reason: str
    raw: bytes
    received_at: float
    offset: int | None = None


Record = Capture | Quarantined


@dataclass(frozen=True, slots=True)
class Pending:
    """A row waiting for central; ``body`` (see shared.wire.event_body) is None if it cannot be opened."""

    seq: int
    event_id: str
    kind: str
    body: bytes | None

    def event(self) -> Event:
        """The row as a wire Event (for inspection; sync splices ``body`` without parsing it)."""
        if self.body is None:
            raise ValueError(f"outbox row {self.seq} cannot be opened")
        doc = orjson.loads(self.body)
        return Event(self.event_id, self.seq, self.kind, doc["observed_at"], doc["store_id"], doc["payload"])


@dataclass(frozen=True, slots=True)
class Stats:
    """Row counts by state, for heartbeats and `edge-agent doctor`."""

    pending: int
    delivered: int
    rejected: int
    quarantined: int
    last_seq: int
    oldest_pending_at: float | None
    counters: dict[str, int] | None = None  # shed:<kind>, quarantine_purged, unreadable_events


@dataclass(frozen=True, slots=True)
class QuarantineRow:
    """One quarantined input, opened (``raw`` is None if it cannot be)."""

    id: int
    source: str
    reason: str
    received_at: float
    raw: bytes | None
