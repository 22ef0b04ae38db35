"""Console users: create, list, disable and enable, reset a password, check a login. Every change is audited.

Disabling a user or giving them a new password ends all of their sessions in the same transaction.
Enabling a disabled user lets them log in again with the password they had.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from central import audit
from central.accounts import passwords, sessions
from central.accounts.models import UserStore
from central.accounts.roles import ROLES, STORE_MANAGER
from central.accounts.throttle import clear_account
from central.models import User
from central.stores import known_stores, unknown_stores_message

USERNAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}\Z")
STORE_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}\Z")


class AccountError(ValueError):
    """A request about accounts that cannot be done, with a message that says why."""


@dataclass(frozen=True, slots=True)
class UserSummary:
    """A user as listings show it."""

    id: int
    username: str
    role: str
    stores: tuple[str, ...]
    created_at: datetime
    last_login_at: datetime | None
    disabled_at: datetime | None


def _find(db: Session, username: str) -> User:
    user = db.scalars(select(User).where(User.username == username)).first()
    if user is None:
        raise AccountError(f"no user {username!r}")
    return user


def add(
    db: Session, username: str, role: str, password: str, *, stores: tuple[str, ...] = (), now: datetime, actor: str
) -> User:
    """Create a user; a store manager needs at least one store, no other role takes any. Caller commits."""
    if not USERNAME_RE.match(username):
        raise AccountError("the username must be 1-64 characters of A-Z, a-z, 0-9, _ . @ -")
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    if role == STORE_MANAGER and not stores:
        raise AccountError("a store manager needs at least one store (--store S001)")
    if role != STORE_MANAGER and stores:
        raise AccountError("only store managers are limited to stores")
    _check_stores(db, stores)
    try:
        passwords.check_policy(password, username)
    except passwords.PasswordError as exc:
        raise AccountError(str(exc)) from None
    taken = db.scalar(select(func.count()).select_from(User).where(User.username == username))
    if taken:
        raise AccountError(f"user {username!r} already exists")
    user = User(username=username, password_hash=passwords.hash_password(password), role=role, created_at=now)
    db.add(user)
    db.flush()
    db.add_all(UserStore(user_id=user.id, store_id=s) for s in sorted(set(stores)))
    audit.record(db, at=now, actor=actor, action="user.create", subject=username, detail={"role": role})
    return user


def _check_stores(db: Session, stores: tuple[str, ...]) -> None:
    """Refuse a store id that is not one, or one central has never heard of (``s001`` for ``S001``):
    its manager would see empty pages with nothing saying why."""
    bad = [s for s in stores if not STORE_RE.match(s)]
    if bad:
        raise AccountError(f"not a store id: {bad[0]!r}")
    unknown = sorted(set(stores) - known_stores(db, stores))
    if unknown:
        raise AccountError(unknown_stores_message(unknown))


def set_stores(db: Session, username: str, stores: tuple[str, ...], *, now: datetime, actor: str) -> tuple[str, ...]:
    """Make a store manager's stores exactly ``stores``; their sessions end so the new scope holds at once.

    Returns the stores they had. Caller commits.
    """
    user = _find(db, username)
    if user.role != STORE_MANAGER:
        raise AccountError(f"{username!r} is a {user.role} user: only store managers are limited to stores")
    if not stores:
        raise AccountError("a store manager needs at least one store (--store S001)")
    _check_stores(db, stores)
    had = tuple(db.scalars(select(UserStore.store_id).where(UserStore.user_id == user.id).order_by(UserStore.store_id)))
    db.execute(delete(UserStore).where(UserStore.user_id == user.id))
    db.add_all(UserStore(user_id=user.id, store_id=s) for s in sorted(set(stores)))
    ended = sessions.end_all(db, user.id)
    detail = {"from": list(had), "to": sorted(set(stores)), "sessions_ended": ended}
    audit.record(db, at=now, actor=actor, action="user.stores", subject=username, detail=detail)
    return had


def listing(db: Session) -> list[UserSummary]:
    """Every user, by name."""
    stores: dict[int, list[str]] = {}
    for user_id, store_id in db.execute(select(UserStore.user_id, UserStore.store_id).order_by(UserStore.store_id)):
        stores.setdefault(user_id, []).append(store_id)
    return [
        UserSummary(u.id, u.username, u.role, tuple(stores.get(u.id, ())), u.created_at, u.last_login_at, u.disabled_at)
        for u in db.scalars(select(User).order_by(User.username))
    ]


def summary(db: Session, username: str) -> UserSummary | None:
    """One user as listings show it, or None if there is no such user."""
    user = db.scalars(select(User).where(User.username == username)).first()
    if user is None:
        return None
    stores = tuple(
        db.scalars(select(UserStore.store_id).where(UserStore.user_id == user.id).order_by(UserStore.store_id))
    )
    return UserSummary(user.id, user.username, user.role, stores, user.created_at, user.last_login_at, user.disabled_at)


def disable(db: Session, username: str, *, now: datetime, actor: str) -> int:
    """Disable a user and end their sessions; returns how many sessions ended. Caller commits."""
    user = _find(db, username)
    if user.disabled_at is None:
        user.disabled_at = now
    ended = sessions.end_all(db, user.id)
    audit.record(db, at=now, actor=actor, action="user.disable", subject=username, detail={"sessions_ended": ended})
    return ended


def enable(db: Session, username: str, *, now: datetime, actor: str) -> bool:
    """Let a disabled user log in again, with the password they had; False if they were not disabled. Caller commits."""
    user = _find(db, username)
    if user.disabled_at is None:
        return False
    disabled_at = user.disabled_at
    user.disabled_at = None
    audit.record(
        db, at=now, actor=actor, action="user.enable", subject=username, detail={"disabled_at": disabled_at.isoformat()}
    )
    return True


def reset_password(db: Session, username: str, password: str, *, now: datetime, actor: str) -> int:
    """Give a user a new password, end their sessions and lift their throttle. Caller commits."""
    try:
        passwords.check_policy(password, username)
    except passwords.PasswordError as exc:
        raise AccountError(str(exc)) from None
    user = _find(db, username)
    user.password_hash = passwords.hash_password(password)
    ended = sessions.end_all(db, user.id)
    clear_account(db, username)
    audit.record(
        db, at=now, actor=actor, action="user.password_reset", subject=username, detail={"sessions_ended": ended}
    )
    return ended


def exists(db: Session, username: str) -> bool:
    """Whether a user of this exact name exists, enabled or not."""
    return db.scalar(select(User.id).where(User.username == username).limit(1)) is not None


def check_login(db: Session, username: str, password: str) -> User | None:
    """The active user if ``password`` is theirs, else None; as slow for unknown or disabled names.

    A legacy hash is replaced by an Argon2 one on success (the caller commits).
    """
    user = db.scalars(select(User).where(User.username == username)).first()
    if user is None:
        passwords.verify(passwords.dummy_hash(), password)
        return None
    if not passwords.verify(user.password_hash, password) or user.disabled_at is not None:
        return None
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
    return user
