"""Pages only read: on SQLite they neither wait for nor hold up writers, and their audit rows still land first."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import OperationalError

from central import db as central_db
from central.models import AuditLog, table
from tests.central.support import create_user, login, table_rows

ROW = {
    "at": datetime(2026, 11, 30, tzinfo=UTC),
    "actor": "x",
    "action": "y",
    "subject": "",
    "prev_hash": "",
    "row_hash": "",
}
pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # PostgreSQL's readers never wait


def _held_write_lock(app) -> sqlite3.Connection:
    writer = sqlite3.connect(app.config["CENTRAL"].effective_database_url.removeprefix("sqlite:///"), timeout=0.5)
    writer.isolation_level = None
    writer.execute("BEGIN IMMEDIATE")
    return writer


def _admin_while_locked(app):
    """A logged-in admin's client, and a connection holding SQLite's write lock (roll it back to free it)."""
    create_user(app, "admin", role="admin")
    client = app.test_client()
    assert login(client, "admin").status_code == 302
    return client, _held_write_lock(app)


def _get_in_thread(client, path: str) -> tuple[threading.Thread, list[int]]:
    statuses: list[int] = []
    thread = threading.Thread(target=lambda: statuses.append(client.get(path).status_code), daemon=True)
    thread.start()
    return thread, statuses


def test_pages_answer_while_another_transaction_holds_the_write_lock(app):
    client, writer = _admin_while_locked(app)
    try:
        for path in ("/console/fleet", "/console/segments", "/console/campaigns", "/console/"):
            thread, statuses = _get_in_thread(client, path)
            thread.join(timeout=5)  # before: each page began with BEGIN IMMEDIATE and waited for the writer
            assert statuses == [200], path
    finally:
        writer.rollback()
        writer.close()


def test_a_page_that_shows_personal_data_is_sent_only_after_its_audit_row_is_committed(app):
    client, writer = _admin_while_locked(app)
    try:
        thread, statuses = _get_in_thread(client, "/console/customers")
        thread.join(timeout=1.5)
        assert statuses == []  # the page has read its rows, its audit row waits for the lock
    finally:
        writer.rollback()
        writer.close()
    thread.join(timeout=30)
    assert statuses == [200]
    assert [row.action for row in table_rows(app, AuditLog)][-1] == "customers.list"


def test_a_write_in_a_read_only_transaction_fails_at_once(app):
    engine = central_db.engine_for(app)
    with engine.connect() as conn:
        conn = conn.execution_options(**central_db.READ_ONLY)
        with pytest.raises(OperationalError, match="readonly"), conn.begin():
            conn.execute(insert(table(AuditLog)).values(ROW))
    with engine.begin() as conn:  # the same pooled connection writes again once it is not read-only
        conn.execute(insert(table(AuditLog)).values(ROW))
