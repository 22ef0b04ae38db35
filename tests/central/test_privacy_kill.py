"""Erasure is one transaction: ``customer erase`` killed at any moment leaves the person untouched or erased.

The command runs as a real subprocess against a copy of a database holding a customer with a long
history (an erasure of about a second), and is sent SIGKILL at several moments after its first
transaction opens (before that it is only starting Python, which a kill cannot interrupt usefully). Each
time the copy must hold either exactly what it held before (row counts of every table, the person
found by the whole-database scan) or exactly what a clean run leaves; and a rerun must finish it as
that clean run did. A kill made while the command's transaction was open (SQLite: it holds the
write lock; PostgreSQL: its session is in a transaction) must leave the person untouched.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import psycopg
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from central import db as central_db
from tests.central.cli_runner import clean_environment, command, write_config
from tests.central.privacy_support import NEEDLES, PHONE, event, load, make_person, row_counts, traces
from tests.central.support import START
from tools.databases import POSTGRES_ADMIN_URL, _dsn

HISTORY = 1000  # online orders of the person: the erasure scrubs each one, about a second
SPREAD = 1.0  # kills land from the erasure's transaction's opening up to this part of a clean run's time from there
SUSTAINED = 0.1  # seconds a transaction must last to be the erasure's


def _history(app):
    at = START - timedelta(days=30)
    for start in range(0, HISTORY, 500):
        orders = [
            event(
                f"w{n}",
                "order.online",
                at + timedelta(minutes=n),
                {"order_no": f"W{n}", "total": "9.90", "items": [{"sku": "F900", "qty": 1}], "note": f"call {PHONE}"},
                identifiers={"phone": PHONE},
            )
            for n in range(start, min(start + 500, HISTORY))
        ]
        load(app, orders)


@contextmanager
def _copies(app, tmp_path: Path) -> Iterator[object]:
    """A function making fresh copies of the app's database (a URL each); copies are dropped afterwards."""
    url = app.config["CENTRAL"].database_url
    central_db.engine_for(app).dispose()
    made: list[str] = []

    def copy() -> str:
        n = len(made)
        if url.startswith("sqlite"):
            target = tmp_path / f"copy{n}.db"
            with sqlite3.connect(make_url(url).database) as source, sqlite3.connect(target) as dest:
                source.backup(dest)
            made.append(str(target))
            return f"sqlite:///{target}"
        name = f"{make_url(url).database}_k{n}"
        with psycopg.connect(_dsn(POSTGRES_ADMIN_URL), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{make_url(url).database}"')
        made.append(name)
        return f"{POSTGRES_ADMIN_URL.rsplit('/', 1)[0]}/{name}"

    try:
        yield copy
    finally:
        if not url.startswith("sqlite"):
            with psycopg.connect(_dsn(POSTGRES_ADMIN_URL), autocommit=True) as conn:
                for name in made:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _in_transaction(url: str) -> bool:
    """Whether another session is inside a transaction on the database now (the command, mid-erasure)."""
    if url.startswith("sqlite"):
        probe = sqlite3.connect(make_url(url).database, timeout=0, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
            return False
        except sqlite3.OperationalError:
            return True  # "database is locked": the command holds the write lock of its transaction
        finally:
            probe.close()
    with psycopg.connect(_dsn(url), autocommit=True) as conn:
        busy = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND xact_start IS NOT NULL"
        ).fetchone()
    return bool(busy and busy[0])


class _Database:
    """One copy, the command's config for it, and how to read its state."""

    def __init__(self, url: str, tmp_path: Path, n: int) -> None:
        self.url = url
        data = tmp_path / f"data{n}"
        data.mkdir()
        self.config = write_config(tmp_path / f"central{n}.toml", data, url)

    def erase(self, customer: int) -> subprocess.Popen[str]:
        args = [*command(), "customer", "erase", str(customer), "--reason", "ticket 4411", "--yes"]
        return subprocess.Popen(
            [*args, "--config", str(self.config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_environment(),
        )

    def state(self) -> tuple[dict[str, int], list[tuple[str, str]]]:
        engine = create_engine(self.url, poolclass=NullPool)
        try:
            return row_counts(engine), traces(engine, NEEDLES)
        finally:
            engine.dispose()


def _wait_for_a_transaction(run: subprocess.Popen[str], url: str, sustained: float = 0.0) -> float:
    """Block until the command has had a transaction open for ``sustained`` seconds (the erasure's own:
    the reads before it take milliseconds), or has ended; the monotonic time then."""
    deadline = time.monotonic() + 120
    since = None
    while run.poll() is None and time.monotonic() < deadline:
        if _in_transaction(url):
            since = since or time.monotonic()
            if time.monotonic() - since >= sustained:
                break
        else:
            since = None
        time.sleep(0.005)
    return time.monotonic()


def test_a_killed_erasure_leaves_the_person_whole_or_erased_and_a_rerun_finishes_it(
    app, client, agent, tmp_path, request
):
    kills = request.config.getoption("--erase-kills")
    delays = [SPREAD * n / kills for n in range(kills)]  # --erase-kills 2: at once, and half way
    customer = make_person(app, client, agent)
    _history(app)
    with _copies(app, tmp_path) as copy:
        reference = _Database(copy(), tmp_path, 0)  # type: ignore[operator]
        before = reference.state()
        assert before[1]  # the scan finds the person before
        clean = reference.erase(customer)
        opened = _wait_for_a_transaction(clean, reference.url)
        _out, err = clean.communicate(timeout=300)
        took = time.monotonic() - opened
        assert clean.returncode == 0, err
        erased = reference.state()
        assert erased[1] == [] and erased[0] != before[0]

        outcomes = []
        for n, delay in enumerate(delays, start=1):
            db = _Database(copy(), tmp_path, n)  # type: ignore[operator]
            run = db.erase(customer)
            _wait_for_a_transaction(run, db.url, SUSTAINED)
            time.sleep(took * delay)
            mid_transaction = run.poll() is None and _in_transaction(db.url)
            run.send_signal(signal.SIGKILL)
            run.communicate(timeout=60)
            state = db.state()
            assert state in (before, erased), (delay, mid_transaction)
            outcomes.append((delay, mid_transaction, "untouched" if state == before else "erased"))
            if mid_transaction:
                assert state == before, delay  # killed inside the transaction: nothing of it is left
            rerun = db.erase(customer)
            _out, err = rerun.communicate(timeout=300)
            assert rerun.returncode == 0, err
            assert db.state() == erased, delay  # the rerun ends where one clean run does
    print(f"clean run {took:.2f} s from its first transaction; kills (delay, mid-transaction, found):", outcomes)
    assert any(mid for _, mid, _ in outcomes), outcomes  # a kill landed inside the transaction
