"""Bounce matrix: the agent and central are each killed and cleanly restarted while a till trades.

20,000 receipts go into a real pty. Once a fifth of them have been written, three rounds bounce
the agent (SIGKILL, then a clean stop) and central (SIGKILL, then a clean stop), with trading
going on throughout. The set of receipts at central must equal the set the till wrote, each once.
"""

from __future__ import annotations

import signal
import time

import pytest

from tests.e2e.test_pipeline import receipt_lines
from tools.processes import Agent, Central, Till, wait_until

pytestmark = pytest.mark.e2e

RECEIPTS = 20_000
RATE = 800  # lines/s: 25 s of trading


def _bounce_central(central: Central, *, kill: bool) -> None:
    if kill:
        central.process.signal(signal.SIGKILL)
        central.process.wait()
    else:
        central.stop()
    time.sleep(0.5)
    central.start()


def _bounce_agent(agent: Agent, *, kill: bool) -> None:
    if kill:
        agent.kill()
    else:
        agent.stop()
    time.sleep(0.3)
    agent.start()


def test_agent_and_central_bounced_three_times_lose_and_duplicate_nothing(central, tmp_path, cleanup):
    lines, numbers = receipt_lines(RECEIPTS, prefix="BNC")
    till = Till(lines, rate=RATE)
    agent = Agent(tmp_path, till.path)
    cleanup += [till, agent]
    agent.enroll(central.url, central.enroll_token("S010"))
    agent.start()
    till.start()
    wait_until(lambda: till.written >= RECEIPTS // 5, 60, "a fifth of the receipts written")

    bounces = []
    for _round in range(3):
        for target, kill in (("agent", True), ("central", True), ("agent", False), ("central", False)):
            if target == "agent":
                _bounce_agent(agent, kill=kill)
            else:
                _bounce_central(central, kill=kill)
            bounces.append((target, "SIGKILL" if kill else "stop", till.written))
            time.sleep(0.5)

    till.join(180)
    wait_until(
        lambda: central.scalar("SELECT COUNT(*) FROM events WHERE kind = 'pos.receipt'") >= RECEIPTS,
        180,
        f"{RECEIPTS:,} receipts at central",
        interval=1.0,
    )
    time.sleep(2.0)  # anything sent twice would show up now
    got = central.receipt_numbers()
    assert len(got) == RECEIPTS, f"{len(got)} receipts after bounces {bounces}"
    assert set(got) == numbers
    assert central.scalar("SELECT COUNT(*) FROM receipts") == RECEIPTS
