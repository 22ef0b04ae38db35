"""Ingest with identity resolution: events/s for the generated chain, and whether it holds up with size.

Two paths, each on SQLite and on PostgreSQL, into a fresh database:

* ``load-events``: the chain's whole event file loaded in this process through the same code as
  ``central-server load-events`` (chunks of 5,000 events, each stored, resolved and committed).
* the agents' batch endpoint: central under waitress; one enrolled agent per store posts that
  store's receipts (members by phone or card, as tills send them) in signed, gzipped batches of 500
  over loopback.

Each prints the overall rate and the rate over the first and the last 10 % of the events, which
shows whether ingest slows down as the graph grows. ``--events 1000000`` gives the full figure.
"""

from __future__ import annotations

import gzip
import itertools
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import requests
from sqlalchemy.orm import Session

from bench.chain import write_chain
from bench.common import cpu_seconds, default_registry, line, load_note
from central.db import make_engine
from central.migrate import upgrade
from central.sources.backfill import LoadSummary, load_events
from edge_agent.enroll import enroll
from shared import wire
from shared.crypto import RequestSigner
from shared.ids import UUID7
from tools.databases import temporary_postgres_database
from tools.processes import Central

BATCH = 500
EVENTS_PER_PERSON = 9.6  # what the chain generator averages


def _edges(marks: list[tuple[float, int]]) -> tuple[float, float, float]:
    """Overall rate and the rates over the first and the last 10 % of events, from (time, events done) marks."""
    total = marks[-1][1]
    start = marks[0][0]

    def at(events: float) -> float:
        for (t0, n0), (t1, n1) in itertools.pairwise(marks):
            if n1 >= events:
                return t0 + (t1 - t0) * ((events - n0) / (n1 - n0) if n1 > n0 else 0.0)
        return marks[-1][0]

    tenth = total / 10
    first = tenth / (at(tenth) - start)
    last = tenth / (marks[-1][0] - at(total - tenth))
    return total / (marks[-1][0] - start), first, last


def via_load_events(url: str, events_path: Path) -> tuple[float, float, float]:
    upgrade(url)
    engine = make_engine(url)
    marks: list[tuple[float, int]] = [(time.perf_counter(), 0)]

    def chunk(summary: LoadSummary) -> None:
        marks.append((time.perf_counter(), summary.lines))

    cpu = time.process_time()

    try:
        with Session(engine) as db:
            summary = load_events(
                db, events_path, "chain", registry=default_registry(), clock=lambda: datetime.now(UTC), on_chunk=chunk
            )
        assert summary.rejected_total == 0, summary.rejected
        cpu = time.process_time() - cpu
        # On a shared machine wall time depends on the neighbours; this process's CPU time does not.
        line("", f"{summary.accepted / cpu:,.0f} events per CPU-second of this process (database work included)")
    finally:
        engine.dispose()
    return _edges(marks)


def _receipts(events_path: Path) -> Iterator[tuple[str, dict[str, object]]]:
    """(store, event fields) of every receipt in the chain, the member moved into the payload as tills send it."""
    with events_path.open("rb") as lines:
        for raw in lines:
            event = orjson.loads(raw)
            if event["kind"] != "pos.receipt":
                continue
            ids = event.get("identifiers", {})
            member = {k: v for k, v in (("phone", ids.get("phone")), ("card", ids.get("member_card"))) if v}
            payload = {**event["payload"], "items": [], "member": member}
            yield event["store_id"], {"observed_at": event["observed_at"], "payload": payload}


def via_batches(url: str, events_path: Path, workdir: Path) -> tuple[float, float, float]:
    central = Central(workdir, url)
    central.start()
    try:
        agents: dict[str, tuple[RequestSigner, list[bytes]]] = {}
        new_id = UUID7()
        pending: list[tuple[str, list[dict[str, object]]]] = []
        by_store: dict[str, list[dict[str, object]]] = {}
        for store, fields in _receipts(events_path):
            if store not in agents:
                creds = enroll(central.url, central.enroll_token(store), workdir / f"{store}.json")
                agents[store] = (RequestSigner(creds.device_id, creds.private_key), [])
            batch = by_store.setdefault(store, [])
            batch.append(fields)
            if len(batch) == BATCH:
                pending.append((store, by_store.pop(store)))
        pending.extend(by_store.items())
        http = requests.Session()
        assert central.process.proc is not None
        central_cpu = cpu_seconds(central.process.proc.pid)
        marks: list[tuple[float, int]] = [(time.perf_counter(), 0)]
        seqs = dict.fromkeys(agents, 0)
        done = 0
        for store, fields_list in pending:
            signer = agents[store][0]
            events = []
            for fields in fields_list:
                seqs[store] += 1
                events.append(
                    wire.Event(
                        new_id(), seqs[store], "pos.receipt", str(fields["observed_at"]), store, fields["payload"]
                    )
                )  # type: ignore[arg-type]
            body = gzip.compress(
                wire.encode_batch(wire.Batch(signer.device_id, new_id(), wire.timestamp(), tuple(events))), 1
            )
            headers = signer.headers("POST", "/api/v1/batches", wire.timestamp(), body)
            headers.update({"Content-Type": "application/json", "Content-Encoding": "gzip"})
            reply = http.post(central.url + "/api/v1/batches", data=body, headers=headers, timeout=120)
            assert reply.status_code == 200, reply.text
            assert len(reply.json()["accepted"]) == len(events), reply.text[:200]
            done += len(events)
            marks.append((time.perf_counter(), done))
        central_cpu = cpu_seconds(central.process.proc.pid) - central_cpu
        # Central's own CPU time for the whole drain (on PostgreSQL the database server's is not in it).
        line("", f"{done / central_cpu:,.0f} events per CPU-second of the central process")
        return _edges(marks)
    finally:
        central.close()


def _print(label: str, rates: tuple[float, float, float]) -> None:
    overall, first, last = rates
    line(label, f"{overall:,.0f} events/s   first 10 % {first:,.0f}, last 10 % {last:,.0f}   target >= 20,000")


def main(events: int = 50_000, backend: str = "both") -> None:
    customers = max(100, round(events / EVENTS_PER_PERSON))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        counts = write_chain(out / "chain", customers)
        receipts = sum(1 for _ in _receipts(out / "chain" / "events.jsonl"))
        print(
            f"ingest with identity resolution: chain of {counts['people']:,} people, {counts['events']:,} events "
            f"({receipts:,} receipts)",
            flush=True,
        )
        for name in ["sqlite", "postgresql"] if backend == "both" else [backend]:
            for path in ("load-events", "batch endpoint"):
                work = out / f"{name}-{path.replace(' ', '-')}"
                work.mkdir()
                if name == "sqlite":
                    url = f"sqlite:///{work}/central.db"
                    rates = (
                        via_load_events(url, out / "chain" / "events.jsonl")
                        if path == "load-events"
                        else via_batches(url, out / "chain" / "events.jsonl", work)
                    )
                else:
                    with temporary_postgres_database("cdp_bench") as url:
                        rates = (
                            via_load_events(url, out / "chain" / "events.jsonl")
                            if path == "load-events"
                            else via_batches(url, out / "chain" / "events.jsonl", work)
                        )
                _print(f"{path} on {name}", rates)
                line("", load_note())
