"""Database engines and sessions: one engine per app, one session per request.

SQLite runs in WAL mode with ``synchronous=NORMAL``, a checkpoint every 20,000 WAL pages and a
30 s busy timeout, and every transaction starts with ``BEGIN IMMEDIATE``: waitress serves requests
on several threads, and a transaction that reads first and writes later under a deferred BEGIN
fails with "database is locked" instead of waiting when another thread committed in between.
Transactions that only read (``READ_ONLY``, and every transaction of a page,
``read_only_session``) begin deferred instead, with ``query_only`` on.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, cast

from flask import Flask, current_app, g
from sqlalchemy import Connection, CursorResult, Engine, Result, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

BUSY_TIMEOUT_MS = 30_000
# Page cache per connection; SQLite's 2 MB default makes index lookups hit the disk once the
# events table outgrows it.
CACHE_KIB = 32 * 1024
# WAL pages written before SQLite checkpoints them into the database file (its default is 1,000,
# 4 MB). One ingest transaction of a few thousand events dirties thousands of scattered index
# pages, so with the default nearly every commit ran a checkpoint of its own; with 20,000 (80 MB)
# a page written again within a few transactions is checkpointed once (about 8 % less CPU per
# event on a 300,000-event load, docs/benchmarks.md). The WAL file is cut back to
# WAL_LIMIT_BYTES after a checkpoint, so it does not keep its largest size on disk.
WAL_CHECKPOINT_PAGES = 20_000
WAL_LIMIT_BYTES = 64 * 1024 * 1024
# Execution options for a connection that only reads: on SQLite it begins a deferred transaction,
# which does not wait for (or hold up) writers.
READ_ONLY = {"central_read_only": True}
_EXTENSION = "central.db"


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url`` with central's connection settings (SQLite pragmas, pool checks).

    A failed statement's error never quotes the values bound to it (``hide_parameters``): they are
    phones, member ids and names, and the error reaches the log.
    """
    kwargs.setdefault("hide_parameters", True)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            _create_private(Path(parsed.database))
        engine = create_engine(
            url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}, **kwargs
        )
        _configure_sqlite(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _create_private(path: Path) -> None:
    """Create the database file readable by its owner only, whatever the umask: SQLite gives its
    WAL and shared-memory files the database file's mode, and all three hold customers' data."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module so that "begin" below decides.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA cache_size={-CACHE_KIB}")
            cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
            cursor.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}")
            # Deleted rows (a removed identifier, a withdrawn consent's tags) are overwritten, not left in
            # free pages. Debian's libsqlite3 does this by default; other builds (Python's own, on some
            # platforms) do not, so it is asked for.
            cursor.execute("PRAGMA secure_delete=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        read_only = conn.get_execution_options().get("central_read_only", False)
        # query_only makes a write in a read-only transaction fail at once, in every test, instead of
        # only when another thread happened to commit first (a deferred transaction cannot then upgrade).
        conn.exec_driver_sql("PRAGMA query_only=1" if read_only else "PRAGMA query_only=0")
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def rows_changed(result: Result[Any]) -> int:
    """How many rows an UPDATE or DELETE touched (summed over an executemany where the driver can)."""
    return cast(CursorResult[Any], result).rowcount


def init_app(app: Flask, url: str) -> None:
    """Create the app's engine and session factory and close each request's session at teardown."""
    engine = make_engine(url)
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    app.extensions[_EXTENSION] = (engine, factory)
    app.teardown_appcontext(_close_session)


def engine_for(app: Flask) -> Engine:
    """The app's engine."""
    engine: Engine = app.extensions[_EXTENSION][0]
    return engine


def session_factory(app: Flask) -> sessionmaker[Session]:
    """The app's session factory, for work outside a request (the CLI, tests)."""
    factory: sessionmaker[Session] = app.extensions[_EXTENSION][1]
    return factory


def get_session() -> Session:
    """The current request's session, opened on first use."""
    if "db_session" not in g:
        g.db_session = session_factory(current_app)()
    session: Session = g.db_session
    return session


def read_only_session() -> Session:
    """From here on, every transaction of this request only reads (a page that shows what is stored).

    On SQLite each begins deferred, so it neither waits for nor holds up a writer; a write in it fails
    at once (``query_only``). The request's earlier session, if any, is closed first: its work (the
    session check) is already committed or rolled back.
    """
    earlier: Session | None = g.pop("db_session", None)
    if earlier is not None:
        earlier.close()
    g.db_session = session_factory(current_app)(bind=engine_for(current_app).execution_options(**READ_ONLY))
    session: Session = g.db_session
    return session


def _close_session(_exc: BaseException | None) -> None:
    session: Session | None = g.pop("db_session", None)
    if session is not None:
        session.close()


# Tables at least twice as large as at their last ANALYZE (or never analysed), from their size on
# disk: the statistics system's counters reach the views a second or more late, and not at all with
# track_counts off. Tables under 8 pages are left alone (a scan of them costs no more than a look-up).
_STALE_STATISTICS = """
SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname)
FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relkind = 'r'
  AND pg_relation_size(c.oid) / current_setting('block_size')::int
      >= GREATEST(2 * c.relpages, 8)
ORDER BY c.relname
"""


def catch_up_statistics(conn: Connection) -> list[str]:
    """``ANALYZE`` the tables a bulk load has outgrown since their last statistics (PostgreSQL only).

    PostgreSQL's planner sizes each join from the statistics autovacuum keeps; a table loaded faster
    than autovacuum wakes (or with autovacuum off) looks a few pages long, and every look-up of a
    batch becomes a sequential scan of it (docs/benchmarks.md, "Size with the mix held"). Bulk loads
    call this between chunks. A table is analysed each time it doubles, so a load analyses each table
    a few dozen times at most, each a bounded sample; where autovacuum keeps up it finds nothing to
    do. Returns the tables analysed, in the caller's transaction.
    """
    if conn.dialect.name != "postgresql":
        return []
    tables = list(conn.exec_driver_sql(_STALE_STATISTICS).scalars())
    if tables:
        conn.exec_driver_sql(f"ANALYZE {', '.join(tables)}")
    return tables


def autovacuum_warning(engine: Engine) -> str | None:
    """Why the server is a risk to the planner's statistics (PostgreSQL with autovacuum off), or None."""
    if engine.dialect.name != "postgresql":
        return None
    with engine.connect() as conn:
        settings: dict[str, str] = dict(
            conn.exec_driver_sql(
                "SELECT name, setting FROM pg_settings WHERE name IN ('autovacuum', 'track_counts')"
            ).all()
        )
    off = sorted(name for name in ("autovacuum", "track_counts") if settings.get(name) != "on")
    if not off:
        return None
    return (
        f"PostgreSQL's {' and '.join(off)} {'is' if len(off) == 1 else 'are'} off: the planner's statistics"
        " go stale as tables grow, look-ups turn into sequential scans and ingest slows with the database's"
        " size; turn it on (postgresql.conf) or ANALYZE after large loads"
    )
