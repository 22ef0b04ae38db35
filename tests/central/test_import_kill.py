"""A legacy import killed with SIGKILL in the middle, then run again, ends as one clean run does."""

from __future__ import annotations

import signal
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from bench.legacy_members import MAPS, compare, write_file
from central.db import make_engine
from central.migrate import upgrade
from central.sources.import_file import ImportOptions, plan_import
from central.sources.member_import import run_import
from central.sources.models import ImportRow
from tests.central.cli_runner import InProcessCli, clean_environment, command, write_config
from tests.central.sources_support import default_registry

ROWS = 6000
CHUNK = 200
MAP_ARGS = [arg for spec in MAPS for arg in ("--map", spec)]


def _counts(url):
    engine = create_engine(url, poolclass=NullPool)
    with engine.connect() as conn:
        counts = {
            table: conn.scalar(text(f"SELECT COUNT(*) FROM {table}"))  # noqa: S608 - our own table names
            for table in ("events", "identifiers", "identity_ledger", "import_rows")
        }
        counts["live_customers"] = conn.scalar(text("SELECT COUNT(*) FROM customers WHERE merged_into IS NULL"))
    engine.dispose()
    return counts


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory) -> tuple[Path, list, dict]:
    """The members file, its expected report, and the table counts of one clean run of it into a
    scratch SQLite database: the reference both backends' runs must equal, made once."""
    folder = tmp_path_factory.mktemp("clean-import")
    path = folder / "members.csv"
    expected = write_file(path, ROWS, seed=21)
    reference = f"sqlite:///{folder}/clean.db"
    upgrade(reference)
    options = ImportOptions(maps=MAPS, chunk_size=CHUNK)
    today = datetime.now(UTC).date()
    plan = plan_import(path, options, default_registry())
    engine = make_engine(reference)
    with Session(engine) as db:
        run_import(db, plan, options, registry=default_registry(), clock=lambda: datetime.now(UTC), today=today)
    engine.dispose()
    return path, expected, _counts(reference)


def test_a_killed_import_run_again_equals_one_clean_run(backend, tmp_path, clean_run):
    path, expected, reference_counts = clean_run
    config = write_config(tmp_path / "central.toml", tmp_path / "data", backend.url)
    args = ["import-members", str(path), *MAP_ARGS, "--chunk-size", str(CHUNK), "--config", str(config)]
    child = subprocess.Popen(
        [*command(), *args], env=clean_environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    watcher = create_engine(backend.url, poolclass=NullPool)
    committed = 0
    deadline = time.monotonic() + 120
    try:
        while child.poll() is None and time.monotonic() < deadline:
            with Session(watcher) as db:
                committed = db.scalar(select(func.count()).select_from(ImportRow)) or 0
            if committed >= ROWS // 4:
                break
            time.sleep(0.02)
        assert child.poll() is None, f"the import finished before it could be killed: {child.communicate()}"
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate()
    with Session(watcher) as db:
        at_kill = db.scalar(select(func.count()).select_from(ImportRow)) or 0
    watcher.dispose()
    assert 0 < at_kill < ROWS
    assert at_kill % CHUNK == 0, "a chunk is committed whole or not at all"

    report = tmp_path / "report.csv"
    done = InProcessCli(config).run(*args, "--report", str(report))  # the same command, in this process
    rejected = sum(1 for e in expected if e.outcome == "rejected")
    assert rejected, "the generated file has rows to reject"
    assert done.returncode == 1, done.stderr  # some rows are rejected: the file was not taken whole
    assert f"{rejected} of the {ROWS} rows of {path} were rejected" in done.stderr
    assert f"{ROWS - at_kill} rows processed, {at_kill} already imported" in done.stdout
    assert compare(report, expected) == []
    assert _counts(backend.url) == reference_counts
