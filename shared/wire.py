"""Wire protocol v1 between edge agents and central: batches of events, and per-event replies.

A batch as sent (before gzip)::

    {"schema": 1, "device_id": "dev_...", "batch_id": "0193...", "sent_at": "2026-11-23T02:00:00.000Z",
     "events": [{"event_id": "0193...", "seq": 42, "kind": "pos.receipt",
                 "observed_at": "2026-11-23T01:59:58.120Z", "store_id": "S001",
                 "payload": {"receipt_no": "R0001", "total": "12.50", ...}}]}

and the reply::

    {"accepted": ["0193..."], "duplicate": [],
     "rejected": [{"event_id": "0193...", "reason": "unknown_kind"}], "downlink_version": 7,
     "resend_from": 1046}

Every event id of the batch is in exactly one of the three lists (an id sent twice in one batch is
answered once). ``downlink_version`` is the newest version of the documents central publishes for
the sender's store; it is absent when central publishes none. ``resend_from`` is present only when
the batch does not follow on from what central holds for the device (central restored from a
backup): the agent sends again what it still holds from that seq up to the batch's first. Agents
that predate either field ignore it.

Batch-level problems raise :class:`WireError` with a reason code; event-level problems become
:class:`Rejection` entries so one bad event never sinks its neighbours. Unknown kinds and schema
versions are rejected with a reason, never dropped.

Any event may also carry who it is about: ``identifiers`` ({type: value}, such as
``{"phone": "13812345678", "wechat_openid": "o6_bm..."}``), ``app_id`` (the app that scopes
app-scoped identifiers) and profile ``attributes`` ({name, gender, birthday, city, ...}), all
optional and bounded in count and size. Online sources and backfills send the same events with
their own event ids (:func:`decode_source_event`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from shared import payloads
from shared.envelope import ATTRIBUTE_SHORTHAND, envelope_problem, identity_fields, is_text

SCHEMA_VERSION = 1
SUPPORTED_SCHEMAS = frozenset({1})

KINDS = payloads.KINDS
"""Every kind central accepts; each has a declared payload schema in :mod:`shared.payloads`."""

MAX_EVENTS_PER_BATCH = 5000
MAX_SEQ = payloads.MAX_SAFE_INT
"""Highest ``seq`` accepted: any device reaches it never, and every JSON reader holds it exactly."""
_ID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\Z")
_DEVICE_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}\Z")
_STORE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,32}\Z")


class WireError(ValueError):
    """A batch that cannot be read at all; ``reason`` is a stable code for the reply body."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class Event:
    """One observation from a device, identified by (device_id, event_id) forever."""

    event_id: str
    seq: int
    kind: str
    observed_at: str
    store_id: str
    payload: dict[str, Any]
    identifiers: dict[str, str] | None = None
    app_id: str | None = None
    attributes: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        doc = {
            "event_id": self.event_id,
            "seq": self.seq,
            "kind": self.kind,
            "observed_at": self.observed_at,
            "store_id": self.store_id,
            "payload": self.payload,
        }
        return doc | identity_fields(self.identifiers, self.app_id, self.attributes)


@dataclass(frozen=True, slots=True)
class Batch:
    """A group of events sent in one request."""

    device_id: str
    batch_id: str
    sent_at: str
    events: tuple[Event, ...]
    schema: int = SCHEMA_VERSION


@dataclass(frozen=True, slots=True)
class Rejection:
    """An event central refused, with a stable reason code; ``event_id`` is None if it was unreadable.

    ``index``: for an event without a readable id, its place in the request (0 for the first), so
    that the sender can tell which one it was.
    """

    event_id: str | None
    reason: str
    index: int | None = None


@dataclass(frozen=True, slots=True)
class DecodedBatch:
    """A batch as central read it: the valid events plus the rejections found while reading."""

    device_id: str
    batch_id: str
    sent_at: str
    events: tuple[Event, ...]
    rejected: tuple[Rejection, ...]
    schema: int = SCHEMA_VERSION


@dataclass(frozen=True, slots=True)
class Reply:
    """Central's per-event answer to a batch, and the store's current downlink version (if central has one)."""

    accepted: tuple[str, ...] = ()
    duplicate: tuple[str, ...] = ()
    rejected: tuple[Rejection, ...] = field(default_factory=tuple)
    downlink_version: int | None = None
    resend_from: int | None = None  # the first seq of a gap central sees just before this batch
    # Accepted events central has something to say about: a receipt set aside as evidence, counted
    # nowhere (``reprint_total_differs``, a copy of a receipt number with another total).
    warnings: tuple[Rejection, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "accepted": list(self.accepted),
            "duplicate": list(self.duplicate),
            "rejected": [_rejection_dict(r) for r in self.rejected],
        }
        if self.downlink_version is not None:
            doc["downlink_version"] = self.downlink_version
        if self.resend_from is not None:
            doc["resend_from"] = self.resend_from
        if self.warnings:
            doc["warnings"] = [_rejection_dict(w) for w in self.warnings]
        return doc


def _rejection_dict(rejection: Rejection) -> dict[str, Any]:
    out: dict[str, Any] = {"event_id": rejection.event_id, "reason": rejection.reason}
    if rejection.event_id is None and rejection.index is not None:
        out["index"] = rejection.index
    return out


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with milliseconds, the only timestamp form on the wire."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def timestamp(clock: Callable[[], float] = time.time) -> str:
    """The wire form of the moment ``clock`` reads (seconds since the epoch)."""
    return format_time(datetime.fromtimestamp(clock(), UTC))


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 timestamp with an offset; raise ValueError otherwise."""
    if not isinstance(text, str) or len(text) > 40:
        raise ValueError("not a timestamp")
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError("timestamp has no UTC offset")
    return moment


def event_body(observed_at: str, store_id: str, payload_json: bytes, identity: dict[str, Any] | None = None) -> bytes:
    """The JSON of an event's fields after its header, from the payload's JSON; the agent seals these bytes.

    ``identity`` is the optional envelope (see :func:`identity_fields`), written after the payload.
    """
    tail = orjson.dumps(identity)[1:-1] if identity else b""
    return b'{"observed_at":%b,"store_id":%b,"payload":%b%b}' % (
        orjson.dumps(observed_at),
        orjson.dumps(store_id),
        payload_json,
        b"," + tail if tail else b"",
    )


def encode_event(event_id: str, seq: int, kind: str, body: bytes) -> bytes:
    """An event's JSON from its header and an :func:`event_body`, spliced without re-parsing the body."""
    return b'{"event_id":%b,"seq":%d,"kind":%b,%b' % (
        orjson.dumps(event_id),
        seq,
        orjson.dumps(kind),
        body[1:],
    )


def encode_batch_of(device_id: str, batch_id: str, sent_at: str, events: Sequence[bytes]) -> bytes:
    """A batch's JSON from events already encoded by :func:`encode_event`."""
    head = orjson.dumps({"schema": SCHEMA_VERSION, "device_id": device_id, "batch_id": batch_id, "sent_at": sent_at})
    return head[:-1] + b',"events":[' + b",".join(events) + b"]}"


def encode_batch(batch: Batch) -> bytes:
    """Serialize a batch to compact UTF-8 JSON."""
    events = [
        encode_event(
            e.event_id,
            e.seq,
            e.kind,
            event_body(
                e.observed_at,
                e.store_id,
                orjson.dumps(e.payload),
                identity_fields(e.identifiers, e.app_id, e.attributes),
            ),
        )
        for e in batch.events
    ]
    return encode_batch_of(batch.device_id, batch.batch_id, batch.sent_at, events)


def encode_reply(reply: Reply) -> bytes:
    return orjson.dumps(reply.to_dict())


def decode_reply(data: bytes) -> Reply:
    """Read central's reply; raise WireError if it is not a v1 reply.

    ``downlink_version``, ``resend_from`` and ``warnings`` are optional: older central releases do not send them.
    """
    try:
        doc = orjson.loads(data)
        accepted = tuple(_str_list(doc["accepted"]))
        duplicate = tuple(_str_list(doc["duplicate"]))
        rejected = tuple(Rejection(event_id=r.get("event_id"), reason=str(r["reason"])) for r in doc["rejected"])
        said = doc.get("warnings", ())
        warnings = tuple(Rejection(event_id=w.get("event_id"), reason=str(w["reason"])) for w in said)
        version = doc.get("downlink_version")
        if version is not None and (type(version) is not int or not 0 <= version <= MAX_SEQ):
            raise TypeError("downlink_version must be a non-negative integer")
        resend_from = doc.get("resend_from")
        if resend_from is not None and (type(resend_from) is not int or not 1 <= resend_from <= MAX_SEQ):
            raise TypeError("resend_from must be a positive integer")
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise WireError("invalid_reply", f"reply is not a v1 reply: {exc}") from None
    return Reply(
        accepted=accepted,
        duplicate=duplicate,
        rejected=rejected,
        downlink_version=version,
        resend_from=resend_from,
        warnings=warnings,
    )


def _str_list(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError("expected a list of strings")
    return value


def decode_batch(
    data: bytes | bytearray,
    *,
    max_events: int = MAX_EVENTS_PER_BATCH,
    max_event_chars: int = payloads.MAX_EVENT_BYTES,
) -> DecodedBatch:
    """Read a batch; raise WireError for batch-level faults, reject bad events one by one.

    Each payload is cleaned against its kind's schema (:mod:`shared.payloads`): the events returned
    carry only declared fields. An event id repeated within the batch is answered once, for its
    first copy; the later copies are ignored.
    """
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise WireError("invalid_json", f"body is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise WireError("invalid_batch", "batch must be a JSON object")
    schema = doc.get("schema")
    if schema not in SUPPORTED_SCHEMAS or isinstance(schema, bool):
        supported = ", ".join(str(s) for s in sorted(SUPPORTED_SCHEMAS))
        raise WireError("unsupported_schema", f"schema {schema!r} is not supported (supported: {supported})")
    device_id = doc.get("device_id")
    if not isinstance(device_id, str) or not _DEVICE_RE.match(device_id):
        raise WireError("invalid_batch", "device_id is missing or malformed")
    batch_id = doc.get("batch_id")
    if not isinstance(batch_id, str) or not _ID_RE.match(batch_id):
        raise WireError("invalid_batch", "batch_id must be a UUIDv7")
    sent_at = doc.get("sent_at")
    try:
        parse_time(sent_at)  # type: ignore[arg-type]
    except (ValueError, TypeError):
        raise WireError("invalid_batch", "sent_at must be an RFC 3339 timestamp") from None
    raw_events = doc.get("events")
    if not isinstance(raw_events, list):
        raise WireError("invalid_batch", "events must be a list")
    if len(raw_events) > max_events:
        raise WireError("too_many_events", f"a batch holds at most {max_events} events")

    events: list[Event] = []
    rejected: list[Rejection] = []
    seen: set[str] = set()
    for raw in raw_events:
        event_id = raw.get("event_id") if isinstance(raw, dict) else None
        if not isinstance(event_id, str) or not _ID_RE.match(event_id):
            rejected.append(Rejection(event_id if isinstance(event_id, str) else None, "invalid_event_id"))
            continue
        if event_id in seen:
            continue  # answered once, by its first copy: every id is in exactly one list of the reply
        seen.add(event_id)
        reason = _event_problem(raw)
        payload: dict[str, Any] | None = None
        if reason is None:
            payload, reason = payloads.check_event(raw["kind"], raw.get("payload"), max_chars=max_event_chars)
        if payload is None:
            rejected.append(Rejection(event_id, reason or "invalid_payload"))
            continue
        events.append(
            Event(
                event_id=event_id,
                seq=raw["seq"],
                kind=raw["kind"],
                observed_at=raw["observed_at"],
                store_id=raw["store_id"],
                payload=payload,
                identifiers=raw.get("identifiers"),
                app_id=raw.get("app_id"),
                attributes=raw.get("attributes"),
            )
        )
    return DecodedBatch(
        device_id=device_id,
        batch_id=batch_id,
        sent_at=sent_at,  # type: ignore[arg-type]
        events=tuple(events),
        rejected=tuple(rejected),
        schema=schema,
    )


def _event_problem(raw: dict[str, Any], *, online: bool = False) -> str | None:
    """The reason code for an event whose envelope is not well formed, or None.

    ``online``: an event from an online source or a backfill, where ``seq`` and ``payload`` may be
    left out and ``store_id`` may be empty.
    """
    seq = raw.get("seq", 0 if online else None)
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq <= MAX_SEQ:
        return "invalid_seq"
    kind = raw.get("kind")
    if not isinstance(kind, str):
        return "invalid_kind"
    if kind not in KINDS:
        return "unknown_kind"
    try:
        parse_time(raw.get("observed_at"))  # type: ignore[arg-type]
    except (ValueError, TypeError):
        return "invalid_observed_at"
    store_id = raw.get("store_id", "" if online else None)
    if not isinstance(store_id, str) or not (_STORE_RE.match(store_id) or (online and store_id == "")):
        return "invalid_store_id"
    return envelope_problem(raw)


# Online sources and backfills: any id of up to 64 characters, unique per source.
MAX_SOURCE_EVENT_ID = 64
# What only a store's agent observes (its scanners, radios and health), signed by its device key:
# from a source such an event would be stored and act on nothing, so it is refused.
AGENT_ONLY_PREFIXES = ("scan.", "presence.", "agent.")
_SHORTHAND = frozenset(ATTRIBUTE_SHORTHAND)


def decode_source_event(raw: Any, max_event_chars: int = payloads.MAX_EVENT_BYTES) -> Event | Rejection:
    """Read one event from an online source or a backfill line.

    The same event as an agent's, except that ``event_id`` is the source's own (1-64 characters,
    no control characters), ``seq`` defaults to 0, ``payload`` to ``{}``, ``store_id`` may be empty
    or absent, and ``name``, ``birthday`` and the other :data:`ATTRIBUTE_SHORTHAND` fields may
    stand at the top level (``attributes`` wins where both give one). ``max_event_chars`` bounds the
    payload as :func:`decode_batch` does (central's ``ingest.max_event_bytes``).
    """
    if not isinstance(raw, dict):
        return Rejection(None, "invalid_event")
    event_id = raw.get("event_id")
    if not isinstance(event_id, str) or not is_text(event_id, MAX_SOURCE_EVENT_ID):
        return Rejection(event_id if isinstance(event_id, str) else None, "invalid_event_id")
    if not _SHORTHAND.isdisjoint(raw):
        shorthand = {k: raw[k] for k in ATTRIBUTE_SHORTHAND if k in raw}
        given = raw.get("attributes")
        if given is None or isinstance(given, dict):
            raw = {**raw, "attributes": shorthand | (given or {})}
    reason = _event_problem(raw, online=True)
    if reason is not None:
        return Rejection(event_id, reason)
    if raw["kind"].startswith(AGENT_ONLY_PREFIXES):
        return Rejection(event_id, "kind_not_for_sources")
    payload, reason = payloads.check_event(raw["kind"], raw.get("payload", {}), max_chars=max_event_chars)
    if payload is None:
        return Rejection(event_id, reason or "invalid_payload")
    return Event(
        event_id=event_id,
        seq=raw.get("seq", 0),
        kind=raw["kind"],
        observed_at=raw["observed_at"],
        store_id=raw.get("store_id", ""),
        payload=payload,
        identifiers=raw.get("identifiers"),
        app_id=raw.get("app_id"),
        attributes=raw.get("attributes"),
    )
