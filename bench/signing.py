"""Signing overhead: what authenticating a batch costs against the whole time a batch takes to sync.

A backlog of receipts is drained to central (its own process under waitress, SQLite) by the
production SyncJob over loopback; the whole sync time per batch is the drain's elapsed time over
its number of batches. The batches themselves are then rebuilt as the sync job builds them (the
sealed bodies spliced into a batch, gzip level 3) and timed on their own: the agent's signature
(SHA-256 of the body and Ed25519 over the request message, ``RequestSigner.headers``) and
central's check of it (``verify_request``: SHA-256 again and Ed25519 verification). The fraction is
(sign + verify) / whole sync time per batch.
"""

from __future__ import annotations

import gzip
import math
import random
import tempfile
import time
from pathlib import Path

from bench.common import line, median, receipt_capture
from edge_agent.enroll import enroll
from edge_agent.outbox import Outbox
from edge_agent.sync import BATCHES_PATH, SyncJob
from edge_agent.transport import HttpTransport
from shared.crypto import HEADER_NONCE, HEADER_SIGNATURE, RequestSigner, Sealer, load_or_create_key, verify_request
from shared.wire import encode_batch_of, encode_event
from tools.processes import Central

BATCH_SIZE = 500


def batch_bodies(outbox: Outbox, device_id: str) -> list[bytes]:
    """The gzipped batch bodies of the outbox's pending rows, built as the sync job builds them."""
    bodies = []
    after = 0
    while page := outbox.pending(BATCH_SIZE, after=after):
        events = [encode_event(p.event_id, p.seq, p.kind, p.body) for p in page if p.body is not None]
        raw = encode_batch_of(device_id, f"b{after}", "2026-11-30T12:00:00.000Z", events)
        bodies.append(gzip.compress(raw, compresslevel=3))
        after = page[-1].seq
    return bodies


def time_each(fn, items: list) -> float:  # type: ignore[no-untyped-def]
    """Median seconds of ``fn(item)`` over the items."""
    times = []
    for item in items:
        start = time.perf_counter()
        fn(item)
        times.append(time.perf_counter() - start)
    return median(times)


def run_once(workdir: Path, events: int) -> tuple[float, float, float]:
    """(sync seconds per batch, sign seconds per batch, verify seconds per batch)."""
    central = Central(workdir, f"sqlite:///{workdir}/central.db")
    central.start()
    try:
        creds = enroll(central.url, central.enroll_token("S001"), workdir / "credentials.json")
        outbox = Outbox(workdir / "outbox.db", Sealer(load_or_create_key(workdir / "outbox.key")), creds.store_id)
        rng = random.Random(9)
        for first in range(0, events, 5000):
            outbox.append([receipt_capture(n, rng) for n in range(first, min(events, first + 5000))])
        bodies = batch_bodies(outbox, creds.device_id)
        signer = RequestSigner(creds.device_id, creds.private_key)
        job = SyncJob(outbox, HttpTransport(central.url), signer, batch_size=BATCH_SIZE)
        start = time.perf_counter()
        job.run()
        elapsed = time.perf_counter() - start
        assert outbox.stats().delivered == events
        batches = math.ceil(events / BATCH_SIZE)
        outbox.close()
    finally:
        central.close()
    stamp = "2026-11-30T12:00:00.000Z"
    signed = [(body, signer.headers("POST", BATCHES_PATH, stamp, body)) for body in bodies]
    sign = time_each(lambda body: signer.headers("POST", BATCHES_PATH, stamp, body), bodies)

    def check(item: tuple[bytes, dict[str, str]]) -> None:
        body, headers = item
        assert verify_request(
            signer.public_key,
            "POST",
            BATCHES_PATH,
            creds.device_id,
            stamp,
            body,
            headers[HEADER_SIGNATURE],
            nonce=headers[HEADER_NONCE],
        )

    verify = time_each(check, signed)
    return elapsed / batches, sign, verify


def main(runs: int = 3, events: int = 50_000) -> None:
    print(
        f"signing overhead: {events:,} receipts in batches of {BATCH_SIZE}, drained to central on SQLite,"
        f" {runs} runs (medians)",
        flush=True,
    )
    per_batch, signs, verifies, fractions = [], [], [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            whole, sign, verify = run_once(Path(tmp), events)
        per_batch.append(whole)
        signs.append(sign)
        verifies.append(verify)
        fractions.append((sign + verify) / whole)
        line("run", f"batch {whole * 1e3:.1f} ms, sign {sign * 1e6:.0f} us, verify {verify * 1e6:.0f} us")
    line("whole sync time per batch (median)", f"{median(per_batch) * 1e3:.1f} ms")
    line("agent signature per batch (median)", f"{median(signs) * 1e6:.0f} us")
    line("central verification per batch (median)", f"{median(verifies) * 1e6:.0f} us")
    line("sign + verify / whole sync time (median)", f"{median(fractions) * 100:.2f} %")
