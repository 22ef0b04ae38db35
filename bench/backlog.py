"""Agent memory against backlog size: peak Python memory while the outbox's backlog is read in pages
(as the sync job does) and while the quota sheds presence data from it. Flat means bounded pages."""

from __future__ import annotations

import logging
import random
import tempfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from bench.common import line, receipt_capture
from edge_agent.outbox import Capture, Outbox
from edge_agent.outbox_policy import OutboxHousekeeper, OutboxPolicy
from shared.crypto import Sealer, load_or_create_key


def peak_kib(fn: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] // 1024
    finally:
        tracemalloc.stop()


def measure(workdir: Path, rows: int) -> tuple[int, int]:
    outbox = Outbox(workdir / "outbox.db", Sealer(load_or_create_key(workdir / "outbox.key")), "S001")
    rng = random.Random(1)
    for start in range(0, rows, 2000):
        group = [receipt_capture(start + n, rng) for n in range(1000)]
        group += [
            Capture.of("presence.visit", {"zone": "entrance", "dwell_s": n}, group[0].observed_at) for n in range(1000)
        ]
        outbox.append(group)

    def read_all() -> None:
        after = 0
        while page := outbox.pending(500, after=after):
            after = page[-1].seq

    def shed_half() -> None:
        OutboxHousekeeper(outbox, OutboxPolicy(max_bytes=1024 * 1024)).enforce_size()

    read_all()
    result = peak_kib(read_all), peak_kib(shed_half)
    outbox.close()
    return result


def main(sizes: tuple[int, ...] = (10_000, 100_000, 400_000)) -> None:
    logging.disable(logging.WARNING)  # the shedding's own log lines are not the figures
    print("agent memory against backlog size (peak Python allocations, tracemalloc)", flush=True)
    for rows in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            reading, shedding = measure(Path(tmp), rows)
        line(f"{rows:,} rows: read in pages / shed presence", f"{reading:,} KiB / {shedding:,} KiB")
