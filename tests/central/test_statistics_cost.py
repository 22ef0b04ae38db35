"""Keeping statistics current costs the same however long the histories are (SQLite's steps counted).

SQLite's progress handler, called after every virtual-machine step, counts the work one transaction
does: a figure that does not depend on the machine's load, unlike a timing. Each test compares a
short history with a long one.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from central.customers import rebuild, statistics
from central.sources.events import read_events, stage_rows
from tests.central.customer_support import NOW, card, engine_at, phone, sale, snapshot, store
from tests.central.sources_support import default_registry


def _steps(url: str, work: Callable[[Connection], Any]) -> int:
    """SQLite steps taken by ``work`` in one committed transaction."""
    count = 0

    def step() -> int:
        nonlocal count
        count += 1
        return 0

    with engine_at(url) as engine, engine.connect() as conn:
        raw = conn.connection.driver_connection
        raw.set_progress_handler(step, 1)  # type: ignore[union-attr]
        work(conn)
        conn.commit()
        raw.set_progress_handler(None, 1)  # type: ignore[union-attr]
    return count


def _stage(events: Sequence[dict[str, Any]]) -> Callable[[Connection], None]:
    rows, _, rejected = read_events(events)
    assert not rejected

    def work(conn: Connection) -> None:
        with Session(conn) as db:
            stage_rows(db, "pos_backfill", list(rows), NOW, registry=default_registry())
            db.commit()

    return work


def _fresh(template: Path, path: Path) -> str:
    """A migrated SQLite database of its own (SQLite only: the steps are SQLite's)."""
    shutil.copyfile(template, path)
    return f"sqlite:///{path}"


def _merge_steps(url: str, history: int) -> int:
    """Steps of the batch that merges a phone's customer with a card's, each with ``history`` sales."""
    with engine_at(url) as engine:
        store(engine, [sale(f"p{n}", "2026-11-01T10:00:00+08:00", "10.00", phone=phone(1)) for n in range(history)])
        store(engine, [sale(f"c{n}", "2026-11-02T10:00:00+08:00", "5.00", card=card(1)) for n in range(history)])
    steps = _steps(url, _stage([sale("both", "2026-11-03T10:00:00+08:00", "1.00", phone=phone(1), card=card(1))]))
    with engine_at(url) as engine:
        stats = snapshot(engine)["customer_stats"]
    assert [(r[1], r[2]) for r in stats] == [(2 * history + 1, 1500 * history + 100)]
    return steps


def test_a_merge_moves_statistics_instead_of_reading_every_event(sqlite_template, tmp_path):
    short = _merge_steps(_fresh(sqlite_template, tmp_path / "short.db"), 10)
    long = _merge_steps(_fresh(sqlite_template, tmp_path / "long.db"), 210)
    # Re-pointing 400 more events at the survivor costs a few steps each; recomputing the
    # statistics from the events cost about a hundred steps for each event read.
    assert (long - short) / 400 < 40, (short, long)


def test_recomputing_a_few_customers_reads_only_their_events(sqlite_template, tmp_path):

    def recompute(conn: Connection) -> None:
        rebuild.rebuild_customers(conn, list(range(1, 11)), statistics.DEFAULT_OFFSET_MINUTES)

    steps = []
    for others in (0, 2000):
        url = _fresh(sqlite_template, tmp_path / f"others{others}.db")
        with engine_at(url) as engine:
            store(engine, [sale(f"a{n}", "2026-11-01T10:00:00+08:00", "10.00", phone=phone(n % 10)) for n in range(50)])
            store(
                engine,
                [sale(f"b{n}", "2026-11-01T10:00:00+08:00", "10.00", phone=phone(100 + n)) for n in range(others)],
            )
        steps.append(_steps(url, recompute))
    assert steps[1] < steps[0] * 1.2, steps
