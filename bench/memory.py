"""Agent resident memory: the real `edge-agent run` process, idle, while ingesting a busy till, and
while draining a backlog queued during an outage (100,000 and 500,000 events).

RSS is read from /proc/<pid>/status (VmRSS, sampled every 100 ms); the target is at most 60 MB, the
same at both backlogs. (The endurance benchmark's peak is a process running only the sync path.)
"""

from __future__ import annotations

import random
import tempfile
import threading
import time
from pathlib import Path

from bench.common import line, median, receipt_capture
from edge_agent.config import load_config
from edge_agent.outbox import Outbox
from edge_agent.rotation import resolve_outbox_key
from shared.crypto import Sealer
from tools.processes import Agent, Central, Till, wait_until


def rss_mb(pid: int) -> float:
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith("VmRSS:"):
            return int(row.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def sample(pid: int, seconds: float) -> list[float]:
    values = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        values.append(rss_mb(pid))
        time.sleep(0.1)
    return values


def busy_lines(count: int) -> list[bytes]:
    rng = random.Random(5)
    return [
        (
            f'{{"receipt_no": "MEM-{n:07d}", "total": "{rng.randrange(1, 9999) / 100:.2f}", '
            f'"member_phone": "139{rng.randrange(4000):08d}", '
            f'"items": [{{"sku": "6921168509256", "name": "农夫山泉", "qty": 1, "unit_price": "2.00"}}]}}\r\n'
        ).encode()
        for n in range(count)
    ]


def queue_backlog(agent: Agent, events: int) -> None:
    """Write ``events`` receipts into the enrolled agent's outbox, as an outage would leave them."""
    config = load_config(agent.config)
    key = resolve_outbox_key(config.key_path, config.outbox_path, config.journal_dir)
    outbox = Outbox(config.outbox_path, Sealer(key), "S001")
    rng = random.Random(5)
    try:
        for first in range(0, events, 5000):
            outbox.append([receipt_capture(n, rng) for n in range(first, min(events, first + 5000))])
    finally:
        outbox.close()


def drain_peak(events: int) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of the real agent draining a backlog of ``events`` to central."""
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        central = Central(workdir, f"sqlite:///{workdir / 'central.db'}")
        central.start()
        till = Till([], rate=1)
        agent = Agent(workdir, till.path)
        try:
            agent.enroll(central.url, central.enroll_token("S001"))
            queue_backlog(agent, events)
            agent.start()
            assert agent.process.proc is not None
            pid, peak, started = agent.process.proc.pid, 0.0, time.monotonic()
            while central.scalar("SELECT COUNT(*) FROM events WHERE kind = 'pos.receipt'") < events:
                peak = max(peak, *sample(pid, 1.0))
                if time.monotonic() - started > 3600:
                    raise RuntimeError("the backlog did not drain within an hour")
            return peak, time.monotonic() - started
        finally:
            agent.stop()
            central.close()
            till.close()


def main(
    idle_seconds: float = 20.0,
    rate: float = 1000.0,
    busy_seconds: float = 20.0,
    backlogs: tuple[int, ...] = (100_000, 500_000),
) -> None:
    print(
        f"agent memory: idle {idle_seconds:.0f} s, then a till at {rate:.0f} lines/s for {busy_seconds:.0f} s",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        central = Central(workdir, f"sqlite:///{workdir / 'central.db'}")
        central.start()
        lines = busy_lines(int(rate * busy_seconds))
        till = Till(lines, rate=rate)
        agent = Agent(workdir, till.path)
        try:
            agent.enroll(central.url, central.enroll_token("S001"))
            agent.start()
            assert agent.process.proc is not None
            pid = agent.process.proc.pid
            time.sleep(3)  # imports and start-up settle
            idle = sample(pid, idle_seconds)
            busy: list[float] = []
            sampler = threading.Thread(target=lambda: busy.extend(sample(pid, busy_seconds + 5)))
            sampler.start()
            till.start()
            till.join(busy_seconds * 3)
            sampler.join()
            wait_until(
                lambda: central.scalar("SELECT COUNT(*) FROM events WHERE kind = 'pos.receipt'") >= len(lines),
                120,
                "the receipts to reach central",
            )
        finally:
            agent.stop()
            central.close()
            till.close()
    line("RSS idle (median / max)", f"{median(idle):.1f} MB / {max(idle):.1f} MB   target <= 60 MB")
    line(
        f"RSS ingesting {rate:.0f} lines/s (median / max)",
        f"{median(busy):.1f} MB / {max(busy):.1f} MB   target <= 60 MB",
    )
    peaks = []
    for events in backlogs:
        peak, seconds = drain_peak(events)
        peaks.append(peak)
        line(f"RSS draining a {events:,}-event backlog (max)", f"{peak:.1f} MB in {seconds:.0f} s   target <= 60 MB")
    if len(peaks) > 1:
        line("peak RSS, largest / smallest backlog", f"{peaks[-1] / peaks[0]:.2f}   target ~1")
