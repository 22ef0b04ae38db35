"""A poison event: one event central refuses, in the middle of a 500-event batch, with real processes.

The event reaches the outbox the way an older agent release or a hand-made repair could put it
there (written straight into the outbox, past this release's own payload check), so it is central's
check that refuses it. The other 499 are committed, the refused one is dead-lettered with central's
reason, shown by `edge-agent status` and in the heartbeat central keeps, and sync goes on.
"""

from __future__ import annotations

import json

import pytest

from edge_agent.outbox import Capture, Outbox
from shared.crypto import Sealer, load_or_create_key
from tests.e2e.test_pipeline import receipt_lines
from tools.processes import Agent, Till, wait_until

pytestmark = pytest.mark.e2e

AT = "2026-11-30T02:00:00.000Z"


def receipt(number: str, total: str = "9.50") -> Capture:
    return Capture.of("pos.receipt", {"receipt_no": number, "total": total}, AT, "pos")


@pytest.mark.parametrize("central", ["sqlite"], indirect=True)
def test_one_poison_event_in_a_batch_of_500_is_dead_lettered_and_the_rest_go_through(central, tmp_path, cleanup):
    later, later_numbers = receipt_lines(20, prefix="AFTER")
    till = Till(later, rate=20)
    # A heartbeat a second, so the one that reports the dead letter comes within a second, not five.
    agent = Agent(tmp_path, till.path, sync_settings="batch_size = 500", heartbeat_interval=1)
    cleanup += [till, agent]
    agent.enroll(central.url, central.enroll_token("S030"))
    outbox = Outbox(agent.data_dir / "outbox.db", Sealer(load_or_create_key(agent.data_dir / "outbox.key")), "S030")
    backlog = [receipt(f"Q-{n:03d}") for n in range(250)]
    backlog.append(receipt("POISON", total="9,50"))  # a decimal comma: not money to central's schema
    backlog += [receipt(f"Q-{n:03d}") for n in range(250, 499)]
    outbox.append(backlog)
    outbox.close()

    agent.start()
    wait_until(
        lambda: central.scalar("SELECT COUNT(*) FROM events WHERE kind = 'pos.receipt'") >= 499,
        60,
        "the 499 good events at central",
    )
    till.start()  # sync goes on after the dead letter: what the till sells next arrives too
    till.join(30)
    expected = {f"Q-{n:03d}" for n in range(499)} | later_numbers
    wait_until(lambda: set(central.receipt_numbers()) >= expected, 60, "the later receipts at central")

    def device():
        return json.loads(central.cli("devices", "--json"))["devices"][0]

    wait_until(
        lambda: (device()["last_heartbeat"] or {}).get("health", {}).get("dead_lettered") == 1,
        30,
        "a heartbeat reporting the dead letter",
    )
    status = agent.command("status")
    agent.stop()

    got = central.receipt_numbers()
    assert sorted(got) == sorted(expected), "each good event once, the poison one never"
    assert "dead letters   1 (rejected by central; listed below)" in status.stdout
    [listed] = [line for line in status.stdout.splitlines() if "dead letter  seq" in line]
    assert "seq 251 " in listed and "pos.receipt" in listed and "invalid_payload:total" in listed
    assert device()["last_heartbeat"]["health"]["dead_lettered"] == 1
