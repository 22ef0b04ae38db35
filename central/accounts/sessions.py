"""Server-side console sessions: a random token in the cookie, its SHA-256 in ``console_sessions``.

A session ends when it has been idle longer than the idle limit, when it is older than the absolute
limit, at logout, and when its user is disabled or gets a new password (every row of theirs goes).
Because the row is read on every request, an ended session is refused by every central instance
on the same database at once; a cookie captured before logout is worthless after it.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from central.accounts.models import ConsoleSession, UserStore
from central.db import rows_changed
from central.models import User

# last_seen_at is rewritten at most this often, so a busy page does not write on every request.
TOUCH_EVERY = timedelta(seconds=30)


@dataclass(frozen=True, slots=True)
class Limits:
    """How long a session may sit idle, and how long it may live at all."""

    idle: timedelta
    absolute: timedelta


@dataclass(frozen=True, slots=True)
class Active:
    """A live session: who, with which role and stores, and the CSRF token its forms must carry."""

    token_hash: str
    user_id: int
    username: str
    role: str
    stores: tuple[str, ...]
    csrf_token: str
    created_at: datetime


def digest(token: str) -> str:
    """The stored form of a session token."""
    return hashlib.sha256(token.encode()).hexdigest()


def start(db: Session, user: User, *, now: datetime, remote_addr: str) -> str:
    """Open a session for ``user`` and return the token for the cookie; the caller commits."""
    token = secrets.token_urlsafe(32)
    db.add(
        ConsoleSession(
            token_hash=digest(token),
            user_id=user.id,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            last_seen_at=now,
            remote_addr=remote_addr[:64],
        )
    )
    return token


class WriteNeeded(Exception):
    """A read-only :func:`resume` found a session due a write (its idle time to note, or its end)."""


def resume(db: Session, token: str, *, now: datetime, limits: Limits, read_only: bool = False) -> Active | None:
    """The live session behind ``token``, or None; an expired one is deleted on the way.

    The caller commits (the session's last-seen time may have moved). With ``read_only``, a session
    that is due a write raises WriteNeeded instead, and nothing is written.
    """
    if not token or len(token) > 128:
        return None
    key = digest(token)
    row = db.execute(
        select(ConsoleSession, User)
        .join(User, User.id == ConsoleSession.user_id)
        .where(ConsoleSession.token_hash == key)
    ).first()
    if row is None:
        return None
    found, user = row
    expired = now - found.last_seen_at > limits.idle or now - found.created_at > limits.absolute
    if read_only and (expired or user.disabled_at is not None or now - found.last_seen_at >= TOUCH_EVERY):
        raise WriteNeeded(key)
    if expired or user.disabled_at is not None:
        db.execute(delete(ConsoleSession).where(ConsoleSession.token_hash == key))
        return None
    if now - found.last_seen_at >= TOUCH_EVERY:
        db.execute(update(ConsoleSession).where(ConsoleSession.token_hash == key).values(last_seen_at=now))
    stores = tuple(
        db.scalars(select(UserStore.store_id).where(UserStore.user_id == user.id).order_by(UserStore.store_id))
    )
    return Active(
        token_hash=key,
        user_id=user.id,
        username=user.username,
        role=user.role,
        stores=stores,
        csrf_token=found.csrf_token,
        created_at=found.created_at,
    )


def end(db: Session, token_hash: str) -> None:
    """End one session (logout); the caller commits."""
    db.execute(delete(ConsoleSession).where(ConsoleSession.token_hash == token_hash))


def end_all(db: Session, user_id: int) -> int:
    """End every session of a user (password reset, disabling); the caller commits. Returns how many."""
    return rows_changed(db.execute(delete(ConsoleSession).where(ConsoleSession.user_id == user_id)))


def purge(db: Session, *, now: datetime, limits: Limits) -> int:
    """Delete sessions past either limit; the caller commits. Returns how many went."""
    statement = delete(ConsoleSession).where(
        (ConsoleSession.last_seen_at < now - limits.idle) | (ConsoleSession.created_at < now - limits.absolute)
    )
    return rows_changed(db.execute(statement))
