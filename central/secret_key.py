"""Central's ``secret.key``, held to the one the database was set up with (decision 0092).

Every instance signs with the same key: console forms, coupon codes, member certificates and the
downlink documents stores check against the key they were enrolled with. So the database records
the key's fingerprint the first time an instance starts on it, and from then on an instance whose
key differs, or that has none, is refused instead of signing with a key no store will accept.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection, Engine, insert, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from central.models import CentralKey, table
from shared.crypto import KEY_BYTES, KeyFileError, derive_key, read_secret_file, write_secret_file

# Shown in messages: enough to tell two keys apart at a glance.
SHOWN = 16


class SecretKeyRefused(Exception):
    """The local ``secret.key`` is not the one the database was set up with, or is missing: one line to print."""


def fingerprint(key: bytes) -> str:
    """A public name for ``key`` (hex SHA-256 of a sub-key, so it reveals nothing usable)."""
    return hashlib.sha256(derive_key(key, "cdp-secret-key-fingerprint-v1")).hexdigest()


def recorded(conn: Connection) -> str | None:
    """The fingerprint the database holds, if any."""
    return conn.execute(select(CentralKey.fingerprint).where(CentralKey.id == 1)).scalar_one_or_none()


def _read(path: Path) -> bytes:
    key = read_secret_file(path)
    if len(key) != KEY_BYTES:
        raise KeyFileError(f"{path}: expected {KEY_BYTES} bytes, found {len(key)}")
    return key


def _copy(path: Path) -> str:
    return (
        f"copy secret.key from an instance that serves it (or from the backup taken with the database) to"
        f" {path.parent}, mode 0600, owned by the service user"
    )


def problem(path: Path, key: bytes | None, held: str | None, database: str) -> str | None:
    """Why ``key`` (None: no file at ``path``) may not serve a database holding ``held``; None if it may."""
    if held is None:
        return None
    if key is None:
        return (
            f"no {path}, but database {database} was set up with a secret.key (fingerprint {held[:SHOWN]}…)"
            f" and a new one would not be trusted by the stores: {_copy(path)}"
        )
    if fingerprint(key) != held:
        return (
            f"{path} (fingerprint {fingerprint(key)[:SHOWN]}…) is refused: database {database} was set up with"
            f" another secret.key (fingerprint {held[:SHOWN]}…); {_copy(path)}"
        )
    return None


def _checked(path: Path, key: bytes | None, held: str | None, database: str) -> bytes | None:
    if refusal := problem(path, key, held, database):
        raise SecretKeyRefused(refusal)
    return key


def label(engine: Engine) -> str:
    """The engine's database URL with any password hidden, as messages name it."""
    return engine.url.render_as_string(hide_password=True)


def load(engine: Engine, path: Path, *, now: datetime | None = None) -> bytes:
    """The key in ``path``, checked against the database's fingerprint, recording it if the database has none.

    Creates the key only when the database holds no fingerprint (a fresh database, or one from before
    fingerprints were recorded, which adopts the key of the first instance that starts on it).
    """
    database = label(engine)
    with engine.connect() as conn:
        held = recorded(conn)
    key = _checked(path, _read(path) if path.exists() else None, held, database)
    if key is not None and held is not None:
        return key
    if key is None:
        # Another process that creates it first wins; its key is the one read below.
        with contextlib.suppress(FileExistsError):
            write_secret_file(path, os.urandom(KEY_BYTES))
        key = _read(path)
    at = now or datetime.now(UTC)
    with contextlib.suppress(IntegrityError), engine.begin() as conn:
        conn.execute(insert(table(CentralKey)).values(id=1, fingerprint=fingerprint(key), recorded_at=at))
    # Two instances starting on a fresh database at once: the one whose row went in first is served.
    with engine.connect() as conn:
        _checked(path, key, recorded(conn), database)
    return key


def for_session(db: Session, path: Path) -> bytes:
    """:func:`load` for a command that signs with the key on ``db``'s database (outside ``db``'s transaction)."""
    bind = db.get_bind()
    return load(bind if isinstance(bind, Engine) else bind.engine, path)


def report(url: str, path: Path) -> str:
    """One line on ``path`` against the database at ``url`` for ``check-config``; raises on a refused key.

    Creates nothing: no key, no database file, no row.
    """
    from sqlalchemy.engine import make_url

    from central.db import make_engine

    parsed = make_url(url)
    database = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() == "sqlite" and parsed.database and not Path(parsed.database).is_file():
        return f"secret.key: no database at {parsed.database} yet; serve creates it and records the key"
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            held = recorded(conn)
    except SQLAlchemyError as exc:
        return f"secret.key: not checked against database {database} ({type(exc).__name__})"
    finally:
        engine.dispose()
    key = _checked(path, _read(path) if path.exists() else None, held, database)
    if key is None:
        return f"secret.key: none at {path}; the first instance to start creates it and records it in {database}"
    if held is None:
        return (
            f"secret.key: {path} (fingerprint {fingerprint(key)[:SHOWN]}…); database {database} records none yet:"
            " the first instance to start records its own"
        )
    return f"secret.key: {path} is the one database {database} was set up with (fingerprint {held[:SHOWN]}…)"
