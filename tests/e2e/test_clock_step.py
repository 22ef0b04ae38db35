"""A store PC's wall clock stepped back an hour (NTP correcting drift, a technician setting the time)
while the agent runs: its jobs keep their pace, so sales and heartbeats still reach central.

libfaketime moves the agent's wall clock alone (its monotonic clock stays real), as an NTP step does.
"""

from __future__ import annotations

import glob
import os
import time

import pytest

from tests.conftest import unavailable
from tools.processes import Agent, Till, wait_until

pytestmark = pytest.mark.e2e


def _faketime() -> str:
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1"))
    if not found:
        unavailable("libfaketime is not installed (Debian package faketime; ./dev test installs it)")
    return found[0]


def test_a_clock_stepped_back_an_hour_stops_neither_sync_nor_heartbeats(central, tmp_path, cleanup):
    step = tmp_path / "faketime"
    step.write_text("+0\n")
    pos = Till([b"receipt_no=CS-1 total=10.00\n"], rate=20)
    agent = Agent(tmp_path, pos.path, heartbeat_interval=1)
    agent.env.update(
        LD_PRELOAD=_faketime(),
        FAKETIME_TIMESTAMP_FILE=str(step),
        FAKETIME_NO_CACHE="1",
        FAKETIME_DONT_FAKE_MONOTONIC="1",
    )
    cleanup += [pos, agent]
    agent.enroll(central.url, central.enroll_token("S041"))
    agent.start()
    pos.start()
    wait_until(lambda: central.receipt_numbers() == ["CS-1"], 60, "the first receipt at central")

    step.write_text("-1h\n")
    time.sleep(2)  # the jobs' next runs fall after the step
    heartbeats = central.scalar("SELECT count(*) FROM events WHERE kind = 'agent.heartbeat'")
    os.write(pos.master, b"receipt_no=CS-2 total=20.00\n")
    wait_until(lambda: sorted(central.receipt_numbers()) == ["CS-1", "CS-2"], 30, "the receipt printed after the step")
    wait_until(
        lambda: central.scalar("SELECT count(*) FROM events WHERE kind = 'agent.heartbeat'") >= heartbeats + 3,
        30,
        "heartbeats after the step",
    )
