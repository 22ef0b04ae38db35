"""Who is calling: signed requests from enrolled devices, and console users logged in by session.

Device requests carry ``X-CDP-Device``, ``X-CDP-Timestamp`` and ``X-CDP-Signature`` (an Ed25519
signature over method, path, device, timestamp and the SHA-256 of the body as sent). Every way of
failing gets the same 401 body, so a caller cannot probe which devices exist or are revoked.
"""

from __future__ import annotations

import functools
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from flask import g, redirect, request, session, url_for
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from central.db import get_session
from central.errors import ApiError
from central.fleet.models import Device
from central.models import User, table
from shared.crypto import HEADER_DEVICE, HEADER_SIGNATURE, HEADER_TIMESTAMP, unb64, verify_request

F = TypeVar("F", bound=Callable[..., Any])

UNAUTHORIZED_MESSAGE = "authentication failed"
_MAX_HEADER = 256


@dataclass(frozen=True, slots=True)
class AuthenticatedDevice:
    """An active device whose signature on this request checked out."""

    device_id: str
    store_id: str


def _unauthorized() -> ApiError:
    return ApiError(401, "unauthorized", UNAUTHORIZED_MESSAGE)


def authenticate_device(db: Session, body: bytes) -> AuthenticatedDevice:
    """Check the request's signature over ``body`` (exactly as sent); raise a 401 ApiError otherwise."""
    device_id = request.headers.get(HEADER_DEVICE, "")
    timestamp = request.headers.get(HEADER_TIMESTAMP, "")
    signature = request.headers.get(HEADER_SIGNATURE, "")
    if not device_id or not timestamp or not signature:
        raise _unauthorized()
    if max(len(device_id), len(timestamp), len(signature)) > _MAX_HEADER:
        raise _unauthorized()
    devices = table(Device)
    row = db.execute(
        select(devices.c.store_id, devices.c.public_key).where(
            devices.c.device_id == device_id, devices.c.status == "active"
        )
    ).first()
    if row is None:
        raise _unauthorized()
    try:
        public_key = unb64(row.public_key)
    except ValueError:
        raise _unauthorized() from None
    if not verify_request(public_key, request.method, request.path, device_id, timestamp, body, signature):
        raise _unauthorized()
    return AuthenticatedDevice(device_id=device_id, store_id=row.store_id)


def hash_password(password: str) -> str:
    """The stored form of a console password."""
    return generate_password_hash(password)


@functools.cache
def _dummy_hash() -> str:
    """A hash of a random password, checked for unknown usernames so both failures take as long."""
    return generate_password_hash(secrets.token_urlsafe(16))


def check_credentials(db: Session, username: str, password: str) -> User | None:
    """The user if ``password`` is theirs, else None; takes as long for unknown names."""
    user = db.scalars(select(User).where(User.username == username)).first()
    if user is None:
        check_password_hash(_dummy_hash(), password)
        return None
    return user if check_password_hash(user.password_hash, password) else None


def login(user: User) -> None:
    """Start a fresh console session for ``user`` (a new session id and CSRF token)."""
    session.clear()
    session.permanent = True
    session["user_id"] = user.id
    session["csrf"] = secrets.token_urlsafe(32)


def logout() -> None:
    """End the console session."""
    session.clear()


def current_user(db: Session) -> User | None:
    """The logged-in console user, or None."""
    if "current_user" in g:
        return cast(User | None, g.current_user)
    user_id = session.get("user_id")
    user = db.get(User, user_id) if isinstance(user_id, int) else None
    g.current_user = user
    return user


def login_required(view: F) -> F:
    """Let logged-in users through; others get a 401 JSON body on /api/, the login page elsewhere."""

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if current_user(get_session()) is None:
            if request.path.startswith("/api/"):
                raise ApiError(401, "unauthorized", "login required")
            return redirect(url_for("console.login", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return cast(F, wrapped)


def csrf_token() -> str:
    """The session's CSRF token, created on first use; forms embed it in a hidden field."""
    token = session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def csrf_valid() -> bool:
    """True if the submitted form carries this session's CSRF token."""
    expected = session.get("csrf")
    submitted = request.form.get("csrf_token", "")
    return isinstance(expected, str) and hmac.compare_digest(expected.encode(), submitted.encode())


def actor_name() -> str:
    """Who the audit log should name for this request: the console user, else "anonymous"."""
    user = current_user(get_session())
    return user.username if user is not None else "anonymous"
