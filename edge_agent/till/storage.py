"""The till's own SQLite file, shared by the member-code replay cache and the coupon used-set."""

from __future__ import annotations

import sqlite3
from pathlib import Path

DB_FILE = "till.sqlite"


def open_till_db(directory: Path, schema: str) -> sqlite3.Connection:
    """Open (creating) ``till.sqlite`` in ``directory``, durable on commit, with ``schema`` applied."""
    conn = sqlite3.connect(directory / DB_FILE, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.executescript(schema)
    return conn
