"""Sync drain: events/s for an agent's 200,000-event backlog sent to central over loopback.

Central runs as its own process under waitress (SQLite file, then PostgreSQL); the agent's
outbox is filled first, then one sync run drains it through HTTP with the production SyncJob.
"""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path

from bench.common import line, median, receipt_capture
from edge_agent.enroll import enroll
from edge_agent.outbox import Outbox
from edge_agent.sync import SyncJob
from edge_agent.transport import HttpTransport
from shared.crypto import RequestSigner, Sealer, load_or_create_key
from tools.databases import temporary_postgres_database
from tools.processes import Central


def drain_once(workdir: Path, database_url: str, events: int, batch_size: int) -> float:
    central = Central(workdir, database_url)
    central.start()
    try:
        creds = enroll(central.url, central.enroll_token("S001"), workdir / "credentials.json")
        outbox = Outbox(workdir / "outbox.db", Sealer(load_or_create_key(workdir / "outbox.key")), creds.store_id)
        rng = random.Random(3)
        for first in range(0, events, 5000):
            outbox.append([receipt_capture(n, rng) for n in range(first, min(events, first + 5000))])
        job = SyncJob(
            outbox,
            HttpTransport(central.url),
            RequestSigner(creds.device_id, creds.private_key),
            batch_size=batch_size,
        )
        start = time.perf_counter()
        job.run()
        elapsed = time.perf_counter() - start
        stats = outbox.stats()
        assert stats.pending == 0 and stats.delivered == events, stats
        assert central.scalar("SELECT COUNT(*) FROM events") == events
        outbox.close()
        return events / elapsed
    finally:
        central.close()


def main(runs: int = 3, events: int = 200_000, backend: str = "both", batch_size: int = 500) -> None:
    print(f"sync drain: {events} events over loopback, batches of {batch_size}, {runs} runs (medians)", flush=True)
    backends = ["sqlite", "postgresql"] if backend == "both" else [backend]
    for name in backends:
        rates = []
        for _ in range(runs):
            with tempfile.TemporaryDirectory() as tmp:
                if name == "sqlite":
                    rates.append(drain_once(Path(tmp), f"sqlite:///{tmp}/central.db", events, batch_size))
                else:
                    with temporary_postgres_database("cdp_bench") as url:
                        rates.append(drain_once(Path(tmp), url, events, batch_size))
            line(f"run on {name}", f"{rates[-1]:,.0f} events/s")
        line(f"drain to central on {name} (median)", f"{median(rates):,.0f} events/s   target >= 5,000")
