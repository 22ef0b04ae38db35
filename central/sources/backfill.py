"""Backfill: a source's historical events from a JSON-lines file, through the online sources' path.

One JSON object a line, the event an online source would post::

    {"event_id": "crm-000042", "observed_at": "2019-05-01T08:00:00+08:00", "store_id": "S003",
     "kind": "member.signup", "identifiers": {"phone": "13812345678", "member_card": "VIP0042"},
     "name": "王芳", "birthday": "1990-03-05", "payload": {}}

Lines are decoded one by one (a bad line is reported with its number and reason and the load goes
on), gathered into chunks and stored by :func:`central.sources.events.store_rows`, one transaction
per chunk. Everything is idempotent: a line already loaded is a duplicate, so a load stopped
anywhere (Ctrl-C, a crash, a kill) is finished by running it again.

Consent lines are recorded as taken at ``import`` unless the line names its own ``source``; a
``consent.given`` line must name the notice version it was given under, or the load must say
which one to assume (``--consent-notice legacy``, decision 0107).
"""

from __future__ import annotations

import codecs
import dataclasses
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO

import orjson
from sqlalchemy.orm import Session

from central.collector import collector_paused
from central.customers import consent
from central.db import catch_up_statistics
from central.identity.registry import Registry
from central.sources.events import (
    DEFAULT_MAX_AHEAD,
    EVENT_ID_CONFLICT,
    SourceRow,
    Staged,
    accepted_warnings,
    attribute_problem,
    consent_problem,
    content,
    observed,
    store_rows,
)
from central.sources.import_consent import IMPORT_SOURCE
from shared import payloads, wire

# Per-chunk statements (look-ups, holdings, golden record) are a fixed cost: 5,000 events a
# transaction used about 20 % less CPU per event than 2,000 on the generated chain (docs/benchmarks.md).
DEFAULT_CHUNK = 5000
MAX_LINE_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line that was not stored: its number (from 1), the event id if readable, the reason."""

    line: int
    event_id: str | None
    reason: str


@dataclass
class LoadSummary:
    """What a load did, line by line."""

    lines: int = 0
    accepted: int = 0
    duplicate: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    # Loaded, with a warning: unknown_order_status (the order counts, but its status is not one central
    # knows), unusable_identifier:<type>:<why> (an identifier the registry leaves out), as the API says.
    warnings: Counter[str] = field(default_factory=Counter)
    blank: int = 0
    linked: int = 0
    customers_created: int = 0
    customers_merged: int = 0
    reviewed: int = 0
    bytes_read: int = 0
    # Match blocks too common to be evidence (block -> most customers seen in it): not paired.
    common_blocks: dict[str, int] = field(default_factory=dict)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def add(self, staged: Staged) -> None:
        self.accepted += len(staged.accepted)
        self.duplicate += len(staged.duplicate)
        if staged.resolution is not None:
            self.linked += sum(1 for c in staged.resolution.customer_ids if c is not None)
            self.customers_created += staged.resolution.created
            self.customers_merged += staged.resolution.merged
            self.reviewed += staged.resolution.reviewed
            for block, size in staged.resolution.common_blocks.items():
                self.common_blocks[block] = max(size, self.common_blocks.get(block, 0))


def _lines(stream: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """(line number, bytes) for every line; an over-long line is skipped and comes back as a NUL byte.

    A UTF-8 byte order mark at the start of the file (Windows tools write one) is not part of the first line.
    """
    number = 0
    while True:
        line = stream.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        if number == 0 and line.startswith(codecs.BOM_UTF8):
            line = line[len(codecs.BOM_UTF8) :]
        number += 1
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            # Skip the rest of the over-long line so the next one starts where it should.
            while (more := stream.readline(MAX_LINE_BYTES)) and not more.endswith(b"\n"):
                pass
            yield number, b"\x00"
            continue
        yield number, line


def read_line(
    line: bytes, latest: datetime, max_event_chars: int = payloads.MAX_EVENT_BYTES
) -> SourceRow | wire.Rejection:
    """One line as a storable event dated at the latest ``latest``, or why it cannot be."""
    if line == b"\x00":
        return wire.Rejection(None, "line_too_long")
    try:
        raw = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return wire.Rejection(None, "invalid_utf8" if "UTF-8" in str(exc) else "invalid_json")
    event = wire.decode_source_event(raw, max_event_chars)
    if isinstance(event, wire.Rejection):
        return event
    observed_at = observed(event.observed_at, latest)
    if isinstance(observed_at, str):
        return wire.Rejection(event.event_id, observed_at)
    row = SourceRow(event, observed_at)
    problem = attribute_problem(row)
    return wire.Rejection(event.event_id, problem) if problem else row


def with_notice(row: SourceRow, notice: str) -> SourceRow:
    """``row``, its payload given ``notice`` as its notice version if it is a grant that names none.

    The stored event carries the version it was recorded under, so the decision and its evidence agree.
    """
    if row.event.kind != "consent.given" or consent.notice_of(row.event.payload):
        return row
    event = dataclasses.replace(row.event, payload={**row.event.payload, "notice_version": notice})
    return dataclasses.replace(row, event=event)


def load_events(
    db: Session,
    path: Path,
    source: str,
    *,
    registry: Registry,
    clock: Callable[[], datetime],
    chunk_size: int = DEFAULT_CHUNK,
    max_ahead: timedelta = DEFAULT_MAX_AHEAD,
    max_event_chars: int = payloads.MAX_EVENT_BYTES,
    on_bad_line: Callable[[BadLine], None] = lambda bad: None,
    on_chunk: Callable[[LoadSummary], None] = lambda summary: None,
    consent_notice: str = "",
) -> LoadSummary:
    """Load ``path`` into ``source``'s events, committing every ``chunk_size`` events.

    ``consent_notice`` is the notice version a ``consent.given`` line that names none was given
    under (``legacy`` for grants the old system kept no notice of); without it such a line is
    rejected with ``invalid_payload:notice_version``, as an online source's event would be.
    """
    summary = LoadSummary()
    latest = clock() + max_ahead
    chunk: list[SourceRow] = []
    in_chunk: dict[str, tuple[int, SourceRow]] = {}  # event id -> its line and row

    def flush() -> None:
        if chunk:
            staged = store_rows(db, source, chunk, clock(), registry=registry, consent_source=IMPORT_SOURCE)
            summary.add(staged)
            warned = accepted_warnings(chunk, staged.accepted, registry, set_aside=staged.set_aside)
            summary.warnings.update(w.reason for w in warned)
            for refused in staged.rejected:  # an id loaded before with other content (event_id_conflict)
                summary.rejected[refused.reason] += 1
                on_bad_line(BadLine(in_chunk[str(refused.event_id)][0], refused.event_id, refused.reason))
            chunk.clear()
            in_chunk.clear()
            if catch_up_statistics(db.connection()):
                db.commit()
        on_chunk(summary)

    def fill(lines: Iterator[tuple[int, bytes]], stream: BinaryIO) -> bool:
        """Read lines into the chunk until it is full (True) or the file ends (False)."""
        for number, line in lines:
            summary.lines = number
            summary.bytes_read = stream.tell()
            if not line.strip():
                summary.blank += 1
                continue
            row = read_line(line, latest, max_event_chars)
            if consent_notice and not isinstance(row, wire.Rejection):
                row = with_notice(row, consent_notice)
            if not isinstance(row, wire.Rejection) and (problem := consent_problem(row.event, registry)):
                row = wire.Rejection(row.event.event_id, problem)
            if isinstance(row, wire.Rejection):
                summary.rejected[row.reason] += 1
                on_bad_line(BadLine(number, row.event_id, row.reason))
                continue
            first = in_chunk.get(row.event.event_id)
            if first is not None and content(first[1]) != content(row):
                # The id of an event a few lines up for another event: as if that one were stored.
                summary.rejected[EVENT_ID_CONFLICT] += 1
                on_bad_line(BadLine(number, row.event.event_id, EVENT_ID_CONFLICT))
                continue
            if first is not None:
                summary.duplicate += 1  # a repeat of an event a few lines up: the first copy counts
                continue
            in_chunk[row.event.event_id] = (number, row)
            chunk.append(row)
            if len(chunk) >= chunk_size:
                return True
        return False

    with path.open("rb") as stream:
        lines = _lines(stream)
        more = True
        while more:
            # A chunk's rows, from its first line read to its commit, are short-lived objects
            # (central.collector); the collector runs between chunks.
            with collector_paused():
                more = fill(lines, stream)
                flush()
    return summary
