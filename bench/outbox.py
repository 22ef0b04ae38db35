"""Agent durable ingest: events/s from the writer thread into the sealed outbox, against raw sqlite3.

The baseline inserts blobs of the same size as the sealed rows, in transactions of the same size as
the writer's groups, with the same durability (WAL, synchronous=FULL): the ratio is the cost of
sealing, sequencing and bookkeeping on top of SQLite itself.
"""

from __future__ import annotations

import gc
import random
import sqlite3
import tempfile
import time
from pathlib import Path

from bench.common import line, median, receipt_capture
from edge_agent.outbox import Outbox
from edge_agent.writer import OutboxWriter
from shared.crypto import Sealer, load_or_create_key


def run_ours(workdir: Path, captures: list, *, live_producer: bool) -> tuple[float, int, int]:
    """Returns (events/s, commits, average sealed row size).

    With ``live_producer`` the records are put while the writer runs (the producer competes for the
    interpreter, as sources do); without it they are queued first and only the writer is timed.
    """
    outbox = Outbox(workdir / "outbox.db", Sealer(load_or_create_key(workdir / "outbox.key")), "S001")
    writer = OutboxWriter(outbox, commit_interval=0.2, max_group=2000)
    if live_producer:
        writer.start()
        start = time.perf_counter()
        for capture in captures:
            writer.put(capture)
    else:
        for capture in captures:
            writer.put(capture)
        start = time.perf_counter()
        writer.start()
    writer.stop(timeout=600)  # returns once everything queued is committed; no polling thread
    elapsed = time.perf_counter() - start
    assert writer.committed == len(captures)
    conn = sqlite3.connect(workdir / "outbox.db")
    size = conn.execute("SELECT AVG(LENGTH(sealed)) FROM events").fetchone()[0]
    conn.close()
    return len(captures) / elapsed, writer.commits, int(size)


def run_baseline(workdir: Path, count: int, group: int, size: int) -> float:
    conn = sqlite3.connect(workdir / "baseline.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (seq INTEGER PRIMARY KEY, event_id TEXT, body BLOB)")
    rng = random.Random(7)
    blobs = [rng.randbytes(size) for _ in range(64)]
    rows = [(n, f"{n:036d}", blobs[n % 64]) for n in range(count)]
    start = time.perf_counter()
    for first in range(0, count, group):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO t VALUES (?, ?, ?)", rows[first : first + group])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return count / elapsed


def main(runs: int = 5, events: int = 100_000) -> None:
    print(f"agent durable ingest: {events} receipt events, {runs} runs (medians)", flush=True)
    rng = random.Random(1)
    captures = [receipt_capture(n, rng) for n in range(events)]
    gc.freeze()  # the 100k prepared payloads are setup, not agent state: keep them out of GC passes
    ours, live, base, ratios = [], [], [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            rate, commits, size = run_ours(Path(tmp) / "a", captures, live_producer=False)
            group = max(1, round(events / commits))
            baseline = run_baseline(Path(tmp), events, group, size)
        with tempfile.TemporaryDirectory() as tmp:
            live_rate, _, _ = run_ours(Path(tmp), captures, live_producer=True)
        ours.append(rate)
        live.append(live_rate)
        base.append(baseline)
        ratios.append(rate / baseline)
        line("run", f"writer {rate:,.0f}/s  with live producer {live_rate:,.0f}/s  raw sqlite3 {baseline:,.0f}/s")
    line("writer thread into sealed outbox (median)", f"{median(ours):,.0f} events/s   target >= 20,000")
    line("same, producer putting concurrently (median)", f"{median(live):,.0f} events/s")
    line(f"raw sqlite3 baseline, {size} B blobs x {group} (median)", f"{median(base):,.0f} events/s")
    line("ratio writer / baseline (median)", f"{median(ratios):.2f}   target >= 0.5")
