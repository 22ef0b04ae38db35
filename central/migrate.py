"""Running central's Alembic migrations from code: ``upgrade(engine_or_url)`` brings a database to head.

A database at a revision this release does not ship was migrated by a newer central-server: it is
refused with :class:`NewerSchemaError` rather than handed to Alembic, which can only fail to locate
the revision.

Instances that start together on one database migrate one at a time: on PostgreSQL under a
session-level advisory lock held, on a connection of its own, for the whole migration; on SQLite
under the write lock of the migration's ``BEGIN IMMEDIATE`` transaction. The next one then finds
the schema current and has nothing to do.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

from central.db import make_engine
from central.identity.registry import Registry

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# pg_advisory_lock key held while migrating: "migrate" in ASCII.
MIGRATION_LOCK_KEY = int.from_bytes(b"migrate", "big")


class NewerSchemaError(Exception):
    """The database is at a revision this release does not know: a newer release migrated it."""

    def __init__(self, revision: str, head: str | None, database: str = "the database") -> None:
        super().__init__(
            f"{database} was migrated by a newer release of central-server (revision {revision}; this release"
            f" knows revisions up to {head}): upgrade central-server, or restore a backup taken before that upgrade"
        )
        self.revision = revision
        self.head = head


def alembic_config() -> Config:
    """An Alembic configuration pointing at the packaged migrations, with no ini file."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def upgrade(target: Engine | str, registry: Registry | None = None) -> str | None:
    """Apply every pending migration to the database behind ``target`` (an engine or a URL).

    ``registry`` is the identifier registry migrations that normalize stored values use (the
    retail defaults if None). Returns the revision the database was at once this process held the
    migration lock: the head if another instance migrated it meanwhile.
    """
    engine = make_engine(target) if isinstance(target, str) else target
    try:
        with migration_lock(engine), engine.begin() as connection:
            before = MigrationContext.configure(connection).get_current_revision()
            refuse_newer(before)
            config = alembic_config()
            config.attributes["connection"] = connection
            config.attributes["identity_registry"] = registry
            command.upgrade(config, "head")
            return before
    finally:
        if isinstance(target, str):
            engine.dispose()


@contextmanager
def migration_lock(engine: Engine) -> Iterator[None]:
    """On PostgreSQL, hold the migration advisory lock (waiting for it) on a connection of its own.

    Taken before the migration's transaction begins and let go after it commits, so the next instance
    reads the revision this one left. On SQLite the migration's own write lock already serializes
    instances.
    """
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for an empty database."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    """The newest revision shipped with this release."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def refuse_newer(revision: str | None, database: str = "the database") -> None:
    """Raise :class:`NewerSchemaError` (naming ``database``) if ``revision`` is not one this release ships.

    None, an empty database, is not refused.
    """
    if revision is None:
        return
    script = ScriptDirectory.from_config(alembic_config())
    if revision not in {r.revision for r in script.walk_revisions()}:
        raise NewerSchemaError(revision, script.get_current_head(), database)
