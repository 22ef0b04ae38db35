"""Legacy member import: rows/s for a 100,000-row export (duplicates, format variants, bad rows).

The file comes from :mod:`bench.legacy_members`; the import runs in this process exactly as
``central-server import-members`` runs it (both passes, commits every 1,000 rows), into a fresh
SQLite file and a fresh PostgreSQL database. The report is checked against the file's known
answers, then the import is run again to time a rerun (which must change nothing).
"""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bench.common import default_registry, line, load_note
from bench.legacy_members import MAPS, compare, write_file
from central.db import make_engine
from central.migrate import upgrade
from central.sources.import_report import write_report
from central.sources.member_import import ImportOptions, plan_import, run_import
from central.sources.models import ImportRow
from tools.databases import temporary_postgres_database


def _clock() -> datetime:
    return datetime.now(UTC)


def import_once(url: str, path: Path, report: Path) -> tuple[float, float]:
    """Rows/s of a first import and of a rerun; the report is checked by the caller."""
    upgrade(url)
    engine = make_engine(url)
    registry = default_registry()
    options = ImportOptions(maps=MAPS)
    today = _clock().date()
    try:
        timings = []
        for _ in range(2):
            start = time.perf_counter()
            plan = plan_import(path, options, registry)
            with Session(engine) as db:
                import_id, _stats = run_import(db, plan, options, registry=registry, clock=_clock, today=today)
            timings.append(plan.rows / (time.perf_counter() - start))
        with Session(engine) as db, report.open("w", encoding="utf-8", newline="") as out:
            write_report(db, import_id, out, plan.mapping.id_column)
            assert db.scalar(select(func.count()).select_from(ImportRow)) == plan.rows
    finally:
        engine.dispose()
    return timings[0], timings[1]


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
            line(f"import on {name}", f"{first:,.0f} rows/s   target >= 10,000   ({verdict})")
            line(f"rerun of the same file on {name}", f"{rerun:,.0f} rows/s   (changes nothing)")
            line("", load_note())
