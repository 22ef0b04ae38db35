"""Rotating the outbox key: re-seal the outbox and the capture journals under a new key, crash-safe.

``edge-agent rotate-key`` runs while the agent is stopped (it takes the data directory's lock).
The steps, and what a kill at each point leaves:

1. The new key is written to ``outbox.key.next`` (0600, fsynced). Nothing uses it yet.
2. Each journal is re-sealed into ``<name>.journal.rekey`` and fsynced. The originals are untouched.
3. One SQLite transaction re-seals every event, quarantine row and kept secret, and replaces the
   key-check canary. **This commit is the switch**: before it the store is under the old key,
   after it under the new one.
4. Each ``.rekey`` journal replaces its original.
5. ``outbox.key.next`` replaces ``outbox.key`` (with a systemd credential, the technician installs
   the new key as the credential instead: the command prints how).

:func:`resolve_outbox_key`, called whenever the outbox is opened, finishes or undoes an interrupted
rotation: the canary says which key the database is under; leftovers of a rotation that did not
commit are deleted, those of one that did are put in place. So a kill at any moment leaves a store
that opens, with the old key or the new, and loses nothing. It makes a key only for a store that
holds nothing sealed yet; a store whose key is gone or wrong is refused (keys.py says which).
See docs/decisions/0011-outbox-key-rotation.md.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from cryptography.exceptions import InvalidTag

from edge_agent.config import AgentConfig
from edge_agent.credentials import KeySource, load_outbox_key, outbox_key_source
from edge_agent.journal import CaptureJournal
from edge_agent.keys import NEXT_SUFFIX, StoreMissing, find_outbox_key, next_key_path
from edge_agent.outbox import KEY_CHECK, Outbox
from shared.crypto import KEY_BYTES, KeyFileError, Sealer, replace_secret_file

log = logging.getLogger(__name__)

__all__ = ["NEXT_SUFFIX", "REKEY_SUFFIX", "resolve_outbox_key", "rotate_key", "run_rotate_key"]
REKEY_SUFFIX = ".rekey"
PAGE_ROWS = 1000


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _journals(journal_dir: Path) -> list[Path]:
    return sorted(journal_dir.glob("*.journal")) if journal_dir.is_dir() else []


def resolve_outbox_key(
    key_path: Path, outbox_path: Path, journal_dir: Path, environ: Mapping[str, str] | None = None
) -> bytes:
    """The key the store is sealed under, after finishing or undoing an interrupted rotation.

    A new key is made only for a store that holds nothing sealed yet. Raises StoreMissing when the
    key of a store that does is gone, and OutboxKeyError when no key at hand opens it.
    """
    found = find_outbox_key(key_path, outbox_path, journal_dir, environ)
    if found is not None and found.rotation_pending:
        _finish(found.key, found.source, key_path, journal_dir)
        return found.key
    # The store is under the configured key (or new): leftovers of a rotation that had not committed
    # are deleted (and with a credential that now holds the new key, so is the file copy of it).
    key = load_outbox_key(key_path, environ)[0] if found is None else found.key
    for leftover in journal_dir.glob("*" + REKEY_SUFFIX) if journal_dir.is_dir() else []:
        leftover.unlink()
    next_key_path(key_path).unlink(missing_ok=True)
    return key


def _finish(new: bytes, source: KeySource, key_path: Path, journal_dir: Path) -> None:
    """Steps 4 and 5, after the database committed to ``new``."""
    for rekeyed in journal_dir.glob("*" + REKEY_SUFFIX) if journal_dir.is_dir() else []:
        os.replace(rekeyed, rekeyed.with_suffix(""))
    if journal_dir.is_dir():
        _fsync_dir(journal_dir)
    next_path = next_key_path(key_path)
    if source.from_credential:
        log.warning(
            "the outbox is under the new key in %s; install it as the systemd credential and delete the file: "
            "systemd-creds encrypt --name=outbox.key %s /etc/edge-agent/outbox.key.cred",
            next_path,
            next_path,
        )
        return
    os.replace(next_path, key_path)
    _fsync_dir(key_path.parent)
    log.info("outbox key rotation finished: %s holds the new key", key_path)


def _reseal_journal(path: Path, old: Sealer, new: Sealer) -> Path:
    """Step 2: the journal's records sealed under ``new`` in ``<path>.rekey``, fsynced."""
    source = path.name.removesuffix(".journal")
    reader = CaptureJournal(path, old, source, fsync=False)
    records = list(reader.replay(0))
    reader.close()
    target = path.with_name(path.name + REKEY_SUFFIX)
    target.unlink(missing_ok=True)
    writer = CaptureJournal(target, new, source, fsync=True)
    for offset, data in records:
        writer.append(offset, data)
    writer.close()
    return target


def _reseal_table(
    conn: sqlite3.Connection,
    table: str,
    key: str,
    columns: str,
    aad: Callable[[tuple], bytes],
    old: Sealer,
    new: Sealer,
) -> int:
    """Re-seal every row of ``table`` in pages; returns the rows done."""
    done = 0
    last: object = None
    while True:
        where = "" if last is None else f"WHERE {key} > ?"
        rows = conn.execute(
            f"SELECT {key}, {columns}, sealed FROM {table} {where} ORDER BY {key} LIMIT ?",  # noqa: S608
            (PAGE_ROWS,) if last is None else (last, PAGE_ROWS),
        ).fetchall()
        if not rows:
            return done
        updates = []
        for row in rows:
            try:
                plain = old.open(row[-1], aad(row))
            except InvalidTag:
                continue  # already unreadable: left as it is (the outbox quarantines it when met)
            updates.append((new.seal(plain, aad(row)), row[0]))
        conn.executemany(f"UPDATE {table} SET sealed = ? WHERE {key} = ?", updates)  # noqa: S608
        done += len(rows)
        last = rows[-1][0]


def rotate_key(
    key_path: Path,
    outbox_path: Path,
    journal_dir: Path,
    *,
    environ: Mapping[str, str] | None = None,
    on_step: Callable[[str], None] = lambda step: None,
) -> dict[str, int]:
    """Re-seal the outbox and the journals under a fresh key; returns what was re-sealed.

    The caller holds the data directory's lock. ``on_step`` is called between steps (tests kill
    the process there).
    """
    old_key = resolve_outbox_key(key_path, outbox_path, journal_dir, environ)
    source = outbox_key_source(key_path, environ)
    Outbox(outbox_path, Sealer(old_key), "").close()  # migrations, and the key check on an older store
    old, new_key = Sealer(old_key), os.urandom(KEY_BYTES)
    new = Sealer(new_key)
    next_path = next_key_path(key_path)
    replace_secret_file(next_path, new_key)
    on_step("new key written")
    for journal in _journals(journal_dir):
        _reseal_journal(journal, old, new)
    on_step("journals re-sealed")
    conn = sqlite3.connect(outbox_path, isolation_level=None, timeout=30)
    counts = {}
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA secure_delete=ON")
        conn.execute("BEGIN IMMEDIATE")
        counts["events"] = _reseal_table(conn, "events", "seq", "event_id", lambda r: r[1].encode(), old, new)
        on_step("events re-sealed")
        counts["quarantine"] = _reseal_table(
            conn, "quarantine", "id", "source", lambda r: b"quarantine:" + r[1].encode(), old, new
        )
        counts["secrets"] = _reseal_table(
            conn, "secrets", "name", "name", lambda r: b"secret:" + r[1].encode(), old, new
        )
        canary = new.seal(KEY_CHECK, b"key_check").hex()
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('key_check', ?)", (canary,))
        on_step("before commit")
        conn.execute("COMMIT")
        on_step("committed")
        # Old-key pages leave the WAL now rather than at some later checkpoint.
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.close()
    for journal in _journals(journal_dir):
        os.replace(journal.with_name(journal.name + REKEY_SUFFIX), journal)
        on_step("journal replaced")
    _finish(new_key, source, key_path, journal_dir)
    on_step("done")
    counts["journals"] = len(_journals(journal_dir))
    return counts


def run_rotate_key(config: AgentConfig) -> int:
    """`edge-agent rotate-key`: rotate under the data directory's lock and say what happened."""
    from edge_agent.agent import AlreadyRunning, lock_data_dir

    try:
        lock = lock_data_dir(config)
    except AlreadyRunning as exc:
        print(f"edge-agent: {exc}; stop it first (systemctl stop edge-agent)", file=sys.stderr)
        return 1
    try:
        counts = rotate_key(config.key_path, config.outbox_path, config.journal_dir)
    except (StoreMissing, KeyFileError) as exc:
        print(f"edge-agent: {exc}", file=sys.stderr)
        return 1
    finally:
        os.close(lock)
    print(
        f"re-sealed {counts['events']} events, {counts['quarantine']} quarantined inputs and "
        f"{counts['journals']} capture journals under a new key"
    )
    source = outbox_key_source(config.key_path)
    next_path = next_key_path(config.key_path)
    if source.from_credential:
        print(f"the new key is in {next_path}; install it as the service's credential, then delete that file:")
        print(f"  systemd-creds encrypt --name=outbox.key {next_path} /etc/edge-agent/outbox.key.cred")
    else:
        print(f"the new key is in {config.key_path}")
    return 0
