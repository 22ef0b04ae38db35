"""The database gives no customer data away: its errors quote no bound values, its files are 0600."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert, text
from sqlalchemy.exc import IntegrityError

from central.db import make_engine
from central.identity.models import Identifier
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
