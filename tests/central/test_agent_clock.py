"""An agent whose clock is hours off, or jumps back, against central served by waitress with its
real signature check (a 300 s window): nothing is lost, every request ends up authenticated (the
agent signs with central's time as measured from its replies), and the offset is reported in the
agent's status and, through the heartbeat, at central.

The agent's clocks are injected: its wall clock is the real one plus a skew the test sets; central
and its ``Date`` headers keep the real time.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

import pytest

from central.clock import system_clock
from central.fleet.models import Device
from central.ingest.models import Event as StoredEvent
from edge_agent.health import HealthMonitor
from edge_agent.outbox import Capture, Outbox
from edge_agent.status import render
from edge_agent.sync import SyncJob
from edge_agent.transport import HttpTransport
from edge_agent.writer import OutboxWriter
from shared.crypto import RequestSigner, Sealer, load_or_create_key
from tests.central.live import serving
from tests.central.support import Agent, table_rows, token_for

HOURS = 3600.0


class SkewedClock:
    """This PC's wall clock: the real time plus ``skew`` seconds, which the test may change."""

    def __init__(self, skew: float) -> None:
        self.skew = skew

    def __call__(self) -> float:
        return time.time() + self.skew


@pytest.fixture
def outbox(tmp_path):
    box = Outbox(
        tmp_path / "agent" / "outbox.db", Sealer(load_or_create_key(tmp_path / "agent" / "outbox.key")), "S001"
    )
    yield box
    box.close()


@pytest.fixture
def live(app):
    app.config["CLOCK"] = system_clock
    with serving(app) as base:
        yield base


def receipts(prefix: str, count: int) -> list[Capture]:
    return [
        Capture.of("pos.receipt", {"receipt_no": f"{prefix}{n:04d}", "total": "2.00"}, "2026-11-30T02:00:00Z")
        for n in range(count)
    ]


def stored_receipts(app) -> list[str]:
    return sorted(row.payload["receipt_no"] for row in table_rows(app, StoredEvent) if row.kind == "pos.receipt")


def skewed_agent(app, live, outbox, tmp_path, skew: float):
    enrolled = Agent(clock=lambda: datetime.now(UTC))
    assert enrolled.enroll(app.test_client(), token_for(app, now=system_clock())).status_code == 201
    wall = SkewedClock(skew)
    job = SyncJob(
        outbox,
        HttpTransport(live),
        RequestSigner(enrolled.device_id, enrolled.private_key),
        batch_size=50,
        clock=wall,
        rng=lambda: 0.0,
    )
    writer = OutboxWriter(outbox, commit_interval=0.0)
    monitor = HealthMonitor(
        outbox=outbox, writer=writer, sync=job, sources={}, status_path=tmp_path / "status.json", clock=wall
    )
    return wall, job, writer, monitor


@pytest.mark.parametrize("skew", [2 * HOURS, -2 * HOURS])
def test_an_agent_two_hours_off_loses_nothing_authenticates_and_reports_the_offset(app, live, outbox, tmp_path, skew):
    wall, job, writer, monitor = skewed_agent(app, live, outbox, tmp_path, skew)
    outbox.append(receipts("SKEW", 120))
    job.run()
    assert outbox.stats().pending == 0 and outbox.stats().delivered == 120
    assert job.status.consecutive_failures == 0 and job.status.last_error in (None, "")
    assert job.central_clock.offset() == pytest.approx(-skew, abs=5)

    # The offset is in the agent's status, and its heartbeat carries it to central.
    health = monitor.check(notify=False)
    assert health["clock_offset_s"] == pytest.approx(-skew, abs=5)
    lines, _ = render({"health": health, "written_at_epoch": wall()}, now=wall(), running=True, dead_letters=[])
    # The offset is measured over loopback round trips, so it may read a few seconds short of 2 h.
    assert any(re.match(r"clock +this PC is (2 h|1 h 59 min)", line) for line in lines), lines
    beat = {"agent_version": health["agent_version"], "health": health}  # as EdgeAgent.heartbeat() sends it
    writer.put(Capture.of("agent.heartbeat", beat, "2026-11-30T02:00:00Z"))
    writer.start()
    writer.stop()
    job.run()
    assert outbox.stats().pending == 0
    [device] = table_rows(app, Device)
    assert device.last_heartbeat["health"]["clock_offset_s"] == pytest.approx(-skew, abs=5)
    assert stored_receipts(app) == sorted(f"SKEW{n:04d}" for n in range(120))


def test_a_backward_jump_of_an_hour_loses_nothing_and_moves_the_reported_offset(app, live, outbox, tmp_path):
    wall, job, _writer, monitor = skewed_agent(app, live, outbox, tmp_path, 0.0)
    outbox.append(receipts("BEFORE", 60))
    job.run()
    assert job.central_clock.offset() == pytest.approx(0, abs=5)
    wall.skew = -1 * HOURS  # someone sets the PC's clock back an hour
    outbox.append(receipts("AFTER", 60))
    job.run()
    assert outbox.stats().pending == 0 and outbox.stats().delivered == 120
    assert job.status.consecutive_failures == 0
    assert monitor.check(notify=False)["clock_offset_s"] == pytest.approx(HOURS, abs=5)
    expected = sorted([f"BEFORE{n:04d}" for n in range(60)] + [f"AFTER{n:04d}" for n in range(60)])
    assert stored_receipts(app) == expected
    # Order follows seq, not the clock: the events sent after the jump carry higher seqs.
    seqs = {row.payload["receipt_no"]: row.seq for row in table_rows(app, StoredEvent) if row.kind == "pos.receipt"}
    assert min(seqs[n] for n in expected if n.startswith("AFTER")) > max(
        seqs[n] for n in expected if n.startswith("BEFORE")
    )
