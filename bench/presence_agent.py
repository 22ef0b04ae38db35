"""Whole-agent CPU at 500 sightings a second: the real `edge-agent run` reading probe requests from a FIFO.

A capture tool's stand-in writes a pcapng into the FIFO the agent's Wi-Fi source reads (the same
path a monitor socket feeds): 500 probe requests a second from a crowd of 400 phones, three
readers. The agent's own CPU time (utime + stime from /proc/<pid>/stat) is measured over the same
span idle (FIFO open, nothing sent: the baseline) and busy; the figure is the busy share of one core,
parse, pseudonyms, engine, writer, outbox and sync to a local central included. Target: at most 10 %.

    python -m bench presence_agent [--runs 3]
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from pathlib import Path

from sqlalchemy.orm import Session

from bench.common import cpu_seconds, line, median
from central.fleet.enrollment import issue_token
from tools.processes import Agent, Central, Till, wait_until
from tools.store_floor import READERS, RawSighting, pcapng_header, pcapng_packet

RATE = 500
SPAN = 20.0


def _pieces(rng: random.Random, start: float, count: int) -> list[bytes]:
    """The capture as the tool writes it: the header, then one packet block per sighting."""
    phones = [
        ":".join(f"{b:02x}" for b in [rng.randrange(256) & 0xFC, *(rng.randrange(256) for _ in range(5))])
        for _ in range(400)
    ]
    readers = list(READERS)
    sightings = (
        RawSighting(start + n / RATE, rng.choice(phones), readers[n % 3], float(rng.randint(-85, -50)))
        for n in range(count)
    )
    return [pcapng_header(), *(pcapng_packet(s, n) for n, s in enumerate(sightings))]


def run_once(run: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="bench-presence-") as tmp:
        root = Path(tmp)
        central = Central(root, f"sqlite:///{root / 'central.db'}")
        central.start()
        fifo = root / "probes.fifo"
        os.mkfifo(fifo)
        till = Till([], rate=1.0)
        agent = Agent(root, till.path, presence_settings=f'wifi = "{fifo}"\ntimezone = "Asia/Shanghai"')
        try:
            with Session(central.engine) as db:
                token = issue_token(db, "S001", 1.0)
                db.commit()
            agent.enroll(central.url, token)
            agent.start()
            assert agent.process.proc is not None
            pid = agent.process.proc.pid
            pieces = _pieces(random.Random(run), time.time() + 5 + SPAN, int(RATE * SPAN))
            with open(fifo, "wb", buffering=0) as writer:
                writer.write(pieces[0])
                time.sleep(3.0)  # start-up over
                before = cpu_seconds(pid)
                time.sleep(SPAN)
                idle = (cpu_seconds(pid) - before) / SPAN
                began = time.monotonic()
                before = cpu_seconds(pid)
                for n, piece in enumerate(pieces[1:], 1):
                    writer.write(piece)
                    delay = began + n / RATE - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                busy = (cpu_seconds(pid) - before) / (time.monotonic() - began)
            wait_until(lambda: agent.process.proc is not None and agent.process.proc.poll() is None, 5, "the agent")
        finally:
            agent.stop()
            till.close()
            central.close()
    line(f"run {run + 1}", f"idle {idle * 100:.2f} %, at {RATE} sightings/s {busy * 100:.2f} % of one core")
    return idle, busy


def main(runs: int = 3) -> None:
    """Print the agent's CPU share at 500 sightings/s, against its idle share in the same run."""
    print(f"presence agent: {RATE} probe requests/s through a FIFO for {SPAN:.0f} s, {runs} runs", flush=True)
    figures = [run_once(run) for run in range(runs)]
    idle = median([i for i, _ in figures])
    busy = median([b for _, b in figures])
    line("agent CPU idle (median)", f"{idle * 100:.2f} % of one core")
    line(f"agent CPU at {RATE} sightings/s (median)", f"{busy * 100:.2f} % of one core   target <= 10 %")
    line("busy / idle", f"{busy / idle:.1f}x" if idle else "idle was 0")


if __name__ == "__main__":
    main()
