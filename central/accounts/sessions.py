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

from central.accounts.models import ConsoleSession, PendingLogin, UserStore
from central.db import rows_changed
from central.models import User

# last_seen_at is rewritten at most this often, so a busy page does not write on every request.
TOUCH_EVERY = timedelta(seconds=30)
# How long a login whose password was right waits for its one-time code before the password is asked again.
PENDING_FOR = timedelta(minutes=5)


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
    two_step: bool  # the user passed two-step sign-in in this session


def digest(token: str) -> str:
    """The stored form of a session token."""
    return hashlib.sha256(token.encode()).hexdigest()


def start(db: Session, user: User, *, now: datetime, remote_addr: str, two_step: bool = False) -> str:
    """Open a session for ``user`` (``two_step``: after a one-time code) and return the token for the cookie;
    the caller commits."""
    token = secrets.token_urlsafe(32)
    db.add(
        ConsoleSession(
            token_hash=digest(token),
            user_id=user.id,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            last_seen_at=now,
            remote_addr=remote_addr[:64],
            two_step=two_step,
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
        two_step=bool(found.two_step),
    )


def end(db: Session, token_hash: str) -> None:
    """End one session (logout); the caller commits."""
    db.execute(delete(ConsoleSession).where(ConsoleSession.token_hash == token_hash))


def end_all(db: Session, user_id: int) -> int:
    """End every session of a user (password reset, disabling), and any login of theirs waiting for a code;
    the caller commits. Returns how many sessions ended."""
    end_pending(db, user_id)
    return rows_changed(db.execute(delete(ConsoleSession).where(ConsoleSession.user_id == user_id)))


def passed_two_step(db: Session, token_hash: str, user_id: int) -> int:
    """Note that this session's user has just set up two-step sign-in in it, and end their other sessions
    (opened by the password alone); the caller commits. Returns how many others ended."""
    db.execute(update(ConsoleSession).where(ConsoleSession.token_hash == token_hash).values(two_step=True))
    others = delete(ConsoleSession).where(ConsoleSession.user_id == user_id, ConsoleSession.token_hash != token_hash)
    return rows_changed(db.execute(others))


def purge(db: Session, *, now: datetime, limits: Limits) -> int:
    """Delete sessions past either limit, and logins left waiting for a code; the caller commits. Returns how
    many sessions went."""
    db.execute(delete(PendingLogin).where(PendingLogin.created_at < now - PENDING_FOR))
    statement = delete(ConsoleSession).where(
        (ConsoleSession.last_seen_at < now - limits.idle) | (ConsoleSession.created_at < now - limits.absolute)
    )
    return rows_changed(db.execute(statement))


def start_pending(db: Session, user: User, *, now: datetime, remote_addr: str) -> str:
    """Hold a login whose password was right until its one-time code comes; returns the token for its cookie.
    The caller commits."""
    token = secrets.token_urlsafe(32)
    db.add(PendingLogin(token_hash=digest(token), user_id=user.id, created_at=now, remote_addr=remote_addr[:64]))
    return token


def pending_user(db: Session, token: str, *, now: datetime) -> User | None:
    """The active user whose login ``token`` holds, if it has not expired; None otherwise."""
    if not token or len(token) > 128:
        return None
    row = db.execute(
        select(PendingLogin, User)
        .join(User, User.id == PendingLogin.user_id)
        .where(PendingLogin.token_hash == digest(token))
    ).first()
    if row is None:
        return None
    pending, user = row
    if now - pending.created_at > PENDING_FOR or user.disabled_at is not None:
        return None
    return user


def finish_pending(db: Session, token: str) -> None:
    """The code came (or the login was given up): the held login goes. The caller commits."""
    db.execute(delete(PendingLogin).where(PendingLogin.token_hash == digest(token)))


def end_pending(db: Session, user_id: int) -> None:
    """Drop every login of a user waiting for a code (a reset, a new password, disabling). The caller commits."""
    db.execute(delete(PendingLogin).where(PendingLogin.user_id == user_id))
