"""The data disk fills up during trading, with real processes: central under waitress, the agent on a
small tmpfs of its own, a till writing 300 receipts at 30 a second into a pty. After space returns
every line the till wrote is at central exactly once, with and without a SIGKILL while full."""

from __future__ import annotations

import time

import pytest

from tests.e2e.test_pipeline import receipt_lines
from tools.processes import Agent, Till, wait_until

pytestmark = pytest.mark.e2e

MiB = 1024 * 1024


def receipts_at(central) -> int:
    return central.scalar("SELECT COUNT(*) FROM events WHERE kind = 'pos.receipt'")


def start(tmp_path, central, cleanup, small_fs, prefix):
    fs = small_fs(tmp_path / "agent", 16 * MiB)  # the agent's data directory, and nothing else, on it
    lines, numbers = receipt_lines(300, prefix=prefix)
    till = Till(lines, rate=30)
    agent = Agent(tmp_path, till.path)
    agent.env["EDGE_OUTBOX_RESERVE_BYTES"] = str(2 * MiB)
    cleanup += [till, agent]
    agent.enroll(central.url, central.enroll_token("S010"))
    agent.start()
    reserve = agent.data_dir / "reserve"
    wait_until(lambda: reserve.exists() and reserve.stat().st_size == 2 * MiB, 30, "the disk reserve")
    till.start()
    wait_until(lambda: receipts_at(central) >= 20, 30, "the first receipts at central")
    return fs, till, agent, numbers


def fill_until_reserve_released(fs, agent) -> None:
    """Fill the disk; the agent's next write is refused and it gives up its reserve."""
    reserve = agent.data_dir / "reserve"
    deadline = time.monotonic() + 30
    while reserve.exists():
        fs.fill()
        assert time.monotonic() < deadline, "the agent never released its reserve"
        time.sleep(0.1)


def settle(central, till, numbers, agent):
    till.join(60)
    wait_until(lambda: receipts_at(central) >= len(numbers), 90, f"{len(numbers)} receipts at central")
    time.sleep(1.0)  # a duplicate would show up now
    got = central.receipt_numbers()
    assert len(got) == len(numbers), f"{len(got)} receipts at central"
    assert set(got) == numbers
    log = agent.process.log.read_text(errors="replace")
    assert "cannot rollback" not in log
    for module in ("journal.py", "writer.py", "serial_pos.py", "backlog.py", "outbox_policy.py", "agent.py"):
        assert f'edge_agent/{module}", line' not in log and f'sources/{module}", line' not in log, module


@pytest.mark.parametrize("central", ["sqlite"], indirect=True)
def test_a_full_disk_loses_no_sale_and_reports_the_cause(central, tmp_path, cleanup, small_fs):
    fs, till, agent, numbers = start(tmp_path, central, cleanup, small_fs, "FULL")
    fill_until_reserve_released(fs, agent)
    fs.fill()  # and take the reserve's space too: now nothing but the journal's own room is left
    time.sleep(4)
    assert till.written < len(numbers)  # trading went on while the disk was full
    status, doctor = agent.command("status"), agent.command("doctor")  # the technician is told
    assert status.returncode == 1 and status.stdout.startswith("state          DEGRADED: the data disk is full")
    assert doctor.returncode == 1 and f"FAIL  disk of {agent.data_dir} is full" in doctor.stdout
    fs.free()
    settle(central, till, numbers, agent)
    log = agent.process.log.read_text(errors="replace")
    assert f"disk full writing {agent.data_dir}/" in log
    reserve = agent.data_dir / "reserve"
    wait_until(lambda: reserve.exists() and reserve.stat().st_size == 2 * MiB, 30, "the reserve to come back")


@pytest.mark.parametrize("central", ["sqlite"], indirect=True)
def test_a_sigkill_while_the_disk_is_full_loses_no_sale(central, tmp_path, cleanup, small_fs):
    fs, till, agent, numbers = start(tmp_path, central, cleanup, small_fs, "KILL")
    fill_until_reserve_released(fs, agent)
    time.sleep(1.5)  # committing through the released reserve
    agent.kill()
    fs.fill()  # nothing left at all, not even the reserve's space
    agent.start()  # restarts on a full disk
    time.sleep(3)
    agent.kill()  # and is killed again while the disk is still full
    agent.start()
    time.sleep(1)
    fs.free()
    settle(central, till, numbers, agent)
