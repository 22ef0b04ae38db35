"""Chaos acceptance: the sync job against central under waitress, through a proxy that misbehaves.

1,000 small batches meet 20 % 5xx, 5 % 429 with Retry-After, 5 % stalls past the client's
timeout (central commits them late) and 5 % replies dropped after central committed. Nothing may be
lost and nothing stored twice. Network waits are real; backoff waits are skipped on an injected
monotonic clock (the test checks their lengths instead), so the run takes tens of seconds.

Longer or other runs: ``CDP_CHAOS_BATCHES=10000`` (default 1000) and
``CDP_CHAOS_DATABASES=sqlite,postgresql`` (default sqlite).
"""

from __future__ import annotations

import os
import time

import pytest

from edge_agent.enroll import enroll
from edge_agent.outbox import Capture, Outbox
from edge_agent.sync import BATCHES_PATH, SyncJob
from edge_agent.transport import HttpTransport
from shared.crypto import RequestSigner, Sealer, load_or_create_key
from tests.conftest import fresh_postgres_database
from tools.faultproxy import Fault, FaultProxy
from tools.processes import Central

pytestmark = pytest.mark.e2e

BATCHES = int(os.environ.get("CDP_CHAOS_BATCHES", "1000"))
DATABASES = os.environ.get("CDP_CHAOS_DATABASES", "sqlite").split(",")
BATCH_SIZE = 2
READ_TIMEOUT = 0.25
MAX_BACKOFF = 0.05


class SkippingClock:
    """The monotonic clock, plus the backoff waits the test skipped instead of sleeping through."""

    def __init__(self) -> None:
        self.skipped = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.skipped


@pytest.fixture(params=DATABASES)
def chaos_central(request, tmp_path):
    if request.param == "sqlite":
        server = Central(tmp_path, f"sqlite:///{tmp_path / 'central.db'}", cli_in_process=True)
        server.start()
        yield server
        server.close()
        return
    with fresh_postgres_database("cdp_chaos") as url:
        server = Central(tmp_path, url, cli_in_process=True)
        server.start()
        yield server
        server.close()


def test_a_thousand_batches_through_chaos_lose_nothing_and_store_nothing_twice(chaos_central, tmp_path):
    central = chaos_central
    creds = enroll(central.url, central.enroll_token("S001"), tmp_path / "credentials.json")
    outbox = Outbox(tmp_path / "outbox.db", Sealer(load_or_create_key(tmp_path / "outbox.key")), creds.store_id)
    events = BATCHES * BATCH_SIZE
    outbox.append(
        [
            Capture.of("pos.receipt", {"receipt_no": f"C{n:06d}", "total": "1.00"}, "2026-11-23T02:00:00.000Z")
            for n in range(events)
        ]
    )
    expected_ids = {p.event_id for p in outbox.pending(events)}

    proxy = FaultProxy(central.url, retry_after="1", stall_seconds=READ_TIMEOUT * 3, only_path=BATCHES_PATH)
    proxy.rates(error=0.20, throttle=0.05, stall=0.05, drop=0.05, seed=2026)
    proxy.start()
    clock = SkippingClock()
    transport = HttpTransport(proxy.url, connect_timeout=2.0)
    job = SyncJob(
        outbox,
        transport,
        RequestSigner(creds.device_id, creds.private_key),
        batch_size=BATCH_SIZE,
        timeout=READ_TIMEOUT,
        min_backoff=0.01,
        max_backoff=MAX_BACKOFF,
        monotonic=clock,
    )
    waits: list[tuple[float | None, float]] = []
    started = time.monotonic()
    try:
        while outbox.stats().pending and time.monotonic() - started < 600:
            job.run()
            wait = job.next_attempt_at() - clock()
            if wait > 0:
                waits.append((job.status.retry_after, wait))
                clock.skipped += wait
    finally:
        job.close()
        transport.close()
        proxy.close()
    elapsed = time.monotonic() - started

    stats = outbox.stats()
    assert stats.pending == 0 and stats.rejected == 0, f"{stats} after {elapsed:.0f} s"
    assert stats.delivered == events
    stored = central.scalar(f"SELECT COUNT(*) FROM events WHERE device_id = '{creds.device_id}'")  # noqa: S608
    distinct = central.scalar(
        f"SELECT COUNT(DISTINCT event_id) FROM events WHERE device_id = '{creds.device_id}'"  # noqa: S608
    )
    assert stored == distinct == events, "lost or duplicated events at central"
    with central.engine.connect() as conn:
        import sqlalchemy as sa

        at_central = set(conn.execute(sa.text("SELECT event_id FROM events")).scalars())
    assert at_central == expected_ids

    faults = proxy.counts()
    assert job.status.batches >= BATCHES
    assert faults[Fault.ERROR] > 0.1 * BATCHES and faults[Fault.THROTTLE] > 0 and faults[Fault.STALL] > 0
    assert faults[Fault.DROP] > 0
    assert job.status.duplicate > 0  # batches whose reply was lost were sent again and recognised
    throttled = [wait for retry_after, wait in waits if retry_after is not None]
    assert len(throttled) == faults[Fault.THROTTLE]
    assert all(wait >= 1.0 for wait in throttled), "Retry-After: 1 was not honoured"
    assert all(wait <= MAX_BACKOFF for retry_after, wait in waits if retry_after is None)
    print(
        f"\nchaos: {job.status.batches} batches answered, {len(proxy.log)} requests, faults "
        f"{ {f.value: n for f, n in faults.items()} }, {job.status.duplicate} duplicates recognised, "
        f"{elapsed:.1f} s"
    )
