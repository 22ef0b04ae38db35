"""A kill storm: the agent SIGKILLed again and again at random moments while a till trades and the
sync job ships, with real processes. Nothing is lost, nothing reaches central twice, and the outbox
passes SQLite's integrity check after every kill. ``--storm N`` sets the number of kills (30; 1000
for the long run); ``--storm-reading`` waits for each restarted agent to read the port before the
random delay (then shorter), so that every kill lands while it reads, often while it catches up."""

from __future__ import annotations

import random
import sqlite3
import time

import pytest

from tests.e2e.test_pipeline import receipt_lines
from tools.processes import Agent, Till, wait_until

pytestmark = pytest.mark.e2e

RATE = 40  # receipts a second, about one second of trading per kill


def reading(agent: Agent) -> int:
    """How many times the agent has opened the POS port (its log says so each time)."""
    log = agent.process.log
    return log.read_bytes().count(b"pos: reading") if log.exists() else 0


def integrity(agent: Agent) -> str:
    conn = sqlite3.connect(agent.data_dir / "outbox.db", timeout=30)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


@pytest.mark.parametrize("central", ["sqlite"], indirect=True)
def test_a_storm_of_sigkills_loses_and_duplicates_nothing(central, tmp_path, cleanup, request):
    kills = request.config.getoption("--storm")
    after_start = request.config.getoption("--storm-reading")
    lines, numbers = receipt_lines(RATE * kills, garbage_every=97, prefix="STORM")
    till = Till(lines, rate=RATE)
    agent = Agent(tmp_path, till.path)
    cleanup += [till, agent]
    agent.enroll(central.url, central.enroll_token("S020"))
    rng = random.Random()
    opened = reading(agent)
    agent.start()
    till.start()
    for n in range(kills):
        if after_start:
            wait_until(
                lambda before=opened: reading(agent) > before, 60, f"the agent to read the port after restart {n}"
            )
        # Sometimes still starting, sometimes replaying, mostly trading; once reading, often still
        # catching up on what the till sent while the agent was down (reads of a full tty buffer).
        time.sleep(rng.uniform(0.0, 0.8) if after_start else rng.uniform(0.2, 1.6))
        agent.kill()
        assert integrity(agent) == "ok", f"after kill {n + 1}"
        opened = reading(agent)
        agent.start()
    till.join(RATE * kills)
    wait_until(
        lambda: central.scalar("SELECT COUNT(*) FROM events WHERE kind = 'pos.receipt'") >= len(numbers),
        120,
        f"{len(numbers)} receipts at central",
    )
    time.sleep(1.0)  # a duplicate would show up now
    agent.stop()
    assert integrity(agent) == "ok"
    got = central.receipt_numbers()
    assert len(got) == len(set(got)), f"{len(got) - len(set(got))} receipts reached central twice"
    assert set(got) == numbers, f"{len(numbers - set(got))} receipts lost"
    assert central.scalar("SELECT COUNT(*) FROM receipts") == len(numbers)
