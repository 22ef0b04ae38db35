"""The sync job: sends the outbox to central in signed, gzipped batches and records each answer.

Delivery is at-least-once: a batch may be sent again after a timeout or a lost reply, and central
dedupes on (device_id, event_id). A row leaves the pending state only when central has answered for
it: accepted or duplicate rows are marked delivered; rejected rows keep central's reason as dead
letters (`edge-agent status` lists them) and are not sent again, while the rest of their batch goes
through. Batches are read in ``seq`` order and bounded by ``batch_size`` events and ``batch_bytes``
of JSON. While central is unreachable or failing the job backs off (see backoff.py), honouring
``Retry-After``, and the outbox simply grows.

Requests are signed with central's time as measured from its replies (see central_clock.py), so a
PC whose clock is hours off still authenticates; a 401 that coincides with a newly discovered clock
offset is retried at once with the corrected time.
"""

from __future__ import annotations

import logging
import random
import sqlite3
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from edge_agent.backoff import Backoff, parse_retry_after
from edge_agent.central_clock import CentralClock
from edge_agent.outbox import Outbox, Pending
from edge_agent.transport import Response, Transport, TransportError
from shared import ids
from shared.crypto import RequestSigner
from shared.wire import WireError, decode_reply, encode_batch_of, encode_event, format_time

log = logging.getLogger(__name__)

BATCHES_PATH = "/api/v1/batches"
PURGE_EVERY = 600.0
SKEW_RETRY = 60.0  # a 401 signed this far from central's time is retried at once with the corrected time
CONTENT_HEADERS = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
READ_PAGE = 500  # outbox rows opened at a time while a batch is built
# Level 3 is about a fifth bigger than level 6 on receipts, at 40 % of its CPU; wbits 31 writes gzip.
GZIP_LEVEL = 3
GZIP_WBITS = 31


@dataclass(frozen=True, slots=True)
class _Batch:
    """A batch ready to send: its readable rows, the gzipped body, the highest seq it accounts for."""

    rows: list[tuple[int, str]]  # (seq, event_id) of each event in the body
    body: bytes
    last_seq: int


class SyncFailure(Exception):
    """A batch central did not answer for; the job backs off (at least ``retry_after`` s) and tries again."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class SyncStatus:
    """Counters for heartbeats, status.json and `edge-agent doctor`; times are this PC's clock."""

    batches: int = 0
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    rejected_by_reason: Counter[str] = field(default_factory=Counter)
    # Accepted events central warned about: a receipt set aside at HQ (reprint_total_differs).
    warned_by_reason: Counter[str] = field(default_factory=Counter)
    failures: int = 0
    consecutive_failures: int = 0
    last_error: str | None = None
    last_success_at: float | None = None  # last batch central answered for
    last_progress_at: float | None = None  # last moment nothing was waiting, or a batch was answered
    last_activity: float = 0.0  # monotonic: the job last started a run, or finished a request
    # The same two moments on the monotonic clock, which ages and stalls are measured by (a wall
    # clock stepped back an hour must not make the last sync an hour in the future).
    last_success_mono: float | None = None
    last_progress_mono: float | None = None
    next_attempt_in: float = 0.0
    retry_after: float | None = None

    @property
    def delivered(self) -> int:
        return self.accepted + self.duplicate


class SyncJob:
    """Drains the outbox to central; the ``sync`` job (edge_agent.jobs) calls :meth:`run` every ``sync.interval``."""

    def __init__(
        self,
        outbox: Outbox,
        transport: Transport,
        signer: RequestSigner,
        *,
        batch_size: int = 2000,
        batch_bytes: int = 1_048_576,
        timeout: float = 30.0,
        min_backoff: float = 1.0,
        max_backoff: float = 300.0,
        keep_delivered_hours: float = 72.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
        new_id: Callable[[], str] = ids.new_id,
        central_clock: CentralClock | None = None,
        on_downlink: Callable[[int, Callable[[], str]], None] | None = None,
        on_resend: Callable[[int], None] | None = None,
    ) -> None:
        self.outbox = outbox
        self.transport = transport
        self.signer = signer
        self.batch_size = batch_size
        self.batch_bytes = batch_bytes
        self.timeout = timeout
        self.backoff = Backoff(min_backoff, max_backoff, rng)
        self.keep_delivered_seconds = keep_delivered_hours * 3600
        self._clock = clock
        self._monotonic = monotonic
        self._new_id = new_id
        self.central_clock = central_clock or CentralClock(clock, monotonic)
        self.current_batch_size = batch_size  # shrinks when central says a batch is too large
        self._next_attempt = 0.0
        self._next_purge = 0.0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._poster = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sync-post")
        self.status = SyncStatus()
        # The downlink version central's last reply named, and what to call when it is new: the
        # agent fetches the documents then (with a request signed on central's time).
        self.downlink_version: int | None = None
        self._on_downlink = on_downlink
        self._on_resend = on_resend

    @property
    def max_backoff(self) -> float:
        return self.backoff.maximum

    @max_backoff.setter
    def max_backoff(self, value: float) -> None:
        self.backoff.maximum = value

    def run(self) -> None:
        """One scheduled run: drain everything pending unless we are backing off."""
        if self._stopping.is_set() or not self._lock.acquire(blocking=False):
            return  # stopping, or a run is still going: never two at once
        try:
            now = self._monotonic()
            self.status.last_activity = now
            self.status.next_attempt_in = max(0.0, self._next_attempt - now)
            if now < self._next_attempt:
                return
            try:
                self.drain()
                if self._stopping.is_set():
                    return
                self._purge()
                if self._on_downlink is not None and self.downlink_version is not None:
                    self._on_downlink(self.downlink_version, self._central_time)
            except SyncFailure as exc:
                self._failed(str(exc), exc.retry_after)
            except sqlite3.Error as exc:
                # The outbox could not record central's answer (a full disk, most often): nothing is
                # lost, the batch is sent again later and central counts it as duplicates.
                self._failed(f"cannot update the outbox {self.outbox.path}: {exc}", None)
        finally:
            self._lock.release()

    def next_attempt_at(self) -> float:
        """The monotonic time before which :meth:`run` will not try central (0 when not backing off)."""
        return self._next_attempt

    def interrupt(self) -> None:
        """End a drain under way after the batch in flight, and start no other: the agent is stopping.

        A backlog of days takes minutes to send; what is left stays pending in the outbox, and a
        batch whose answer is never read is sent again after the restart (central counts it as
        duplicates).
        """
        self._stopping.set()

    def close(self) -> None:
        """Stop the request thread (after the request in flight, if any)."""
        self._stopping.set()
        self._poster.shutdown(wait=True)

    def drain(self) -> int:
        """Send batches until nothing is pending; return how many rows were settled.

        One request is in flight at a time; while central works on it, the next batch is read and
        encoded, and the previous one is settled, so the agent's work and central's overlap
        instead of adding up.
        """
        settled = self._drain_once()
        # Gaps central asked for are filled once nothing is in flight: a batch answered later would
        # move the pending cursor past the rows made pending again.
        while not self._stopping.is_set() and (asked := self.outbox.resend_asked()) and self._resend(asked):
            settled += self._drain_once()
        return settled

    def _resend(self, asked: list[tuple[int, int]]) -> bool:
        """Make the delivered rows of the gaps central asked for pending again; True if any were."""
        any_resent = False
        for first, before in asked:
            resent, missing = self.outbox.resend(first, before)  # counted in the outbox for status and heartbeats
            any_resent = any_resent or resent > 0
            if resent:  # a hole alone (a shed row, most often) is only counted: status and heartbeats show it
                log.warning(
                    "central lacks this device's seqs %d to %d (restored from a backup?): sending again %d "
                    "delivered events%s",
                    first,
                    before - 1,
                    resent,
                    f"; {missing} of them are no longer in the outbox (purged, shed or unreadable)" if missing else "",
                )
        if any_resent and self._on_resend is not None:
            self._on_resend(asked[0][0])
        return any_resent

    def _drain_once(self) -> int:
        settled = 0
        batch = self._prepare(after=None)
        if batch is None:
            self.status.last_progress_at = self._clock()
            self.status.last_progress_mono = self._monotonic()
        future = self._poster.submit(self._post, batch) if batch else None
        while batch is not None and future is not None:
            upcoming = None if self._stopping.is_set() else self._prepare(after=batch.last_seq)
            response = future.result()
            answer = self._read_answer(batch, response)
            if answer is None:  # too large: start again from the oldest pending row, in smaller batches
                batch = None if self._stopping.is_set() else self._prepare(after=None)
                future = self._poster.submit(self._post, batch) if batch else None
                continue
            future = self._poster.submit(self._post, upcoming) if upcoming else None
            delivered, rejected, counts = answer
            self.outbox.settle(delivered, rejected)
            # Batches go out in seq order and each holds every pending row after the one before,
            # so once this one is settled nothing up to its last row is pending any more.
            self.outbox.answered_through(batch.last_seq)
            self._succeeded(*counts)
            settled += len(delivered) + len(rejected)
            batch = upcoming
        return settled

    def _prepare(self, after: int | None) -> _Batch | None:
        """Read, encode and compress the next batch (rows after ``after``, or the oldest).

        The rows are read ``READ_PAGE`` at a time and each event goes into the gzip stream as soon as
        it is encoded, so a batch's memory is its compressed body and the ids it must account for,
        not every opened row and its JSON at once (the agent's memory budget, docs/benchmarks.md).
        """
        while True:
            limit = min(READ_PAGE, self.current_batch_size)
            pending = self.outbox.pending(limit, after=after)
            if not pending:
                return None
            if self._settle_unreadable(pending):
                break
            after = pending[-1].seq
        sent_at = self._central_time()
        stream = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, GZIP_WBITS)
        head = encode_batch_of(self.signer.device_id, self._new_id(), sent_at, [])
        chunks = [stream.compress(head[:-2])]  # ... "events":[  (the closing ]} goes last)
        rows: list[tuple[int, str]] = []
        size = 0
        full = False
        while True:
            # The sealed bodies are spliced into the batch as they are: no parse, no re-encode.
            for p in pending:
                if p.body is None:
                    continue
                encoded = encode_event(p.event_id, p.seq, p.kind, p.body)
                if rows and size + len(encoded) + 1 > self.batch_bytes:
                    full = True  # the rest goes in the next batch; a single oversized event still goes alone
                    break
                chunks.append(stream.compress(encoded if not rows else b"," + encoded))
                rows.append((p.seq, p.event_id))
                size += len(encoded) + 1
            last_read = pending[-1].seq
            if full or len(rows) >= self.current_batch_size or len(pending) < limit:
                break  # full, or the backlog ends here
            limit = min(READ_PAGE, self.current_batch_size - len(rows))
            pending = self.outbox.pending(limit, after=last_read)
            if not pending:
                break
            self._settle_unreadable(pending)
        chunks.append(stream.compress(b"]}"))
        chunks.append(stream.flush())
        # Unreadable rows were settled as they were read, so the batch accounts for everything up to
        # its last row, or up to the last row read when every readable row read fitted.
        return _Batch(rows=rows, body=b"".join(chunks), last_seq=rows[-1][0] if full else last_read)

    def _settle_unreadable(self, pending: list[Pending]) -> bool:
        """Mark rows this agent's key cannot open as rejected; True if any row of ``pending`` is readable."""
        unreadable = [(p.seq, "unreadable_locally") for p in pending if p.body is None]
        if unreadable:
            log.error("%d outbox rows cannot be opened with this agent's key; marking them rejected", len(unreadable))
            self.outbox.settle([], unreadable)
        return len(unreadable) < len(pending)

    def _central_time(self) -> str:
        """Now on central's clock, in the wire's timestamp form."""
        return format_time(datetime.fromtimestamp(self.central_clock.now(), UTC))

    def _post(self, batch: _Batch) -> Response:
        """Sign and send a batch; on a 401 that a newly measured clock offset explains, re-sign and resend once."""
        for attempt in (1, 2):
            signed_at = self.central_clock.now()
            stamp = format_time(datetime.fromtimestamp(signed_at, UTC))
            headers = self.signer.headers("POST", BATCHES_PATH, stamp, batch.body)
            headers.update(CONTENT_HEADERS)
            sent = self._monotonic()
            try:
                response = self.transport.post(BATCHES_PATH, batch.body, headers, self.timeout)
            except TransportError as exc:
                raise SyncFailure(f"central unreachable: {exc}") from None
            finally:
                self.status.last_activity = self._monotonic()
            received = self._monotonic()
            self.central_clock.observe(response.header("Date"), sent, received)
            skew = self.central_clock.at((sent + received) / 2) - signed_at
            if response.status == 401 and attempt == 1 and abs(skew) > SKEW_RETRY:
                log.warning(
                    "central refused a request signed %+.0f s off its clock; signing with central's time from now on",
                    -skew,
                )
                continue
            return response
        return response

    def _read_answer(
        self, batch: _Batch, response: Response
    ) -> tuple[list[int], list[tuple[int, str]], tuple[int, int, int]] | None:
        """Central's answer as (delivered seqs, rejected (seq, reason), counts); None if it was too large."""
        if response.status == 413 or (response.status == 400 and b"too_many_events" in response.body):
            if len(batch.rows) == 1:
                return [], [(batch.rows[0][0], "too_large")], (0, 0, 1)
            self.current_batch_size = max(1, len(batch.rows) // 2)
            log.warning(
                "central refused a batch of %d events as too large; sending %d",
                len(batch.rows),
                self.current_batch_size,
            )
            return None
        if response.status != 200:
            detail = response.body[:200].decode("utf-8", "replace")
            retry_after = parse_retry_after(
                response.header("Retry-After"), date=response.header("Date"), now=self.central_clock.now()
            )
            if response.status == 401:
                detail = (
                    "the device's signature was refused (revoked or re-enrolled device? "
                    "check `edge-agent doctor` and the device at HQ)"
                )
            raise SyncFailure(f"central answered {response.status}: {detail}", retry_after)
        try:
            reply = decode_reply(response.body)
        except WireError as exc:
            raise SyncFailure(str(exc)) from None
        if reply.downlink_version is not None:
            self.downlink_version = reply.downlink_version
        if reply.resend_from is not None and batch.rows and reply.resend_from < batch.rows[0][0]:
            self.outbox.ask_resend(reply.resend_from, batch.rows[0][0])
        by_id = {event_id: seq for seq, event_id in batch.rows}
        answered = [*reply.accepted, *reply.duplicate, *(r.event_id for r in reply.rejected)]
        if set(answered) != set(by_id):
            raise SyncFailure("central's reply does not answer for every event of the batch")
        delivered = [by_id[i] for i in (*reply.accepted, *reply.duplicate)]
        rejected = [(by_id[r.event_id], r.reason) for r in reply.rejected if r.event_id is not None]
        if rejected:
            reasons = Counter(reason for _, reason in rejected)
            self.status.rejected_by_reason.update(reasons)
            log.warning(
                "central rejected %d events (%s); they stay in the outbox as dead letters (`edge-agent status`)",
                len(rejected),
                ", ".join(f"{reason}: {n}" for reason, n in sorted(reasons.items())),
            )
        if reply.warnings:
            warned = Counter(w.reason for w in reply.warnings)
            self.status.warned_by_reason.update(warned)
            log.info(
                "central accepted %d events with a warning (%s): receipts set aside at HQ are counted nowhere"
                " until finance looks at them (`central-server receipts set-aside`)",
                len(reply.warnings),
                ", ".join(f"{reason}: {n}" for reason, n in sorted(warned.items())),
            )
        return delivered, rejected, (len(reply.accepted), len(reply.duplicate), len(rejected))

    def _succeeded(self, accepted: int, duplicate: int, rejected: int) -> None:
        if self.status.consecutive_failures:
            log.info(
                "central is answering again after %d failed attempts (last: %s)",
                self.status.consecutive_failures,
                self.status.last_error,
            )
        now = self._clock()
        self.status.batches += 1
        self.status.accepted += accepted
        self.status.duplicate += duplicate
        self.status.rejected += rejected
        self.status.consecutive_failures = 0
        self.status.last_error = None
        self.status.retry_after = None
        self.status.last_success_at = now
        self.status.last_progress_at = now
        self.status.last_success_mono = self.status.last_progress_mono = self._monotonic()
        self.status.next_attempt_in = 0.0
        self.backoff.reset()
        self._next_attempt = 0.0

    def _failed(self, message: str, retry_after: float | None) -> None:
        self.status.failures += 1
        self.status.consecutive_failures += 1
        delay = self.backoff.next_delay(retry_after)
        if message != self.status.last_error:
            log.warning("sync failed, will retry in %.1f s: %s", delay, message)
        self.status.last_error = message
        self.status.retry_after = retry_after
        self.status.next_attempt_in = delay
        self._next_attempt = self._monotonic() + delay

    def _purge(self) -> None:
        now = self._monotonic()
        if now < self._next_purge:
            return
        self._next_purge = now + PURGE_EVERY
        removed = self.outbox.purge_delivered(self.keep_delivered_seconds)
        if removed:
            log.info("purged %d delivered events older than %.0f h", removed, self.keep_delivered_seconds / 3600)
