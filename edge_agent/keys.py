"""The outbox key and the store it opens: which key that is, read only, and what to say when there is none.

Only `edge-agent run` creates the data directory's outbox and its key, and a key only for a store that
holds nothing sealed yet (:func:`sealed_data`): a new key cannot open an existing outbox, and the
next start would then refuse the store under a key that hides the real problem (the key is gone).
The commands that look at a store or change one in place (``quarantine``, ``status``, ``reparse``,
``rotate-key``, ``doctor``) use :func:`read_outbox_key` and :func:`require_store`, which say what is
missing instead of writing a fresh key; a phantom outbox in a mistyped directory would hide the real one.

:func:`find_outbox_key` is the one place that decides which key opens the store: the configured one
(the systemd credential or ``outbox.key``), else the new key of a rotation that committed and was
not finished (``outbox.key.next``, see rotation.py), else none, with a message naming what is wrong.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag

from edge_agent.config import AgentConfig
from edge_agent.credentials import KeySource, outbox_key_source
from edge_agent.outbox import OutboxKeyError
from shared.crypto import KEY_BYTES, KeyFileError, Sealer, read_secret_file

NEXT_SUFFIX = ".next"
# What shows that a store holds data sealed under its key: a key check, or any sealed row.
_SEALED_ROWS = (
    "SELECT 1 FROM meta WHERE key = 'key_check'",
    "SELECT 1 FROM events LIMIT 1",
    "SELECT 1 FROM quarantine LIMIT 1",
    "SELECT 1 FROM secrets LIMIT 1",
)


class StoreMissing(Exception):
    """The data directory, the outbox or its key is not there; the message says which and what to do."""


class DataDirError(Exception):
    """The data directory cannot be locked (gone, or not this user's); the message says which and why."""


@dataclass(frozen=True)
class StoreKey:
    """The key that opens the store, where the agent is configured to take it, and the file it was read from."""

    key: bytes
    source: KeySource
    path: Path  # source.path, or outbox.key.next while a rotation that committed is not finished

    @property
    def rotation_pending(self) -> bool:
        """The store is under the new key of a rotation whose last steps have not run yet."""
        return self.path != self.source.path


def next_key_path(key_path: Path) -> Path:
    """Where a rotation keeps the new key until it replaces ``key_path``."""
    return key_path.with_name(key_path.name + NEXT_SUFFIX)


def missing_key_message(key_path: Path, sealed: Path) -> str:
    """What to say about a store (``sealed``: its outbox, or a capture journal) whose key file is gone."""
    what = "outbox" if sealed.suffix == ".db" else "journal"
    return (
        f"outbox key missing: {sealed} exists but {key_path} does not, and the {what} cannot be opened "
        "without it; restore outbox.key from the backup taken with this outbox (a new key cannot open it)"
    )


def wrong_key_message(outbox_path: Path, source: KeySource, next_path: Path) -> str:
    """What to say about a store that neither the configured key nor a rotation's new key opens."""
    tried = f"{source.path}" + (f" or {next_path}" if next_path.exists() else "")
    fix = (
        "install the key from the backup taken with this outbox as the service's credential"
        " (systemd-creds encrypt --name=outbox.key KEYFILE /etc/edge-agent/outbox.key.cred)"
        if source.from_credential
        else "restore outbox.key from the backup taken with this outbox"
    )
    return f"{outbox_path} is sealed under a different key than {tried}: {fix}"


def canary_opens(outbox_path: Path, key: bytes) -> bool | None:
    """Does ``key`` open the outbox's key check? None if there is no outbox (or no check) yet."""
    if not outbox_path.exists():
        return None
    conn = sqlite3.connect(outbox_path)
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'key_check'").fetchone()
    except sqlite3.OperationalError:
        return None  # no tables yet
    finally:
        conn.close()
    if row is None:
        return None
    try:
        Sealer(key).open(bytes.fromhex(row[0]), b"key_check")
    except (InvalidTag, ValueError):
        return False
    return True


def _outbox_holds_data(outbox_path: Path) -> bool:
    if not outbox_path.exists():
        return False
    conn = sqlite3.connect(outbox_path)
    try:
        for query in _SEALED_ROWS:
            try:
                if conn.execute(query).fetchone() is not None:
                    return True
            except sqlite3.OperationalError:
                continue  # that table is not there yet
            except sqlite3.DatabaseError:
                return True  # not readable as a database: never assume it holds nothing
        return False
    finally:
        conn.close()


def sealed_data(outbox_path: Path, journal_dir: Path) -> Path | None:
    """The outbox, else the first capture journal, that holds data sealed under the outbox key; None if none does."""
    if _outbox_holds_data(outbox_path):
        return outbox_path
    journals = sorted(journal_dir.glob("*.journal")) if journal_dir.is_dir() else []
    return next((journal for journal in journals if journal.stat().st_size > 0), None)


def _read_key(path: Path) -> bytes:
    key = read_secret_file(path)
    if len(key) != KEY_BYTES:
        raise KeyFileError(f"{path}: expected a {KEY_BYTES}-byte key, found {len(key)} bytes")
    return key


def find_outbox_key(
    key_path: Path, outbox_path: Path, journal_dir: Path, environ: Mapping[str, str] | None = None
) -> StoreKey | None:
    """The key the store opens with, changing nothing; None for a store with no key and nothing sealed yet.

    Raises StoreMissing when the key is gone from a store that holds sealed data, and OutboxKeyError
    when neither the configured key nor the new key of a committed rotation opens it.
    """
    source = outbox_key_source(key_path, environ)
    next_path = next_key_path(key_path)
    if source.path.exists():
        key = _read_key(source.path)
        if canary_opens(outbox_path, key) is not False:
            return StoreKey(key, source, source.path)
    if next_path.exists():
        new = read_secret_file(next_path)
        if len(new) == KEY_BYTES and canary_opens(outbox_path, new):
            return StoreKey(new, source, next_path)
    if source.path.exists():
        raise OutboxKeyError(wrong_key_message(outbox_path, source, next_path))
    sealed = sealed_data(outbox_path, journal_dir)
    if sealed is not None:
        raise StoreMissing(missing_key_message(key_path, sealed))
    return None


def read_outbox_key(config: AgentConfig, environ: Mapping[str, str] | None = None) -> StoreKey:
    """The key that opens the configured store, changing nothing; StoreMissing if there is none yet."""
    found = find_outbox_key(config.key_path, config.outbox_path, config.journal_dir, environ)
    if found is None:
        raise StoreMissing(f"no outbox key at {config.key_path}: the agent has not run with this data directory yet")
    return found


def require_store(config: AgentConfig, environ: Mapping[str, str] | None = None) -> StoreKey:
    """The key that opens the store; StoreMissing unless the data directory holds an outbox and its key."""
    data_dir = config.agent_data_dir
    if not data_dir.is_dir():
        raise StoreMissing(
            f"data directory {data_dir} does not exist: no agent has run with it (check agent.data_dir,"
            " or the file given with --config)"
        )
    if not config.outbox_path.exists():
        raise StoreMissing(
            f"no outbox at {config.outbox_path}: the agent has not run with this data directory yet"
            " (start it: `systemctl start edge-agent`)"
        )
    return read_outbox_key(config, environ)
