"""Offline endurance: a store that was offline long enough to queue 500,000 events drains them to
central, and the agent's memory does not grow with the backlog.

Central runs as its own process under waitress on a SQLite file. The outbox is filled by this
process; the drain runs in a separate agent process (bench/endurance_agent.py) that opens the
outbox and runs the production SyncJob over HTTP until the backlog is empty, then reports its
elapsed time, its CPU time and its peak resident set size (``ru_maxrss``, the whole process:
interpreter, libraries, SQLite's page cache and the batches). The same is done for a 100,000-event
backlog, so the two peaks can be compared.

Central ingests every batch with identity resolution, so on a shared 2-core machine the drain
rate is mostly central's; each side's cost is also printed as events per CPU-second of that
process (the agent's from its own rusage, central's from /proc/<pid>/stat around the drain).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import cpu_seconds, line, median, receipt_capture
from bench.endurance_agent import BATCH_SIZE
from edge_agent.enroll import enroll
from edge_agent.outbox import Outbox
from shared.crypto import Sealer, load_or_create_key
from tools.processes import Central


def fill(workdir: Path, store_id: str, events: int, cards: str = "random") -> None:
    outbox = Outbox(workdir / "outbox.db", Sealer(load_or_create_key(workdir / "outbox.key")), store_id)
    rng = random.Random(5)
    for first in range(0, events, 5000):
        outbox.append([receipt_capture(n, rng, cards=cards) for n in range(first, min(events, first + 5000))])
    outbox.close()


def drain_in_agent_process(workdir: Path, url: str) -> dict[str, float]:
    """Run the drain in a fresh process; its figures come back as one JSON line."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.endurance_agent", str(workdir), url],
        check=True,
        capture_output=True,
        text=True,
    )
    figures: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return figures


def run_once(workdir: Path, events: int, cards: str = "random") -> dict[str, float]:
    central = Central(workdir, f"sqlite:///{workdir}/central.db")
    central.start()
    try:
        creds = enroll(central.url, central.enroll_token("S001"), workdir / "credentials.json")
        fill(workdir, creds.store_id, events, cards)
        assert central.process.proc is not None
        central_before = cpu_seconds(central.process.proc.pid)
        figures = drain_in_agent_process(workdir, central.url)
        central_cpu = cpu_seconds(central.process.proc.pid) - central_before
        assert figures["delivered"] == events, figures
        assert central.scalar("SELECT COUNT(*) FROM events") == events
        return {
            "rate": events / figures["elapsed"],
            "agent_cpu_rate": events / figures["cpu"],
            "central_cpu_rate": events / central_cpu,
            "peak_mb": figures["peak_mb"],
        }
    finally:
        central.close()


def main(runs: int = 3, events: int = 500_000, small: int = 100_000, cards: str = "random") -> None:
    mix = "cards drawn at random beside phones" if cards == "random" else "each member with a card of their own"
    print(
        f"offline endurance: {small:,} and {events:,} queued events drained to central on SQLite by the"
        f" production SyncJob in an agent process, batches of {BATCH_SIZE}, {runs} runs (medians); {mix}",
        flush=True,
    )
    results: dict[int, list[dict[str, float]]] = {small: [], events: []}
    for _ in range(runs):
        for size in (small, events):
            with tempfile.TemporaryDirectory() as tmp:
                results[size].append(run_once(Path(tmp), size, cards))
            got = results[size][-1]
            line(
                f"run, {size:,} backlog",
                f"{got['rate']:,.0f} events/s ({got['agent_cpu_rate']:,.0f} per agent CPU-s,"
                f" {got['central_cpu_rate']:,.0f} per central CPU-s),"
                f" agent peak RSS {got['peak_mb']:.1f} MB, load {os.getloadavg()[0]:.1f}",
            )
    for size, got in results.items():
        rate = median([g["rate"] for g in got])
        peak = median([g["peak_mb"] for g in got])
        cpu_rate = median([g["agent_cpu_rate"] for g in got])
        central_rate = median([g["central_cpu_rate"] for g in got])
        line(
            f"{size:,} backlog (median)",
            f"{rate:,.0f} events/s ({cpu_rate:,.0f} per agent CPU-s, {central_rate:,.0f} per central CPU-s)"
            f"   agent peak RSS {peak:.1f} MB",
        )
    big = median([g["peak_mb"] for g in results[events]])
    little = median([g["peak_mb"] for g in results[small]])
    line("drain rate target", ">= 10,000 events/s on SQLite")
    line(f"peak RSS {events:,} / {small:,} backlog", f"{big / little:.2f}   target <= 60 MB at both, ratio ~1")


if __name__ == "__main__":
    main()
