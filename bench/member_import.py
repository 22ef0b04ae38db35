"""Legacy member import: rows/s for a 100,000-row export (duplicates, format variants, bad rows).

The file comes from :mod:`bench.legacy_members`; the import runs in this process exactly as
``central-server import-members`` runs it (both passes, commits every 5,000 rows), into a fresh
SQLite file and a fresh PostgreSQL database. The report is checked against the file's known
answers, then the import is run again to time a rerun (which must change nothing).

Beside the wall-clock rate, each import prints its rate per CPU-second: this process's own CPU time
(SQLite's work included, since it runs in process) and, on PostgreSQL, the server's backends for
the benchmark's database as well (from ``/proc/<pid>/stat``), so figures taken on a shared machine
can be compared.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from bench.common import backends_cpu, default_registry, line, load_note
from bench.legacy_members import MAPS, compare, write_file
from central.db import make_engine
from central.migrate import upgrade
from central.sources.import_file import ImportOptions, plan_import
from central.sources.import_report import write_report
from central.sources.member_import import run_import
from central.sources.models import ImportRow
from tools.databases import temporary_postgres_database


def _clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Timing:
    """One import's rows, wall seconds, this process's CPU seconds and the database server's."""

    rows: int
    wall: float
    cpu: float
    server_cpu: float

    @property
    def rate(self) -> float:
        """Rows per wall-clock second."""
        return self.rows / self.wall

    @property
    def cpu_rate(self) -> float:
        """Rows per CPU-second, the server's included."""
        return self.rows / (self.cpu + self.server_cpu)


def _server_cpu(probe: Engine) -> float:
    """CPU seconds used so far by the other client backends of this database (0 on SQLite); autovacuum is left out."""
    if probe.dialect.name != "postgresql":
        return 0.0
    with probe.connect() as conn:
        pids = conn.scalars(
            text(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
            )
        ).all()
    return backends_cpu(pids)


def import_once(url: str, path: Path, report: Path) -> tuple[Timing, Timing]:
    """Timings of a first import and of a rerun; the report is checked by the caller."""
    upgrade(url)
    engine = make_engine(url)
    probe = create_engine(url, poolclass=NullPool)  # a connection of its own, left out of the count
    registry = default_registry()
    options = ImportOptions(maps=MAPS)
    today = _clock().date()
    try:
        with Session(engine) as db:  # open the pool's connection first, so its backend is counted
            db.execute(select(1))
        timings = []
        for _ in range(2):
            server = _server_cpu(probe)
            start, cpu = time.perf_counter(), time.process_time()
            plan = plan_import(path, options, registry)
            with Session(engine) as db:
                import_id, _stats = run_import(db, plan, options, registry=registry, clock=_clock, today=today)
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu
            timings.append(Timing(plan.rows, wall, cpu, _server_cpu(probe) - server))
        with Session(engine) as db, report.open("w", encoding="utf-8", newline="") as out:
            write_report(db, import_id, out, plan.mapping.id_column)
            assert db.scalar(select(func.count()).select_from(ImportRow)) == plan.rows
    finally:
        engine.dispose()
        probe.dispose()
    return timings[0], timings[1]


def _cpu_note(timing: Timing) -> str:
    server = f" + server {timing.server_cpu:,.1f} s" if timing.server_cpu else ""
    return f"{timing.cpu_rate:,.0f} rows per CPU-second ({timing.cpu:,.1f} s{server}; wall {timing.wall:,.1f} s)"


def main(rows: int = 100_000, backend: str = "both") -> None:
    print(f"member import: {rows:,} legacy rows (duplicates, format variants, bad rows)", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "members.csv"
        expected = write_file(path, rows)
        backends = ["sqlite", "postgresql"] if backend == "both" else [backend]
        for name in backends:
            report = Path(tmp) / f"report-{name}.csv"
            if name == "sqlite":
                first, rerun = import_once(f"sqlite:///{tmp}/central.db", path, report)
            else:
                with temporary_postgres_database("cdp_bench") as url:
                    first, rerun = import_once(url, path, report)
            problems = compare(report, expected)
            verdict = "report exact" if not problems else f"{len(problems)} differences, first: {problems[0]}"
            line(f"import on {name}", f"{first.rate:,.0f} rows/s   target >= 10,000   ({verdict})")
            line("", _cpu_note(first))
            line(f"rerun of the same file on {name}", f"{rerun.rate:,.0f} rows/s   (changes nothing)")
            line("", load_note())
