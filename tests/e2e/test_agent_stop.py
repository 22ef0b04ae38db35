"""An agent told to stop while it drains a backlog stops within a request, not after the backlog.

After days offline a store has hundreds of thousands of events to send; a restart (an upgrade, a
setting that needs one, the PC shutting down) must not wait for all of them, nor be killed by
systemd half-way through. What it has not sent stays in the outbox and goes after the restart.
"""

from __future__ import annotations

import time

import pytest

from tools.faultproxy import FaultProxy
from tools.processes import Agent, Till, wait_until

pytestmark = pytest.mark.e2e

RECEIPTS = 300
BATCH = 15  # twenty batches
DELAY = 1.0  # seconds central's answers take through the proxy: a drain of about twenty seconds


def test_a_stop_during_a_long_drain_ends_after_the_batch_in_flight_and_loses_nothing(central, tmp_path, cleanup):
    proxy = FaultProxy(central.url, delay_seconds=DELAY, only_path="/api/v1/batches").start()
    pos = Till([f"receipt_no=ST-{n:04d} total=10.00\n".encode() for n in range(RECEIPTS)], rate=200)
    agent = Agent(tmp_path, pos.path, sync_settings=f"batch_size = {BATCH}", heartbeat_interval=60)
    cleanup += [proxy, pos, agent]
    agent.enroll(proxy.url, central.enroll_token("S051"))
    proxy.rates(error=1.0)  # central unreachable while the till prints: a backlog builds
    agent.start()
    pos.start()
    pos.join(30)
    time.sleep(2)  # the last lines captured into the outbox
    proxy.rates(delay=1.0)  # central answers again, slowly
    wait_until(lambda: len(central.receipt_numbers()) >= 2 * BATCH, 60, "the drain under way")
    asked = time.monotonic()
    agent.stop()
    stopped_in = time.monotonic() - asked
    sent = len(central.receipt_numbers())
    # The batch in flight is answered (or, its answer lost, sent again later), then the agent exits.
    assert stopped_in < 4 * DELAY + 2, f"the agent took {stopped_in:.1f} s to stop, sending {sent} of {RECEIPTS}"
    assert sent < RECEIPTS - 2 * BATCH, "the drain was over before the stop: nothing to show"
    assert "edge agent stopped" in agent.process.tail(80)
    proxy.rates()  # central fast again
    agent.start()
    wait_until(lambda: len(central.receipt_numbers()) >= RECEIPTS, 60, "the rest of the backlog after the restart")
    numbers = central.receipt_numbers()
    assert sorted(numbers) == [f"ST-{n:04d}" for n in range(RECEIPTS)]  # every one, once
