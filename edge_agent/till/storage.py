"""The till's own SQLite file, shared by the member-code replay cache and the coupon used-set."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

DB_FILE = "till.sqlite"


def open_till_db(directory: Path, schema: str) -> sqlite3.Connection:
    """Open (creating) ``till.sqlite`` in ``directory``, durable on commit, with ``schema`` applied.

    The file is its owner's only (0600, whatever the umask; SQLite gives its WAL and shared-memory
    files the same mode): it is not sealed like the outbox, so it holds nothing personal.
    """
    path = directory / DB_FILE
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    path.chmod(0o600)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.executescript(schema)
    return conn
