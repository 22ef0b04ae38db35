"""Whether central can take writes now: what ``/healthz`` answers and a load balancer polls.

Reaching the database is not enough: a PostgreSQL standby (or a database set read-only after a
failover) answers every read and refuses every write, and a SQLite file whose disk is full reads
fine while every batch fails. So the check also proves the database writable, without writing:

* PostgreSQL: ``pg_is_in_recovery()`` (a standby) and ``transaction_read_only`` of a new
  transaction (``default_transaction_read_only``, set per database or role).
* SQLite: the free space of the filesystem holding the database file. A write rolled back would
  prove nothing there: in WAL mode it never reaches the disk.
* PostgreSQL's disk is the server's, out of central's sight, and a full one still answers reads:
  only a write it refuses (``disk_full``) tells. Central remembers the last such refusal and answers
  ``full`` for ``FULL_FOR`` after it; nothing but a write can tell it the disk has room again, so
  it then answers ``ok`` and the next refusal, if any, makes it ``full`` again.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

from flask import Flask
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from central import db, errors

# Below this much free space on the SQLite database's filesystem central reports its disk full: a batch
# commit, a WAL checkpoint or a job's recompute needs room, and a load balancer should move on first.
MIN_FREE_BYTES = 16 * 1024 * 1024

READY = "ok"

# How long after the database refused a write for a full disk ``/healthz`` keeps answering ``full``.
FULL_FOR = timedelta(seconds=60)


def state(app: Flask, engine: Engine, now: datetime) -> str:
    """:func:`database_state`, or ``full`` while a refusal for a full disk is recent (see the module's notes)."""
    found = database_state(engine)
    refused = errors.full_refused_at(app)
    # SQLite's disk is in sight (database_state measured it); PostgreSQL's is not.
    if found == READY and engine.dialect.name == "postgresql" and refused is not None and now - refused < FULL_FOR:
        return "full"
    return found


def database_state(engine: Engine) -> str:
    """``ok``, or why writes would fail now: ``unreachable``, ``read_only`` or ``full``."""
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                row = conn.execute(
                    text("SELECT pg_is_in_recovery(), current_setting('transaction_read_only') = 'on'")
                ).one()
                if row[0] or row[1]:
                    return "read_only"
                return READY
            conn.execution_options(**db.READ_ONLY).execute(text("SELECT 1"))
    except DBAPIError as exc:
        return errors.database_condition(exc) or "unreachable"
    except SQLAlchemyError:
        return "unreachable"
    file = engine.url.database if engine.dialect.name == "sqlite" else None
    if file and file != ":memory:" and free_bytes(Path(file).parent) < MIN_FREE_BYTES:
        return "full"
    return READY


def free_bytes(directory: Path) -> int:
    """Bytes an unprivileged writer may still use on the filesystem holding ``directory``."""
    st = os.statvfs(directory)
    return st.f_bavail * st.f_frsize
