"""Who is calling: signed requests from enrolled devices, and console users (``central.accounts.web``).

Device requests carry ``X-CDP-Device``, ``X-CDP-Timestamp``, ``X-CDP-Nonce`` and ``X-CDP-Signature``
(an Ed25519 signature over method, path with query, device, timestamp, nonce and the SHA-256 of the
body as sent). Central accepts a timestamp within ``auth.max_clock_skew`` of its own clock and each
(device, nonce) once: the nonce is written to ``request_nonces`` and committed before the request
does anything else, so a replay is refused on every instance sharing the database, and nonces
older than twice the window (when no replay of theirs could pass the timestamp check any more) are
purged at most once a minute.

Every way of failing gets the same 401 body, and an unknown, revoked or retired device costs what
a known device with a bad signature does (its signature is checked against a dummy key), so a
caller can probe neither which devices exist nor what state they are in. Device state is read from
the database on every request, never cached: a revocation holds on the next request everywhere.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from flask import current_app, request
from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from central import access_log, clock
from central.accounts import passwords, web
from central.accounts.roles import ADMIN
from central.db import rows_changed
from central.errors import ApiError
from central.fleet.models import Device, RequestNonce
from central.models import User, table
from shared.crypto import (
    HEADER_DEVICE,
    HEADER_NONCE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    new_signing_key,
    unb64,
    verify_request,
)
from shared.wire import parse_time

F = TypeVar("F", bound=Callable[..., Any])

UNAUTHORIZED_MESSAGE = "authentication failed"
_MAX_HEADER = 256
_NONCE_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}\Z")
PURGE_EVERY = 60.0
_PURGE_EXTENSION = "central.auth.purge"
# Verified against when the device is unknown, revoked or retired, so that path does the same work.
_DUMMY_KEY = new_signing_key()[1]
_devices = table(Device)
_nonces = table(RequestNonce)


@dataclass(frozen=True, slots=True)
class AuthenticatedDevice:
    """An active device whose signature on this request checked out, and the request's signed parts."""

    device_id: str
    store_id: str
    timestamp: str = ""
    nonce: str = ""


def _unauthorized() -> ApiError:
    return ApiError(401, "unauthorized", UNAUTHORIZED_MESSAGE)


def signed_path() -> str:
    """The request's path as the device signed it: with the query string, if there is one."""
    query = request.query_string.decode("latin-1")
    return f"{request.path}?{query}" if query else request.path


def _within_window(timestamp: str, now: datetime, window: float) -> bool:
    try:
        sent = parse_time(timestamp)
    except (ValueError, TypeError, OverflowError):
        return False
    return abs((now - sent).total_seconds()) <= window


def authenticate_device(db: Session, body: bytes) -> AuthenticatedDevice:
    """Check the request's signature over ``body`` (exactly as sent); raise a 401 ApiError otherwise.

    On success the request's nonce is committed as seen (a second use of it fails here).
    """
    device_id = request.headers.get(HEADER_DEVICE, "")
    timestamp = request.headers.get(HEADER_TIMESTAMP, "")
    nonce = request.headers.get(HEADER_NONCE, "")
    signature = request.headers.get(HEADER_SIGNATURE, "")
    if not device_id or not timestamp or not signature or not _NONCE_RE.match(nonce):
        raise _unauthorized()
    if max(len(device_id), len(timestamp), len(signature)) > _MAX_HEADER:
        raise _unauthorized()
    window = float(current_app.config["CENTRAL"].auth_max_clock_skew)
    now = clock.now()
    if not _within_window(timestamp, now, window):
        raise _unauthorized()
    row = db.execute(
        select(_devices.c.store_id, _devices.c.public_key).where(
            _devices.c.device_id == device_id, _devices.c.status == "active"
        )
    ).first()
    try:
        public_key = _DUMMY_KEY if row is None else unb64(row.public_key)
    except ValueError:
        public_key = _DUMMY_KEY
    valid = verify_request(
        public_key, request.method, signed_path(), device_id, timestamp, body, signature, nonce=nonce
    )
    if row is None or not valid:
        db.rollback()
        raise _unauthorized()
    if not _remember_nonce(db, device_id, nonce, now):
        db.rollback()
        raise _unauthorized()
    _purge_nonces(db, now, window)
    db.commit()
    access_log.attribute(f"device:{device_id}")
    return AuthenticatedDevice(device_id=device_id, store_id=row.store_id, timestamp=timestamp, nonce=nonce)


def _remember_nonce(db: Session, device_id: str, nonce: str, now: datetime) -> bool:
    """Record the nonce; False if this device used it before."""
    dialect = db.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(_nonces)
        .values(device_id=device_id, nonce=nonce, seen_at=now)
        .on_conflict_do_nothing()
        .returning(_nonces.c.nonce)
    )
    # RETURNING rather than rowcount: SQLAlchemy reports -1 for this statement on psycopg.
    return db.execute(statement).first() is not None


class _PurgeSchedule:
    """When this app last purged old nonces, by its clock (one DELETE a minute is plenty)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.next_at: datetime | None = None

    def due(self, now: datetime) -> bool:
        with self.lock:
            # A clock set back by more than a period starts the schedule afresh instead of stalling it.
            if self.next_at is not None and now < self.next_at <= now + timedelta(seconds=PURGE_EVERY):
                return False
            self.next_at = now + timedelta(seconds=PURGE_EVERY)
            return True


def _purge_nonces(db: Session, now: datetime, window: float) -> None:
    schedule = current_app.extensions.setdefault(_PURGE_EXTENSION, _PurgeSchedule())
    if schedule.due(now):
        purge_nonces(db, now - timedelta(seconds=2 * window))


def purge_nonces(db: Session, before: datetime) -> int:
    """Delete nonces seen before ``before``; the caller commits. Returns how many went."""
    return rows_changed(db.execute(delete(_nonces).where(_nonces.c.seen_at < before)))


def hash_password(password: str) -> str:
    """The stored form of a console password (Argon2id)."""
    return passwords.hash_password(password)


def current_user(db: Session) -> User | None:
    """The logged-in console user, or None (``db`` kept for callers; the request's session is used)."""
    del db
    return web.current_user()


def login_required(view: F) -> F:
    """Administrators only, until a view declares its roles with ``central.accounts.web.roles``.

    Others get a 401 JSON body on /api/ (403 when logged in with another role), the login page elsewhere.
    """
    return web.roles(ADMIN)(view)


def actor_name() -> str:
    """Who the audit log should name for this request: the console user, else "anonymous"."""
    active = web.current()
    return active.username if active is not None else "anonymous"
