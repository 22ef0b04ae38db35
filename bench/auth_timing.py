"""Authentication failure timing: an unknown device against a known device with a bad signature.

Central runs as its own process under waitress on SQLite; both kinds of refused request are sent
in random order over one keep-alive connection, and the medians of their round trips are printed. The
two must not differ by more than the noise: a difference would tell a prober which devices exist.
"""

from __future__ import annotations

import gzip
import random
import statistics
import tempfile
import time
from pathlib import Path

import requests

from bench.common import line
from edge_agent.enroll import enroll
from shared import wire
from shared.crypto import RequestSigner, new_signing_key
from tools.processes import Central

BATCHES = "/api/v1/batches"


def main(tries: int = 2000) -> None:
    print(f"auth timing: {tries} refused requests of each kind over loopback (SQLite), medians", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        central = Central(workdir, f"sqlite:///{tmp}/central.db")
        central.start()
        try:
            creds = enroll(central.url, central.enroll_token("S001"), workdir / "credentials.json")
            wrong_key, _ = new_signing_key()
            kinds = {
                "unknown device": RequestSigner("dev_00000000000000ff", wrong_key),
                "known device, bad signature": RequestSigner(creds.device_id, wrong_key),
            }
            body = gzip.compress(b'{"schema":1}')
            times: dict[str, list[float]] = {name: [] for name in kinds}
            with requests.Session() as session:
                order = [name for name in kinds for _ in range(tries + 100)]
                random.Random(7).shuffle(order)  # interleaved at random, so drift and ordering hit both alike
                warm = dict.fromkeys(kinds, 0)
                for name in order:
                    signer = kinds[name]
                    headers = signer.headers("POST", BATCHES, wire.timestamp(), body)
                    headers["Content-Encoding"] = "gzip"
                    start = time.perf_counter()
                    response = session.post(central.url + BATCHES, data=body, headers=headers, timeout=10)
                    elapsed = time.perf_counter() - start
                    assert response.status_code == 401, response.text
                    warm[name] += 1
                    if warm[name] > 100:  # the first 100 of each warm up the connection and the server
                        times[name].append(elapsed)
        finally:
            central.close()
    medians = {name: statistics.median(values) * 1000 for name, values in times.items()}
    for name, value in medians.items():
        line(f"{name}: median", f"{value:.3f} ms")
    a, b = medians.values()
    line("difference", f"{abs(a - b):.3f} ms ({abs(a - b) / max(a, b) * 100:.1f} %)")


if __name__ == "__main__":
    main()
