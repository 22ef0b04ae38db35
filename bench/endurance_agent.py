"""The agent process of the endurance benchmark: `python -m bench.endurance_agent WORKDIR URL`.

It imports only what the agent's sync path imports (no central, no SQLAlchemy), opens the outbox
the parent filled and drains it to central with the production SyncJob, then prints one JSON line:
elapsed seconds, events delivered, its CPU seconds and its peak resident set size.

The peak is the kernel's high-water mark of this process's memory map (``VmHWM``), not
``ru_maxrss``: after fork and exec, ``ru_maxrss`` still carries the parent's size (here the
benchmark that filled the outbox), which would be measured instead of the agent.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

from edge_agent.credentials import Credentials
from edge_agent.outbox import Outbox
from edge_agent.sync import SyncJob
from edge_agent.transport import HttpTransport
from shared.crypto import RequestSigner, Sealer, load_or_create_key

BATCH_SIZE = 2000  # the agent's default sync.batch_size


def drain(workdir: Path, url: str) -> dict[str, float]:
    creds = Credentials.load(workdir / "credentials.json")
    outbox = Outbox(workdir / "outbox.db", Sealer(load_or_create_key(workdir / "outbox.key")), creds.store_id)
    job = SyncJob(outbox, HttpTransport(url), RequestSigner(creds.device_id, creds.private_key), batch_size=BATCH_SIZE)
    start = time.perf_counter()
    while outbox.stats().pending:
        job.run()
    elapsed = time.perf_counter() - start
    delivered = outbox.stats().delivered
    outbox.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"elapsed": elapsed, "delivered": delivered, "cpu": usage.ru_utime + usage.ru_stime, "peak_mb": peak_mb()}


def peak_mb() -> float:
    """This process's peak resident set size in MB (10^6 bytes), from /proc/self/status."""
    for row in Path("/proc/self/status").read_text().splitlines():
        if row.startswith("VmHWM:"):
            return int(row.split()[1]) * 1024 / 1e6
    raise RuntimeError("no VmHWM in /proc/self/status")


if __name__ == "__main__":
    print(json.dumps(drain(Path(sys.argv[1]), sys.argv[2])))
