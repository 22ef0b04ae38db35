"""The audit trail: who read or changed what, written in the same transaction as a change itself.

The log is append-only and hash-chained: each row stores the hash of the row before it
(``prev_hash``) and a SHA-256 over its own content and that (``row_hash``). Appending takes a lock
first (a transaction-scoped advisory lock on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` already
serializes writers), so rows written by several central instances still form one chain.
``verify`` walks the chain in id order and names the first row whose content was changed, or
whose predecessor was deleted or moved. Rows from before the chain existed (empty hashes) may only
come first. Cutting rows off the end leaves a shorter valid chain: ``verify`` prints the count and
the head hash so an operator can record them elsewhere and compare (``--expect-head``).
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session

from central.models import AuditLog, table

_log = table(AuditLog)
# pg_advisory_xact_lock key for appends: "audit" in ASCII.
_LOCK_KEY = 0x6175646974


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def row_digest(prev_hash: str, at: datetime, actor: str, action: str, subject: str, detail: Any) -> str:
    """The hash a row with this content and this predecessor must carry."""
    moment = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    content = _canonical([prev_hash, moment, actor, action, subject, detail])
    return hashlib.sha256(content.encode()).hexdigest()


def cli_actor(environ: Mapping[str, str] | None = None) -> str:
    """Who ran a ``central-server`` command, as audit rows name them: ``cli:`` and the login name.

    Behind ``sudo`` that is the operator who typed it (``SUDO_USER``), not root; otherwise the
    process's own user. It names, it does not prove: anyone who can run the command can set both.
    """
    env = os.environ if environ is None else environ
    name = env.get("SUDO_USER", "").strip()
    if not name:
        try:
            name = getpass.getuser()
        except (OSError, KeyError):  # no login name in the environment and no passwd entry (a container)
            name = f"uid-{os.getuid()}"
    return f"cli:{name}"[:128]


def record(
    session: Session,
    *,
    at: datetime,
    actor: str,
    action: str,
    subject: str = "",
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one audit row; the caller commits it together with what it describes.

    A request that only reads (its transaction begun read-only, see ``central.db.READ_ONLY``) cannot
    write: its row is appended and committed at once in a transaction of its own, before the caller
    answers, so what it shows is never sent unrecorded.
    """
    # The transaction begun read-only, or about to be: a page's session reads only, from its first
    # statement (read_only_session), even when nothing has been read before this row.
    if session.connection().get_execution_options().get("central_read_only"):
        with Session(session.get_bind().execution_options(central_read_only=False)) as writer:
            _append(writer, at=at, actor=actor, action=action, subject=subject, detail=detail)
            writer.commit()
        return
    _append(session, at=at, actor=actor, action=action, subject=subject, detail=detail)


def _append(
    session: Session, *, at: datetime, actor: str, action: str, subject: str, detail: dict[str, Any] | None
) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    # Stored exactly as it will read back, so the hash checks out later.
    clean = None if detail is None else json.loads(_canonical(detail))
    actor, subject, action = actor[:128], subject[:255], action[:64]
    prev = session.scalar(select(_log.c.row_hash).order_by(_log.c.id.desc()).limit(1)) or ""
    digest = row_digest(prev, at, actor, action, subject, clean)
    session.execute(
        insert(_log).values(
            at=at, actor=actor, action=action, subject=subject, detail=clean, prev_hash=prev, row_hash=digest
        )
    )


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of a chain walk: rows checked, the head hash, and the first problem if any."""

    rows: int
    legacy_rows: int
    head: str
    bad_id: int | None = None
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.bad_id is None


def _rows(session: Session) -> Iterator[Any]:
    columns = (_log.c.id, _log.c.at, _log.c.actor, _log.c.action, _log.c.subject, _log.c.detail)
    statement = select(*columns, _log.c.prev_hash, _log.c.row_hash).order_by(_log.c.id)
    yield from session.execute(statement.execution_options(yield_per=5000))


def listing(session: Session, *, since: datetime | None = None, action: str = "", actor: str = "") -> Iterator[Any]:
    """The log's rows in id order, read a batch at a time: since a moment, of one action, by one actor."""
    statement = select(_log.c.id, _log.c.at, _log.c.actor, _log.c.action, _log.c.subject, _log.c.detail)
    if since is not None:
        statement = statement.where(_log.c.at >= since)
    if action:
        statement = statement.where(_log.c.action == action)
    if actor:
        statement = statement.where(_log.c.actor == actor)
    yield from session.execute(statement.order_by(_log.c.id).execution_options(yield_per=1000))


def row_json(row: Any) -> dict[str, Any]:
    """An audit row as ``audit list --json`` writes it: the log's own fields, the time in UTC."""
    moment = row.at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return {
        "id": row.id,
        "at": moment,
        "actor": row.actor,
        "action": row.action,
        "subject": row.subject,
        "detail": row.detail,
    }


def verify(session: Session) -> Verdict:
    """Walk the whole log in id order and report the first row that breaks the chain."""
    prev, count, legacy, chained = "", 0, 0, False
    for row in _rows(session):
        count += 1
        if not row.row_hash and not row.prev_hash:
            if chained:
                return Verdict(count, legacy, prev, row.id, "row has no hash after the chain began (rewritten)")
            legacy += 1
            continue
        chained = True
        if row.prev_hash != prev:
            return Verdict(
                count,
                legacy,
                prev,
                row.id,
                "previous-row hash does not match: a row before it was deleted, inserted or moved",
            )
        if row_digest(row.prev_hash, row.at, row.actor, row.action, row.subject, row.detail) != row.row_hash:
            return Verdict(count, legacy, prev, row.id, "content does not match its hash: the row was changed")
        prev = row.row_hash
    return Verdict(count, legacy, prev)
