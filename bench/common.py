"""Helpers shared by the benchmarks: realistic payloads and medians."""

from __future__ import annotations

import os
import random
import statistics
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from edge_agent.outbox import Capture


def receipt_capture(n: int, rng: random.Random, *, cards: str = "random") -> Capture:
    """A receipt event as the POS source would emit it (about 450 bytes of JSON).

    60 % name one of 4,000 member phones; 15 % also carry a member card. ``cards="random"`` picks
    the card from 3,000 at random, so each card meets about a hundred phones over a long backlog
    (a broken POS integration, or an attack: identity's over-merge guard flags and detaches those
    cards); ``cards="members"`` gives each member one card of their own, as an honest store does.
    """
    items = [
        {
            "sku": f"69{rng.randrange(10**11):011d}",
            "name": "农夫山泉 饮用天然水 550ml",
            "qty": "1",
            "unit_price": "2.00",
        }
        for _ in range(rng.randint(1, 4))
    ]
    total = f"{rng.randrange(1, 50000) / 100:.2f}"
    member = rng.randrange(4000) if rng.random() < 0.6 else None  # the same draws, in the same order, as ever
    payload = {
        "receipt_no": f"S001-261123-{n:07d}",
        "total": total,
        "currency": "CNY",
        "items": items,
        "member": {} if member is None else {"phone": f"139{member:08d}"},
        "format": "json",
        "paid_at": "2026-11-23T09:58:25",
        "payment": "wechat",
    }
    if rng.random() < 0.15:
        payload["member"]["card"] = f"VIP{_card(rng, cards, member):07d}"
    return Capture.of("pos.receipt", payload, "2026-11-23T01:58:25.000Z", source="pos", offset=n)


def _card(rng: random.Random, cards: str, member: int | None) -> int:
    if cards == "random":
        return rng.randrange(3000)
    return rng.randrange(4000) if member is None else member


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds a process on this machine has used so far, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def backends_cpu(pids: Iterable[int]) -> float:
    """CPU seconds these processes (a database's backends) have used so far together; one that has
    exited, or runs on another machine, counts nothing."""
    total = 0.0
    for pid in pids:
        try:
            total += cpu_seconds(pid)
        except OSError:
            continue
    return total


def median(values: list[float]) -> float:
    return statistics.median(values)


def line(label: str, value: str) -> None:
    print(f"  {label:<46} {value}", flush=True)


def default_registry() -> Any:
    """Central's identifier registry under the default settings."""
    from central.config_loader import load_config
    from central.identity.registry import load_registry

    return load_registry(load_config(None, environ={}))


def load_note() -> str:
    """The machine's load averages, printed beside figures taken on shared machines."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} CPUs"


T = TypeVar("T")


def timed(work: Callable[[], T]) -> tuple[float, T]:
    """Seconds ``work`` took on the wall clock, and what it returned."""
    start = time.perf_counter()
    result = work()
    return time.perf_counter() - start, result


def on_each_backend(
    backend: str, fill: Callable[[str, int], None], measure: Callable[[str, int], None], size: int, runs: int
) -> None:
    """For SQLite and/or PostgreSQL (``backend``: sqlite, postgresql or both): a migrated database, filled, measured."""
    import tempfile
    from pathlib import Path

    from central.migrate import upgrade
    from tools.databases import temporary_postgres_database

    if backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{Path(tmp) / 'central.db'}"
            upgrade(url)
            fill(url, size)
            print(" SQLite")
            measure(url, runs)
    if backend in ("postgresql", "both"):
        with temporary_postgres_database("cdp_bench") as url:
            upgrade(url)
            fill(url, size)
            print(" PostgreSQL")
            measure(url, runs)
