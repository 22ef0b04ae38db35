"""The sync job against a stand-in for central that speaks wire v1 (a fake of our Transport protocol)."""

from __future__ import annotations

import gzip
import time

import pytest

from edge_agent.outbox import Capture
from edge_agent.sync import SyncJob
from edge_agent.transport import Response, TransportError
from shared.crypto import HEADER_SIGNATURE, HEADER_TIMESTAMP, RequestSigner, new_signing_key, verify_request
from shared.wire import Rejection, Reply, decode_batch, encode_reply


class StandInCentral:
    """Verifies signatures, dedupes on event_id and answers per event, like central's ingest."""

    def __init__(self, public_key: bytes):
        self.public_key = public_key
        self.events: dict[str, dict] = {}
        self.down = False
        self.status: int | None = None
        self.max_events: int | None = None
        self.reject_kinds: set[str] = set()
        self.requests = 0
        self.delay = 0.0
        self.in_flight = 0
        self.max_in_flight = 0

    def post(self, path, body, headers, timeout):
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            time.sleep(self.delay)
            return self._answer(path, body, headers)
        finally:
            self.in_flight -= 1

    def _answer(self, path, body, headers):
        self.requests += 1
        if self.down:
            raise TransportError("ConnectionError: connection refused")
        if self.status is not None:
            return Response(self.status, b'{"error": {"code": "x", "message": "x"}}')
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
        batch = decode_batch(gzip.decompress(body))
        if self.max_events is not None and len(batch.events) > self.max_events:
            return Response(413, b'{"error": {"code": "too_large", "message": "too large"}}')
        accepted, duplicate, rejected = [], [], list(batch.rejected)
        for event in batch.events:
            if event.kind in self.reject_kinds:
                rejected.append(Rejection(event.event_id, "unknown_kind"))
            elif event.event_id in self.events:
                duplicate.append(event.event_id)
            else:
                self.events[event.event_id] = event.payload
                accepted.append(event.event_id)
        return Response(200, encode_reply(Reply(tuple(accepted), tuple(duplicate), tuple(rejected))))


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
