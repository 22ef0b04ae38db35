"""Event-pair precision and recall of identity resolution against a chain's ground truth.

Two events are a true pair when the same person is behind both, a predicted pair when they ended
up with the same customer. With n(c, p) the events of cluster c and person p:

    true positives  = sum over (c, p) of C(n(c, p), 2)
    predicted pairs = sum over c of C(n(c), 2)        precision = TP / predicted pairs
    true pairs      = sum over p of C(n(p), 2)        recall    = TP / true pairs

computed from these contingency counts, never by listing pairs. An event linked to no customer is
a cluster of its own. Beside our figure, the naive baseline: union-find over the same events,
merging any two that share a value of any identifier type (phones normalized, nothing blocked,
nothing scoped), as the simple platforms do.

``python -m bench.identity_score --customers N [--database-url URL]`` writes a chain, loads it
with ``load-events`` and prints both.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from central.identity.models import EventCustomer
from central.identity.registry import Registry
from central.ingest.models import Event
from central.sources.backfill import LoadSummary
from central.sources.survivors import survivors
from shared.identifiers import normalize_phone

SOURCE = "chain"


@dataclass(frozen=True)
class Scores:
    """Pair counts and the two ratios."""

    events: int
    true_pairs: int
    predicted_pairs: int
    true_positives: int

    @property
    def precision(self) -> float:
        return self.true_positives / self.predicted_pairs if self.predicted_pairs else 1.0

    @property
    def recall(self) -> float:
        return self.true_positives / self.true_pairs if self.true_pairs else 1.0


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def pair_scores(clusters: Mapping[str, object], truth: Mapping[str, str]) -> Scores:
    """Scores of ``clusters`` (event -> cluster; missing events are singletons) against ``truth``."""
    cells: Counter[tuple[object, str]] = Counter()
    sizes: Counter[object] = Counter()
    people: Counter[str] = Counter()
    for event, person in truth.items():
        cluster = clusters.get(event)
        key = ("single", event) if cluster is None else cluster
        cells[(key, person)] += 1
        sizes[key] += 1
        people[person] += 1
    return Scores(
        events=len(truth),
        true_pairs=sum(_pairs(n) for n in people.values()),
        predicted_pairs=sum(_pairs(n) for n in sizes.values()),
        true_positives=sum(_pairs(n) for n in cells.values()),
    )


def read_truth(path: Path) -> dict[str, str]:
    """event_id -> person, from truth.csv."""
    with path.open(newline="") as stream:
        return {row["event_id"]: row["person"] for row in csv.DictReader(stream)}


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, x: int) -> int:
        root = x
        while (up := self.parent.get(root, root)) != root:
            root = up
        while x != root:
            self.parent[x], x = root, self.parent.get(x, x)
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _naive_value(kind: str, value: str) -> str:
    if kind == "phone":
        return normalize_phone(value) or value.strip()
    return value.strip().lower()


def naive_clusters(lines: Iterable[bytes]) -> dict[str, int]:
    """event_id -> cluster when any shared identifier value merges (the baseline)."""
    groups = _UnionFind()
    first_with: dict[tuple[str, str], int] = {}
    ids: list[str] = []
    for number, line in enumerate(lines):
        event = orjson.loads(line)
        ids.append(event["event_id"])
        for kind, value in (event.get("identifiers") or {}).items():
            key = (kind, _naive_value(kind, value))
            if key in first_with:
                groups.union(number, first_with[key])
            else:
                first_with[key] = number
    return {event_id: groups.find(n) for n, event_id in enumerate(ids)}


def our_clusters(engine: Engine, source: str = SOURCE, page: int = 50_000) -> dict[str, int]:
    """event_id -> the live customer its stored event belongs to (unlinked events are left out)."""
    clusters: dict[str, int] = {}
    with Session(engine) as db:
        last = 0
        while True:
            rows = db.execute(
                select(Event.id, Event.event_id, EventCustomer.customer_id)
                .join(EventCustomer, EventCustomer.event_pk == Event.id)
                .where(Event.device_id == f"source:{source}", Event.id > last)
                .order_by(Event.id)
                .limit(page)
            ).all()
            if not rows:
                return clusters
            live = survivors(db.connection(), [r.customer_id for r in rows])
            for r in rows:
                clusters[r.event_id] = live.get(r.customer_id, r.customer_id)
            last = rows[-1].id


def chain_registry(out_dir: Path) -> Registry:
    """The registry a chain configures: the retail defaults plus its stores' staff phones.

    The staff list is configuration every chain keeps (``blocked.staff_phones``); a staff phone
    typed alone at the till, with nothing else to meet, cannot be told from a loyal customer's.
    """
    from central.identity.registry import parse_registry

    path = out_dir / "staff_phones.txt"
    phones = [p for p in path.read_text().split() if p] if path.exists() else []
    return parse_registry("[blocked]\nstaff_phones = " + orjson.dumps(phones).decode() + "\n", str(path))


def load_chain(
    engine: Engine, events_path: Path, *, chunk_size: int = 2000, registry: Registry | None = None
) -> tuple[LoadSummary, float]:
    """Load the chain's events through load-events' code path; return its summary and the seconds it took."""
    from central.sources.backfill import load_events

    started = time.perf_counter()
    with Session(engine) as db:
        summary = load_events(
            db,
            events_path,
            SOURCE,
            registry=registry or chain_registry(events_path.parent),
            clock=lambda: datetime.now(UTC),
            chunk_size=chunk_size,
        )
    return summary, time.perf_counter() - started


def report(label: str, scores: Scores) -> None:
    print(f"  {label:<34} precision {scores.precision:.5f}   recall {scores.recall:.5f}", flush=True)


def main(customers: int = 20_000, database_url: str | None = None, seed: int = 1) -> None:
    """Write a chain, load it, print our precision and recall and the naive baseline's."""
    from bench.chain import write_chain
    from central.db import make_engine
    from central.migrate import upgrade

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        started = time.perf_counter()
        counts = write_chain(out, customers, seed=seed)
        print(
            f"identity score: chain of {counts['people']:,} people, {counts['events']:,} events "
            f"(written in {time.perf_counter() - started:.0f} s)",
            flush=True,
        )
        print("  " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if k not in ("people", "events")))
        url = database_url or f"sqlite:///{tmp}/central.db"
        upgrade(url)
        engine = make_engine(url)
        try:
            loaded, seconds = load_chain(engine, out / "events.jsonl")
            print(f"  loaded with load-events in {seconds:.0f} s ({counts['events'] / seconds:,.0f} events/s)")
            if loaded.rejected_total:
                raise SystemExit(f"the chain has events load-events rejects: {dict(loaded.rejected)}")
            truth = read_truth(out / "truth.csv")
            ours = pair_scores(our_clusters(engine), truth)
        finally:
            engine.dispose()
        with (out / "events.jsonl").open("rb") as lines:
            naive = pair_scores(naive_clusters(lines), truth)
    print(f"  true pairs {ours.true_pairs:,}")
    report("our resolution", ours)
    report("naive: merge on any shared value", naive)
    print("  targets: precision >= 0.999, recall >= 0.98")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.identity_score")
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--database-url", help="an empty database to load into (default: a temporary SQLite file)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    main(args.customers, args.database_url, args.seed)
