"""The sync job against a stand-in for central that speaks wire v1 (a fake of our Transport protocol)."""

from __future__ import annotations

import email.utils
import gzip
import sqlite3
import time
import tracemalloc
from datetime import datetime

import pytest

from edge_agent.outbox import Capture, Outbox
from edge_agent.sync import SyncJob
from edge_agent.transport import Response, TransportError
from shared.crypto import HEADER_SIGNATURE, HEADER_TIMESTAMP, RequestSigner, new_signing_key, verify_request
from shared.wire import Rejection, Reply, decode_batch, encode_reply, parse_time


class StandInCentral:
    """Verifies signatures, dedupes on event_id and answers per event, like central's ingest."""

    def __init__(self, public_key: bytes, clock=None):
        self.public_key = public_key
        self.clock = clock  # central's own clock: answers carry its Date; None sends no Date
        self.window: float | None = None  # refuse signatures this many seconds off central's clock
        self.retry_after: str | None = None
        self.seqs: list[int] = []
        self.bodies: list[bytes] = []
        self.events: dict[str, dict] = {}
        self.down = False
        self.status: int | None = None
        self.max_events: int | None = None
        self.reject_kinds: set[str] = set()
        self.set_aside: set[int] = set()  # seqs central accepts and warns reprint_total_differs about
        self.requests = 0
        self.delay = 0.0
        self.in_flight = 0
        self.max_in_flight = 0
        self.seq_of: dict[str, int] = {}
        self.ask_for_gaps = False  # answer resend_from when a batch does not follow on, like central

    def post(self, path, body, headers, timeout):
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            time.sleep(self.delay)
            return self._answer(path, body, headers)
        finally:
            self.in_flight -= 1

    def _answer(self, path, body, headers):
        response = self._decide(path, body, headers)
        if self.clock is not None:
            date = email.utils.formatdate(self.clock(), usegmt=True)
            response = Response(response.status, response.body, {**response.headers, "Date": date})
        return response

    def _decide(self, path, body, headers):
        self.requests += 1
        if self.down:
            raise TransportError("ConnectionError: connection refused")
        if self.status is not None:
            extra = {"Retry-After": self.retry_after} if self.retry_after else {}
            return Response(self.status, b'{"error": {"code": "x", "message": "x"}}', extra)
        if self.window is not None:
            signed = parse_time(headers[HEADER_TIMESTAMP]).timestamp()
            if abs(signed - self.clock()) > self.window:
                return Response(401, b'{"error": {"code": "unauthorized", "message": "authentication failed"}}')
        assert verify_request(
            self.public_key,
            "POST",
            path,
            headers["X-CDP-Device"],
            headers[HEADER_TIMESTAMP],
            body,
            headers[HEADER_SIGNATURE],
            nonce=headers["X-CDP-Nonce"],
        )
        raw = gzip.decompress(body)
        self.bodies.append(raw)
        batch = decode_batch(raw)
        self.seqs += [e.seq for e in batch.events]
        if self.max_events is not None and len(batch.events) > self.max_events:
            return Response(413, b'{"error": {"code": "too_large", "message": "too large"}}')
        accepted, duplicate, rejected = [], [], list(batch.rejected)
        resend_from = self._gap_before(min(e.seq for e in batch.events)) if batch.events else None
        for event in batch.events:
            if event.kind in self.reject_kinds:
                rejected.append(Rejection(event.event_id, "unknown_kind"))
            elif event.event_id in self.events:
                duplicate.append(event.event_id)
            else:
                self.events[event.event_id] = event.payload
                self.seq_of[event.event_id] = event.seq
                accepted.append(event.event_id)
        warnings = tuple(
            Rejection(e.event_id, "reprint_total_differs")
            for e in batch.events
            if e.seq in self.set_aside and e.event_id in accepted
        )
        reply = Reply(tuple(accepted), tuple(duplicate), tuple(rejected), resend_from=resend_from, warnings=warnings)
        return Response(200, encode_reply(reply))

    def _gap_before(self, lowest: int) -> int | None:
        held = max((seq for seq in self.seq_of.values() if seq < lowest), default=None)
        return held + 1 if self.ask_for_gaps and held is not None and held < lowest - 1 else None

    def restore(self, through_seq: int) -> None:
        """Forget every event after ``through_seq``, as a restore from an older backup does."""
        for event_id, seq in list(self.seq_of.items()):
            if seq > through_seq:
                del self.seq_of[event_id], self.events[event_id]


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


@pytest.fixture
def central_and_job(outbox):
    private, public = new_signing_key()
    central = StandInCentral(public)
    clock = Clock()
    job = SyncJob(outbox, central, RequestSigner("dev_test", private), batch_size=50, monotonic=clock, rng=lambda: 1.0)
    return central, job, clock


def fill(outbox, count, kind="pos.receipt"):
    outbox.append(
        [Capture.of(kind, {"receipt_no": f"R{n}", "total": "1.00"}, "2026-11-23T02:00:00.000Z") for n in range(count)]
    )


def fill_padded(outbox, count):
    """Receipts of about 400 bytes of JSON each, for batches cut by bytes."""
    outbox.append(
        [
            Capture.of(
                "pos.receipt", {"receipt_no": f"R{n}", "total": "1.00", "note": "x" * 300}, "2026-11-23T02:00:00Z"
            )
            for n in range(count)
        ]
    )


def test_run_drains_the_whole_backlog_in_batches(outbox, central_and_job):
    central, job, _ = central_and_job
    fill(outbox, 120)
    job.run()
    assert len(central.events) == 120
    assert central.requests == 3
    assert outbox.stats().pending == 0 and outbox.stats().delivered == 120


def test_resent_events_count_as_delivered(outbox, central_and_job):
    central, job, _ = central_and_job
    fill(outbox, 10)
    for p in outbox.pending(10):
        central.events[p.event_id] = {}  # central got them before, but the answer was lost
    job.run()
    assert outbox.stats().delivered == 10
    assert job.status.duplicate == 10


def test_rejected_events_keep_the_reason_and_are_not_resent(outbox, central_and_job):
    central, job, _ = central_and_job
    central.reject_kinds = {"pos.sale"}
    fill(outbox, 3)
    fill(outbox, 2, kind="pos.sale")  # a payload that fits its schema
    job.run()
    assert outbox.stats().rejected == 2
    assert {reason for *_, reason in outbox.rejected()} == {"unknown_kind"}
    requests = central.requests
    job.run()
    assert central.requests == requests  # nothing left to send


def test_an_unreachable_central_backs_off_then_drains(outbox, central_and_job):
    central, job, clock = central_and_job
    fill(outbox, 5)
    central.down = True
    job.run()
    assert job.status.consecutive_failures == 1
    assert "connection refused" in job.status.last_error
    job.run()  # still inside the backoff window: no attempt
    assert central.requests == 1
    clock.now += 1.1
    job.run()
    assert job.status.consecutive_failures == 2
    clock.now += 2.1
    central.down = False
    job.run()
    assert outbox.stats().pending == 0
    assert job.status.consecutive_failures == 0


def test_backoff_is_capped(outbox, central_and_job):
    central, job, clock = central_and_job
    job.max_backoff = 10.0
    fill(outbox, 1)
    central.down = True
    for _ in range(10):
        clock.now += 1000
        job.run()
    clock.now += 10.01
    central.down = False
    job.run()
    assert outbox.stats().pending == 0


def test_server_errors_and_auth_failures_are_retried_later_not_dropped(outbox, central_and_job):
    central, job, clock = central_and_job
    fill(outbox, 5)
    for status in (500, 401, 400):
        central.status = status
        clock.now += 1000
        job.run()
        assert f"central answered {status}" in job.status.last_error
        assert outbox.stats().pending == 5


def test_too_large_batches_are_split(outbox, central_and_job):
    central, job, _ = central_and_job
    central.max_events = 12
    fill(outbox, 100)
    job.run()
    assert len(central.events) == 100
    assert job.current_batch_size <= 12


def test_one_request_at_a_time_while_the_next_batch_is_prepared(outbox, central_and_job):
    central, job, _ = central_and_job
    central.delay = 0.02
    fill(outbox, 300)
    job.run()
    assert len(central.events) == 300
    assert central.requests == 6
    assert central.max_in_flight == 1
    assert outbox.stats().delivered == 300


def test_a_failure_mid_drain_keeps_the_rest_pending(outbox, central_and_job):
    central, job, clock = central_and_job
    fill(outbox, 200)
    answered = []
    original = central._answer

    def fail_third(path, body, headers):
        if len(answered) == 2:
            raise TransportError("ConnectionError: reset")
        answered.append(1)
        return original(path, body, headers)

    central._answer = fail_third
    job.run()
    assert outbox.stats().delivered == 100
    assert outbox.stats().pending == 100
    central._answer = original
    clock.now += 10
    job.run()
    assert outbox.stats().delivered == 200
    assert len(central.events) == 200


class World:
    """True time for a skewed agent: central reads it, the agent's monotonic clock follows it, the
    agent's wall clock is ``skew`` seconds off it (and can jump)."""

    def __init__(self, skew: float):
        self.true = 1_800_000_000.0
        self.skew = skew

    def central(self):
        return self.true

    def monotonic(self):
        return self.true - 1_700_000_000.0

    def wall(self):
        return self.true + self.skew


def skewed_job(outbox, skew, **options):
    world = World(skew)
    private, public = new_signing_key()
    central = StandInCentral(public, clock=world.central)
    central.window = 300
    job = SyncJob(
        outbox,
        central,
        RequestSigner("dev_test", private),
        batch_size=50,
        clock=world.wall,
        monotonic=world.monotonic,
        rng=lambda: 1.0,
        **options,
    )
    return world, central, job


@pytest.mark.parametrize("skew", [7200.0, -7200.0])
def test_a_skewed_agent_authenticates_by_signing_with_centrals_time(outbox, skew):
    world, central, job = skewed_job(outbox, skew)
    fill(outbox, 120)
    job.run()
    assert outbox.stats().pending == 0 and len(central.events) == 120
    assert central.requests == 4  # the first request was refused once, then re-signed; then two more batches
    assert job.status.consecutive_failures == 0
    assert job.central_clock.offset() == pytest.approx(-skew, abs=1.0)
    # From then on the agent signs with central's time straight away.
    fill(outbox, 10)
    world.true += 30
    job.run()
    assert central.requests == 5 and outbox.stats().pending == 0


def test_a_backward_jump_of_the_agents_clock_does_not_break_signing(outbox):
    world, central, job = skewed_job(outbox, 0.0)
    fill(outbox, 10)
    job.run()
    assert central.requests == 1
    world.skew = -3600.0  # someone sets the PC's clock back an hour
    world.true += 5
    fill(outbox, 10)
    job.run()
    assert central.requests == 2  # no refusal: signing follows the monotonic clock, not the wall clock
    assert outbox.stats().pending == 0
    assert job.central_clock.offset() == pytest.approx(3600.0, abs=1.0)


def test_a_refused_signature_without_clock_skew_is_not_retried_at_once(outbox):
    _, central, job = skewed_job(outbox, 0.0)
    central.status = 401
    fill(outbox, 5)
    job.run()
    assert central.requests == 1
    assert "signature was refused" in job.status.last_error
    assert outbox.stats().pending == 5


def test_sent_at_and_signature_use_centrals_time(outbox):
    world, central, job = skewed_job(outbox, 7200.0)
    fill(outbox, 3)
    job.run()  # measures the offset (this batch was encoded before it was known)
    fill(outbox, 3)
    job.run()
    sent_at = parse_time(decode_batch(central.bodies[-1]).sent_at).timestamp()
    assert abs(sent_at - world.true) < 2


def test_batches_are_bounded_by_bytes_as_well_as_count(outbox, central_and_job):
    central, job, _ = central_and_job
    job.batch_bytes = 4096
    fill_padded(outbox, 40)
    job.run()
    assert outbox.stats().pending == 0 and len(central.events) == 40
    assert central.requests > 3
    for raw in central.bodies:
        events = decode_batch(raw).events
        assert len(raw) <= 4096 + 200 or len(events) == 1  # the budget covers events; the envelope is small


def test_a_single_event_larger_than_the_byte_budget_goes_alone(outbox, central_and_job):
    central, job, _ = central_and_job
    job.batch_bytes = 4096
    outbox.append(
        [Capture.of("pos.receipt", {"receipt_no": "BIG", "total": "1.00", "note": "x" * 9000}, "2026-11-23T02:00:00Z")]
    )
    fill(outbox, 3)
    job.run()
    assert outbox.stats().pending == 0
    assert [len(decode_batch(raw).events) for raw in central.bodies] == [1, 3]


def test_retry_after_in_seconds_is_a_floor_for_the_next_attempt(outbox, central_and_job):
    central, job, clock = central_and_job
    fill(outbox, 5)
    central.status, central.retry_after = 429, "7"
    job.run()
    assert job.status.retry_after == 7.0
    assert "central answered 429" in job.status.last_error
    central.status = None
    clock.now += 6.9
    job.run()
    assert central.requests == 1  # still waiting, as central asked
    clock.now += 0.8  # 7 s plus up to a tenth of jitter (this rng draws the most)
    job.run()
    assert central.requests == 2 and outbox.stats().pending == 0


def test_retry_after_as_an_http_date_counts_from_centrals_date_not_the_agents_clock(outbox):
    world, central, job = skewed_job(outbox, -7200.0)
    central.window = None
    fill(outbox, 5)
    central.status = 503
    central.retry_after = email.utils.formatdate(world.true + 120, usegmt=True)
    job.run()
    assert job.status.retry_after == pytest.approx(120, abs=1)
    central.status = None
    world.true += 119
    job.run()
    assert central.requests == 1
    world.true += 14
    job.run()
    assert outbox.stats().pending == 0


def test_rejected_events_do_not_hold_up_the_rest_and_are_counted_by_reason(outbox, central_and_job):
    central, job, _ = central_and_job
    central.reject_kinds = {"pos.sale"}
    fill(outbox, 20)
    fill(outbox, 1, kind="pos.sale")
    fill(outbox, 80)
    job.run()
    stats = outbox.stats()
    assert stats.pending == 0 and stats.delivered == 100 and stats.rejected == 1
    assert job.status.rejected_by_reason == {"unknown_kind": 1}
    assert outbox.dead_letter_counts() == {"unknown_kind": 1}


def test_batches_follow_seq_even_when_the_wall_clock_runs_backwards(outbox, central_and_job):
    central, job, _ = central_and_job
    for n in range(120):
        moment = datetime.fromtimestamp(1_800_000_000 - n * 60).astimezone().isoformat()
        outbox.append([Capture.of("pos.receipt", {"receipt_no": f"R{n}", "total": "1.00"}, moment)])
    job.run()
    assert central.seqs == sorted(central.seqs) and len(central.seqs) == 120


def test_full_jitter_draws_below_a_doubling_ceiling(outbox, central_and_job):
    central, job, clock = central_and_job
    draws = iter([0.0, 0.5, 0.25])
    job.backoff._rng = lambda: next(draws)
    fill(outbox, 1)
    central.down = True
    waits = []
    for _ in range(3):
        job.run()
        waits.append(job.status.next_attempt_in)
        clock.now += 10
    assert waits == [0.0, 1.0, 1.0]  # 0.0 x 1 s, 0.5 x 2 s, 0.25 x 4 s
    assert central.requests == 3


def test_an_idle_run_counts_as_progress(outbox, central_and_job):
    _, job, _ = central_and_job
    assert job.status.last_progress_at is None
    job.run()
    assert job.status.last_progress_at is not None


def test_an_outbox_that_cannot_record_the_answer_backs_off_instead_of_raising(tmp_path, sealer):
    """A full disk (here: another writer holding the database) must not throw out of the scheduled run."""
    import sqlite3

    from edge_agent.outbox import Outbox

    box = Outbox(tmp_path / "locked.db", sealer, "S001", busy_timeout=0.1)
    try:
        private, public = new_signing_key()
        central = StandInCentral(public)
        clock = Clock()
        job = SyncJob(box, central, RequestSigner("dev_test", private), batch_size=50, monotonic=clock, rng=lambda: 1.0)
        fill(box, 10)
        blocker = sqlite3.connect(tmp_path / "locked.db", isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        job.run()  # central stores the batch, but the outbox cannot settle it
        assert len(central.events) == 10
        assert "cannot update the outbox" in (job.status.last_error or "")
        blocker.execute("ROLLBACK")
        blocker.close()
        clock.now += 1000
        job.run()  # sent again; central counts duplicates and the outbox settles
        assert box.stats().pending == 0 and box.stats().delivered == 10
    finally:
        box.close()


def test_a_batch_larger_than_a_read_page_is_read_page_by_page(outbox, central_and_job, monkeypatch):
    monkeypatch.setattr("edge_agent.sync.READ_PAGE", 7)
    central, job, _ = central_and_job
    job.batch_size = job.current_batch_size = 20
    fill(outbox, 45)
    job.run()
    assert [len(decode_batch(raw).events) for raw in central.bodies] == [20, 20, 5]
    assert central.seqs == sorted(set(central.seqs)) and len(central.seqs) == 45
    assert outbox.stats().pending == 0 and outbox.stats().delivered == 45


def test_the_byte_budget_cuts_a_batch_inside_a_later_page(outbox, central_and_job, monkeypatch):
    monkeypatch.setattr("edge_agent.sync.READ_PAGE", 7)
    central, job, _ = central_and_job
    job.batch_size = job.current_batch_size = 100
    job.batch_bytes = 4096
    fill_padded(outbox, 40)
    job.run()
    sizes = [len(decode_batch(raw).events) for raw in central.bodies]
    assert sum(sizes) == 40 and max(sizes) > 7 and len(sizes) > 3  # more than a page each, cut by bytes
    assert central.seqs == sorted(set(central.seqs))
    assert outbox.stats().pending == 0


def test_a_large_batch_is_built_in_little_memory(outbox, central_and_job):
    # The agent's memory budget (60 MB) must hold while a backlog drains: a batch is streamed into
    # its gzip body page by page, not held as every opened row and its JSON at once.
    _, job, _ = central_and_job
    job.batch_size = job.current_batch_size = 2000
    outbox.append(
        [
            Capture.of(
                "pos.receipt",
                {"receipt_no": f"R{n:06d}", "total": "1.00", "note": f"{n:0300d}"},
                "2026-11-23T02:00:00Z",
            )
            for n in range(2000)
        ]
    )
    tracemalloc.start()
    try:
        batch = job._prepare(after=None)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert batch is not None and len(batch.rows) == 2000
    assert peak < 2_000_000, peak  # 4.5 MB when every row was opened and encoded before compressing


def test_the_gap_central_asks_about_is_resent_and_what_the_outbox_no_longer_holds_is_counted_once(
    outbox, central_and_job
):
    central, job, _ = central_and_job
    central.ask_for_gaps = True
    fill(outbox, 120)
    job.run()
    central.restore(through_seq=5)
    # Delivered rows 6-20 were purged (their 72 h were up): nobody can send them again.
    sqlite3.connect(outbox.path, isolation_level=None).execute("DELETE FROM events WHERE seq BETWEEN 6 AND 20")
    fill(outbox, 10)
    central.requests = 0
    job.run()
    assert sorted(central.seq_of.values()) == [*range(1, 6), *range(21, 131)]
    assert outbox.stats().pending == 0
    # Exactly the gap goes again: rows 21-120, none of them a duplicate; 6-20 are counted as gone.
    assert outbox.counters()["resent"] == 100 and outbox.counters()["resend_missing"] == 15
    assert sorted(central.seqs).count(21) == 2 and sorted(central.seqs).count(121) == 1
    # Central asks again for 6-20 (the resent rows start at 21): nothing to send, nothing counted twice.
    assert central.requests == 3  # the 10 new events, then rows 21-120 in two batches of 50
    job.run()
    assert central.requests == 3 and outbox.resend_asked() == []
    assert outbox.counters()["resend_missing"] == 15


def test_a_resend_asked_for_before_a_restart_is_still_made(tmp_path, sealer, central_and_job):
    central, job, _ = central_and_job
    central.ask_for_gaps = True
    fill(job.outbox, 30)
    job.run()
    central.restore(through_seq=10)
    job.outbox.ask_resend(11, 31)  # central's answer arrived; the agent stopped before acting on it
    reopened = Outbox(job.outbox.path, sealer, "S001")
    again = SyncJob(reopened, central, job.signer, batch_size=50)
    again.run()
    assert sorted(central.seq_of.values()) == list(range(1, 31))


def test_receipts_central_set_aside_are_delivered_and_counted_by_reason(outbox, central_and_job):
    """A copy of a receipt number with another total is kept at HQ and counted nowhere: the agent says so in health."""
    central, job, _ = central_and_job
    central.set_aside = {3, 7}
    fill(outbox, 10)
    job.run()
    assert outbox.stats().delivered == 10
    assert job.status.warned_by_reason == {"reprint_total_differs": 2}
