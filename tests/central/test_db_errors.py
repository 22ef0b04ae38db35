"""The database gives no customer data away: its errors quote no bound values, its files are 0600."""

from __future__ import annotations

import logging
import os
import stat
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.exc import IntegrityError

from central import db as central_db
from central.db import make_engine
from central.identity.models import Identifier
from central.jobs import FAILED, JobRun, RunContext, run_job
from central.migrate import upgrade


def test_a_failed_statement_does_not_quote_its_bound_values(backend):
    engine = make_engine(backend.url)
    phone = "+8613812345678"
    now = datetime(2026, 12, 3, tzinfo=UTC)
    row = {"kind": "phone", "value": phone, "state": "linked", "created_at": now, "last_seen_at": now}
    try:
        with engine.connect() as conn:
            conn.execute(insert(Identifier).values(**row))
            with pytest.raises(IntegrityError) as failed:
                conn.execute(insert(Identifier).values(**row))
    finally:
        engine.dispose()
    assert "identifiers" in str(failed.value)  # the statement is still named, for whoever reads the log
    assert "[parameters:" not in str(failed.value)
    if backend.name == "sqlite":
        assert phone not in str(failed.value)


def test_a_new_sqlite_database_and_its_wal_are_readable_by_their_owner_only(tmp_path):
    """Run by hand outside systemd (umask 022), central.db, -wal and -shm used to be 0644."""
    path = tmp_path / "data" / "central.db"
    old = os.umask(0o022)
    try:
        upgrade(f"sqlite:///{path}")
        engine = make_engine(f"sqlite:///{path}")
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x)"))
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in path.parent.iterdir()}
        engine.dispose()
    finally:
        os.umask(old)
    assert modes == {"central.db": 0o600, "central.db-wal": 0o600, "central.db-shm": 0o600}


def _insert_twice(db) -> None:
    for _ in range(2):
        db.execute(insert(Identifier).values(**_row()))


def _row() -> dict[str, object]:
    now = datetime(2026, 12, 3, tzinfo=UTC)
    return {"kind": "phone", "value": PHONE, "state": "linked", "created_at": now, "last_seen_at": now}


PHONE = "+8613812345678"


def test_an_unhandled_database_error_is_logged_with_its_statement_not_the_rows_values(app, caplog):
    """PostgreSQL's DETAIL line quotes the conflicting row ("Key (kind, value)=(phone, +86...)")."""

    @app.get("/api/v1/duplicate-for-test")
    def duplicate() -> str:
        _insert_twice(central_db.get_session())
        return "unreachable"

    with caplog.at_level(logging.ERROR, logger="central.errors"):
        reply = app.test_client().get("/api/v1/duplicate-for-test")
    assert reply.status_code == 500 and reply.get_json()["error"]["code"] == "internal_error"
    assert "IntegrityError" in caplog.text and "INSERT INTO identifiers" in caplog.text and "Traceback" in caplog.text
    assert "13812345678" not in caplog.text


def test_a_job_failing_on_a_database_error_keeps_and_logs_no_rows_values(app, clock, caplog):
    def job(ctx: RunContext) -> None:
        with ctx.sessions() as db:
            _insert_twice(db)

    sessions = central_db.session_factory(app)
    with caplog.at_level(logging.ERROR, logger="central.jobs"):
        assert run_job(sessions, "duplicate", job, instance="test", clock=clock, lease_seconds=60) == FAILED
    with sessions() as db:
        error = db.scalar(select(JobRun.error).where(JobRun.name == "duplicate"))
    assert error is not None and error.startswith("IntegrityError") and "identifiers" in error
    assert "13812345678" not in error and "13812345678" not in caplog.text
