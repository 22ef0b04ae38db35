"""Presence engine: sightings per second on one core, and memory with 10,000 devices in view.

Throughput feeds pre-pseudonymized sightings (3 readers, about 1,000 a second from a crowd that drifts
through, a third of them visitors) to the production ``PresenceEngine`` and reports the median of several runs; it also
times the pseudonymizer and the radiotap/802.11 parser per frame, and adds the three up into the
CPU one core spends at 500 sightings/s on the capture path. Memory runs in a fresh process per
run: VmRSS after imports (idle), then after 10,000 distinct devices have each been heard by three
readers. Targets: at least 50,000 sightings/s; at most 40 MB above idle.

    python -m bench.presence [--runs 5] [--sightings 300000]
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

from bench.common import line, median
from edge_agent.parsing.wifi import decode_packet
from edge_agent.presence.calendar import StoreCalendar
from edge_agent.presence.engine import EngineSettings, PresenceEngine, Sighting
from edge_agent.presence.pseudonyms import Pseudonymizer

TZ = ZoneInfo("Asia/Shanghai")
START = 1_795_400_000.0  # a weekday morning in November 2026
READERS = ("entrance", "aisles", "checkout")
PLACEMENTS = {name: name for name in READERS}
# A probe request as an Intel card captures it (radiotap with two antenna namespaces).
FRAME = bytes.fromhex(
    "000018002e4000a02008000000026c09a000cd000000cd00"
    "40000000ffffffffffff645d8675c128ffffffffffffc0190000010802040b160c12182432043048606c"
)


def device_key(n: int) -> bytes:
    return hashlib.blake2b(n.to_bytes(8, "big"), digest_size=16).digest()


def busy_floor(count: int, in_view: int, seed: int) -> list[Sighting]:
    """``count`` sightings, one a millisecond or so, of a rotating crowd of ``in_view`` devices."""
    rng = random.Random(seed)
    out = []
    at = START
    for i in range(count):
        at += rng.expovariate(1000.0)
        n = i // 100 + rng.randrange(in_view)  # the crowd drifts: old devices leave, new ones come
        visitor = n % 3 == 0
        level = -60.0 if visitor else -80.0
        out.append(Sighting(at, device_key(n), n % 4 == 0, READERS[i % 3], level + rng.gauss(0.0, 4.0)))
    return out


def engine() -> PresenceEngine:
    return PresenceEngine(EngineSettings(placements=PLACEMENTS), StoreCalendar(TZ), clock=lambda: START)


def throughput(runs: int, count: int) -> list[float]:
    rates = []
    for run in range(runs):
        sightings = busy_floor(count, 2_000, seed=run)
        target = engine()
        gc.collect()
        began = time.process_time()
        target.observe_many(sightings)
        spent = time.process_time() - began
        rates.append(count / spent)
        line(f"run {run + 1}", f"{count / spent:,.0f} sightings/s  ({target.devices_in_view:,} devices in view)")
    return rates


def per_call(fn: object, repeat: int) -> float:
    """Seconds per call of a zero-argument function, best of three batches."""
    best = float("inf")
    for _ in range(3):
        began = time.process_time()
        for _ in range(repeat):
            fn()  # type: ignore[operator]
        best = min(best, (time.process_time() - began) / repeat)
    return best


def memory_child(devices: int) -> None:
    """Run in a fresh interpreter: print idle and loaded RSS in MB as JSON."""

    def rss() -> float:
        for row in Path("/proc/self/status").read_text().splitlines():
            if row.startswith("VmRSS:"):
                return int(row.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def stream() -> Iterator[Sighting]:
        rng = random.Random(7)
        at = START
        for n in range(devices):
            key = device_key(n)
            for reader in READERS:
                at += 0.001
                yield Sighting(at, key, n % 4 == 0, reader, (-60.0 if n % 3 == 0 else -80.0) + rng.gauss(0, 3))

    target = engine()
    gc.collect()
    idle = rss()
    target.observe_many(stream())
    gc.collect()
    loaded = rss()
    assert target.devices_in_view == devices
    print(json.dumps({"idle": idle, "loaded": loaded}))


def memory(runs: int, devices: int) -> list[tuple[float, float]]:
    out = []
    for run in range(runs):
        result = subprocess.run(
            [sys.executable, "-m", "bench.presence", "--memory-child", str(devices)],
            check=True,
            capture_output=True,
            text=True,
        )
        figures = json.loads(result.stdout)
        out.append((figures["idle"], figures["loaded"]))
        line(f"run {run + 1}", f"idle {figures['idle']:.1f} MB, with {devices:,} devices {figures['loaded']:.1f} MB")
    return out


def main(runs: int = 5, sightings: int = 300_000) -> None:
    """Print the presence figures."""
    print(f"presence engine: {sightings:,} sightings a run, {runs} runs, one core", flush=True)
    rates = throughput(runs, sightings)
    line("engine sightings/s (median)", f"{median(rates):,.0f}   target >= 50,000")
    pseudonyms = Pseudonymizer(b"bench presence secret, 32 bytes!", StoreCalendar(TZ))
    hash_s = per_call(lambda: pseudonyms.device("64:5d:86:75:c1:28", START), 50_000)
    parse_s = per_call(lambda: decode_packet(127, FRAME), 50_000)
    engine_s = 1 / median(rates)
    line("radiotap + 802.11 parse per frame", f"{parse_s * 1e6:.1f} µs")
    line("pseudonym per address", f"{hash_s * 1e6:.1f} µs")
    line("engine per sighting", f"{engine_s * 1e6:.1f} µs")
    share = 500 * (parse_s + hash_s + engine_s) * 100
    line("CPU at 500 sightings/s (parse+hash+engine)", f"{share:.2f} % of one core   target <= 10 % (whole agent)")
    print("presence memory: 10,000 distinct devices in view, fresh process per run", flush=True)
    figures = memory(runs, 10_000)
    above = [loaded - idle for idle, loaded in figures]
    line("RSS above idle (median)", f"{median(above):.1f} MB   target <= 40 MB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="bench.presence")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sightings", type=int, default=300_000)
    parser.add_argument("--memory-child", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child)
    else:
        main(args.runs, args.sightings)
