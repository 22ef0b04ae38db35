"""Keeping derived data current costs the same however long the histories are (work counted, not timed).

SQLite's progress handler, called after every virtual-machine step, counts the work one transaction
does: a figure that does not depend on the machine's load, unlike a timing. Each test compares a
short history with a long one.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from central.customers import rebuild, statistics
from central.identity import golden
from central.identity.models import Customer, LedgerEntry
from central.identity.split import split
from central.sources.events import read_events, stage_rows
from tests.central.customer_support import ANY_TIME, NOW, card, engine_at, phone, sale, snapshot, store
from tests.central.sources_support import default_registry
from tests.central.support import Agent


def _steps(url: str, work: Callable[[Connection], Any]) -> int:
    """SQLite steps taken by ``work`` in one committed transaction (0 on PostgreSQL, which it runs all the same)."""
    count = 0

    def step() -> int:
        nonlocal count
        count += 1
        return 0

    with engine_at(url) as engine, engine.connect() as conn:
        raw = conn.connection.driver_connection
        counted = engine.dialect.name == "sqlite"
        if counted:
            raw.set_progress_handler(step, 1)  # type: ignore[union-attr]
        work(conn)
        conn.commit()
        if counted:
            raw.set_progress_handler(None, 1)  # type: ignore[union-attr]
    return count


def _stage(events: Sequence[dict[str, Any]]) -> Callable[[Connection], None]:
    rows, _, rejected = read_events(events, ANY_TIME)
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
    # Re-pointing 400 more events at the survivor costs a few dozen steps each (their events and,
    # since a backfill's store receipts count as till receipts, their receipts: about 47); recomputing
    # the statistics from the events cost about a hundred steps for each event read.
    assert (long - short) / 400 < 60, (short, long)


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


def _merged_pair(agent: Agent, client: FlaskClient, n: int, history: int) -> None:
    """Phone ``n`` with ``history`` receipts and card ``n`` with three, then a receipt naming both."""
    number = f"1390000{n:04d}"
    agent.send(client, [agent.receipt(f"P{n}-{i}", "10.00", phone=number) for i in range(history)])
    agent.send(client, [agent.receipt(f"C{n}-{i}", "5.00", card=f"CARD{n:04d}") for i in range(3)])
    agent.send(client, [agent.receipt(f"B{n}", "1.00", phone=number, card=f"CARD{n:04d}")])


def test_a_split_moves_only_what_leaves(backend, app, client, agent):
    _merged_pair(agent, client, 1, 10)
    _merged_pair(agent, client, 2, 410)
    with engine_at(backend.url) as engine, engine.connect() as conn:
        undo = conn.execute(
            select(LedgerEntry.customer_id, LedgerEntry.id)
            .where(LedgerEntry.action == "merge")
            .order_by(LedgerEntry.id)
        ).all()
    steps = []
    for survivor, merge in undo:

        def work(conn: Connection, survivor: int = survivor, merge: int = merge) -> None:
            with Session(conn) as db:
                split(db, survivor, merge, now=NOW, operator="test", registry=default_registry())
                db.commit()

        steps.append(_steps(backend.url, work))
    with engine_at(backend.url) as engine, engine.connect() as conn:
        counts = conn.execute(select(Customer.receipts_count, Customer.total_spent).order_by(Customer.id)).all()
    # The bridging receipt came through the card (the stronger type): it leaves with the card.
    assert [(n, float(total)) for n, total in counts] == [(10, 100), (4, 16), (410, 4100), (4, 16)]
    if backend.name == "sqlite":
        # The kept customer's 400 more receipts are not rewritten. Since a split commits with both
        # sides' statistics complete, the kept customer's statistics are recounted from its events
        # in the same transaction (about 300 steps a receipt, on top of the golden record's read of
        # the receipts per store, about 20): the cost grows with that one customer's history only.
        assert (steps[1] - steps[0]) / 400 < 400, steps


def _python_calls(work: Callable[[], Any]) -> int:
    """Python function calls made by ``work``: the interpreter's own count, not a timing."""
    calls = 0

    def count(frame: Any, event: str, arg: Any) -> None:
        nonlocal calls
        if event == "call":
            calls += 1

    sys.setprofile(count)
    try:
        work()
    finally:
        sys.setprofile(None)
    return calls


def test_the_golden_record_weighs_a_stores_receipts_without_a_step_per_receipt(backend, app, client, agent):
    for n, history in ((1, 10), (2, 400)):
        agent.send(client, [agent.receipt(f"R{n}-{i}", "10.00", phone=f"1390000{n:04d}") for i in range(history)])
    with engine_at(backend.url) as engine, Session(engine) as db:
        ids = db.scalars(select(Customer.id).order_by(Customer.id)).all()
        calls = [_python_calls(lambda cid=cid: golden.refresh(db, default_registry(), [cid], NOW)) for cid in ids]
        assert golden.golden_of(db, ids) == {cid: {"preferred_store": ("S001", "receipts")} for cid in ids}
    assert calls[1] <= calls[0] * 1.1, calls
