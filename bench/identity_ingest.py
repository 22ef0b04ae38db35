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
import statistics
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import requests
from sqlalchemy.orm import Session

from bench.chain import write_chain
from bench.common import backends_cpu, cpu_seconds, default_registry, line, load_note
from central.db import autovacuum_warning, catch_up_statistics, make_engine
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
PROBE_PEOPLE = 3_000  # people in ingest-size's probe chain (about 20,000 receipts)


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


def _receipt_batches(events_path: Path, shift: timedelta = timedelta(0)) -> list[tuple[str, list[dict[str, object]]]]:
    """The chain's receipts as (store, up to BATCH receipts) in the order a store's agent would send them."""
    pending: list[tuple[str, list[dict[str, object]]]] = []
    by_store: dict[str, list[dict[str, object]]] = {}
    for store, fields in _receipts(events_path):
        if shift:
            at = datetime.fromisoformat(str(fields["observed_at"])) + shift
            fields["observed_at"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
        batch = by_store.setdefault(store, [])
        batch.append(fields)
        if len(batch) == BATCH:
            pending.append((store, by_store.pop(store)))
    pending.extend(by_store.items())
    return pending


class _Stores:
    """One enrolled agent per store posting signed, gzipped batches to a running central."""

    def __init__(self, central: Central, workdir: Path) -> None:
        self.central, self.workdir = central, workdir
        self.signers: dict[str, RequestSigner] = {}
        self.seqs: dict[str, int] = {}
        self.http = requests.Session()
        self.new_id = UUID7()

    def enroll(self, pending: list[tuple[str, list[dict[str, object]]]]) -> None:
        for store, _ in pending:
            if store not in self.signers:
                creds = enroll(self.central.url, self.central.enroll_token(store), self.workdir / f"{store}.json")
                self.signers[store] = RequestSigner(creds.device_id, creds.private_key)
                self.seqs[store] = 0

    def post(self, store: str, fields_list: list[dict[str, object]]) -> int:
        signer = self.signers[store]
        events = []
        for fields in fields_list:
            self.seqs[store] += 1
            observed = str(fields["observed_at"])
            events.append(
                wire.Event(self.new_id(), self.seqs[store], "pos.receipt", observed, store, fields["payload"])
            )  # type: ignore[arg-type]
        batch = wire.Batch(signer.device_id, self.new_id(), wire.timestamp(), tuple(events))
        body = gzip.compress(wire.encode_batch(batch), 1)
        headers = signer.headers("POST", "/api/v1/batches", wire.timestamp(), body)
        headers.update({"Content-Type": "application/json", "Content-Encoding": "gzip"})
        reply = self.http.post(self.central.url + "/api/v1/batches", data=body, headers=headers, timeout=120)
        assert reply.status_code == 200, reply.text
        assert len(reply.json()["accepted"]) == len(events), reply.text[:200]
        return len(events)

    def central_cpu(self) -> float:
        assert self.central.process.proc is not None
        return cpu_seconds(self.central.process.proc.pid)


def via_batches(url: str, events_path: Path, workdir: Path) -> tuple[float, float, float]:
    central = Central(workdir, url)
    central.start()
    try:
        stores = _Stores(central, workdir)
        pending = _receipt_batches(events_path)
        stores.enroll(pending)
        central_cpu = stores.central_cpu()
        marks: list[tuple[float, int]] = [(time.perf_counter(), 0)]
        done = 0
        for store, fields_list in pending:
            done += stores.post(store, fields_list)
            marks.append((time.perf_counter(), done))
        central_cpu = stores.central_cpu() - central_cpu
        # Central's own CPU time for the whole drain (on PostgreSQL the database server's is not in it).
        line("", f"{done / central_cpu:,.0f} events per CPU-second of the central process")
        return _edges(marks)
    finally:
        central.close()


def _probe(url: str, workdir: Path, fill: Path | None, probe: Path, shift: timedelta) -> float:
    """CPU microseconds a receipt (central's, and PostgreSQL's backends') for the probe chain's receipts,
    after ``fill``'s if given."""
    central = Central(workdir, url)
    central.start()
    try:
        stores = _Stores(central, workdir)
        filling = _receipt_batches(fill) if fill else []
        probing = _receipt_batches(probe, shift)
        stores.enroll(filling + probing)
        for store, fields_list in filling:
            stores.post(store, fields_list)
        if fill:
            _catch_up_statistics(url)
        cpu, server, done = stores.central_cpu(), _server_cpu(url), 0
        for store, fields_list in probing:
            done += stores.post(store, fields_list)
        cpu = stores.central_cpu() - cpu
        after = _server_cpu(url)
        cpu += sum(seconds - server.get(pid, 0.0) for pid, seconds in after.items())
        return cpu / done * 1e6
    finally:
        central.close()


def _catch_up_statistics(url: str) -> None:
    """What autovacuum does on a production PostgreSQL (it is off on some test servers): the tables the
    fill grew get their statistics before the probe, so the probe measures size, not a stale plan."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            catch_up_statistics(conn)
    finally:
        engine.dispose()


def _autovacuum_note(url: str) -> str | None:
    """Central's own warning when this PostgreSQL server keeps no statistics (see decision 0069)."""
    engine = make_engine(url)
    try:
        return autovacuum_warning(engine)
    finally:
        engine.dispose()


def _server_cpu(url: str) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend serving the database; nothing for SQLite."""
    if not url.startswith("postgresql"):
        return {}
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            pids = conn.exec_driver_sql(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).scalars()
            return {pid: backends_cpu([pid]) for pid in pids}
    finally:
        engine.dispose()


def size_effect(events: int = 300_000, backend: str = "both", runs: int = 1) -> None:
    """The same receipts (a probe chain of other people) into an empty central and into one that
    already holds a chain of ``events`` events: the mix is the same, only the database's size differs.

    The first and last tenth of one load also differ in mix (early on, most people are new); this
    compares like with like. The probe's people (a tenth of the chain's, at most ``PROBE_PEOPLE``)
    are drawn with another seed, over one year placed after the chain's four, so its receipts meet
    none of the chain's people and arrive in time order.
    """
    customers = max(100, round(events / EVENTS_PER_PERSON))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        write_chain(out / "chain", customers)
        # A probe of the same size whatever the chain's, so that the empty central stays small.
        write_chain(out / "probe", max(100, min(customers // 10, PROBE_PEOPLE)), seed=2, years=1)
        shift = timedelta(days=4 * 365)
        receipts = sum(len(f) for _, f in _receipt_batches(out / "probe" / "events.jsonl"))
        print(f"ingest and size: {receipts:,} probe receipts, into an empty central and after {events:,} events")
        for name in ["sqlite", "postgresql"] if backend == "both" else [backend]:
            empty, filled = [], []
            for run in range(runs):
                for fill, into in ((None, empty), (out / "chain" / "events.jsonl", filled)):
                    work = out / f"{name}-{run}-{'filled' if fill else 'empty'}"
                    work.mkdir()
                    if name == "sqlite":
                        into.append(
                            _probe(f"sqlite:///{work}/central.db", work, fill, out / "probe" / "events.jsonl", shift)
                        )
                    else:
                        with temporary_postgres_database("cdp_bench") as url:
                            into.append(_probe(url, work, fill, out / "probe" / "events.jsonl", shift))
            a, b = statistics.median(empty), statistics.median(filled)
            line(
                f"batch endpoint on {name}",
                f"{a:,.0f} µs a receipt empty, {b:,.0f} µs after the chain: {b / a:.2f}x"
                f" (CPU of central and the database server, median of {runs})",
            )
            line("", load_note())


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
                        warning = _autovacuum_note(url) if path == "batch endpoint" else None
                _print(f"{path} on {name}", rates)
                line("", load_note())
                if name == "postgresql" and warning:
                    # load-events analyses as it grows the tables; the batch endpoint leaves it to autovacuum.
                    line("", f"note: {warning}")
