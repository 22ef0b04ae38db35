"""A database error, which the server logs, names the statement, never the personal data bound to it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from central.db import make_engine
from central.identity.models import Identifier


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
