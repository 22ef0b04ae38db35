"""PostgreSQL's planner statistics after bulk loads, and the server's warning when autovacuum is off.

Without statistics the planner guesses that an equality matches 0.5 % of a table, so a batch's
look-up of identifiers joins by scanning the whole table; ingest then slows with the database's size.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from bench.legacy_members import MAPS, write_file
from central.db import autovacuum_warning, catch_up_statistics, make_engine
from central.migrate import upgrade
from central.sources.backfill import load_events
from central.sources.import_file import ImportOptions, plan_import
from central.sources.member_import import run_import
from tests.central.sources_support import default_registry
from tests.conftest import fresh_postgres_database

GROWN = ("events", "identifiers", "customers", "event_customers")


def _history(path, people):
    lines = (
        json.dumps(
            {
                "event_id": f"crm-{n}",
                "observed_at": "2024-05-01T08:00:00+08:00",
                "store_id": "S001",
                "kind": "member.signup",
                "identifiers": {"phone": f"1391{n:07d}", "member_card": f"VIP{n:06d}"},
            }
        )
        for n in range(people)
    )
    path.write_text("\n".join(lines) + "\n")
    return path


def _analysed(conn):
    """Tables of ``GROWN`` whose row count the planner knows (ANALYZE sets it; -1 means never)."""
    rows = conn.execute(
        text("SELECT relname, reltuples FROM pg_class WHERE relname = ANY(:names) AND relkind = 'r'"),
        {"names": list(GROWN)},
    )
    return {name for name, tuples in rows if tuples > 0}


@pytest.fixture
def postgresql_database():
    with fresh_postgres_database("cdp_stats") as url:
        upgrade(url)
        engine = create_engine(url, poolclass=NullPool)
        with engine.begin() as conn:  # as on a server where autovacuum has not got round to them yet
            for name in GROWN:
                conn.execute(text(f"ALTER TABLE {name} SET (autovacuum_enabled = false)"))
        engine.dispose()
        yield url


def test_a_backfill_leaves_the_tables_it_grew_analysed(postgresql_database, tmp_path):
    engine = make_engine(postgresql_database)
    clock = lambda: datetime(2024, 6, 1, tzinfo=UTC)  # noqa: E731
    with Session(engine) as db:
        summary = load_events(
            db, _history(tmp_path / "h.jsonl", 1_500), "crm", registry=default_registry(), clock=clock, chunk_size=500
        )
    assert summary.accepted == 1_500
    with engine.connect() as conn:
        assert _analysed(conn) == set(GROWN)
        # What the statistics are for: the identifiers' values are known to be (nearly) all distinct.
        distinct = conn.execute(
            text("SELECT n_distinct FROM pg_stats WHERE tablename = 'identifiers' AND attname = 'value'")
        ).scalar_one()
        assert distinct < -0.9
    engine.dispose()


def test_a_member_import_leaves_the_tables_it_grew_analysed(postgresql_database, tmp_path):
    path = tmp_path / "members.csv"
    write_file(path, 3_000, seed=5)
    options = ImportOptions(maps=MAPS, chunk_size=1_000)
    plan = plan_import(path, options, default_registry())
    engine = make_engine(postgresql_database)
    clock = lambda: datetime(2024, 6, 1, tzinfo=UTC)  # noqa: E731
    with Session(engine) as db:
        run_import(db, plan, options, registry=default_registry(), clock=clock, today=date(2024, 6, 1))
        db.commit()
    with engine.connect() as conn:
        assert {"identifiers", "customers", "events"} <= _analysed(conn)
    engine.dispose()


def test_catching_up_analyses_a_table_each_time_it_doubles(postgresql_database):
    engine = make_engine(postgresql_database)
    with engine.begin() as conn:
        assert catch_up_statistics(conn) == []  # nothing has grown since the schema was made
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO customers (created_at, first_seen_at, last_seen_at, receipts_count, total_spent, version)"
                " SELECT now(), now(), now(), 0, 0, 1 FROM generate_series(1, 2000)"
            )
        )
    with engine.begin() as conn:
        assert catch_up_statistics(conn) == ["public.customers"]
    with engine.begin() as conn:
        assert catch_up_statistics(conn) == []  # until it doubles again
        assert _analysed(conn) == {"customers"}
    engine.dispose()


def test_sqlite_has_nothing_to_catch_up(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'central.db'}")
    with engine.begin() as conn:
        assert catch_up_statistics(conn) == []
        assert autovacuum_warning(engine) is None
    engine.dispose()


@pytest.mark.parametrize("track_counts", ["on", "off"])
def test_the_server_warns_when_postgresql_keeps_no_statistics(postgresql_database, track_counts):
    engine = make_engine(postgresql_database, connect_args={"options": f"-c track_counts={track_counts}"})
    with engine.connect() as conn:
        autovacuum = conn.execute(text("SHOW autovacuum")).scalar_one()
    warning = autovacuum_warning(engine)
    off = [name for name, value in (("autovacuum", autovacuum), ("track_counts", track_counts)) if value != "on"]
    if off:
        assert warning is not None
        assert all(name in warning for name in off)
        assert "ANALYZE" in warning
    else:
        assert warning is None
    engine.dispose()
