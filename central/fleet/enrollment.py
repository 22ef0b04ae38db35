"""Enrollment tokens: single use, bound to a store, expiring; only their digest is stored."""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta

from sqlalchemy import insert
from sqlalchemy.orm import Session

from central import clock
from central.fleet.models import EnrollToken
from shared.crypto import token_digest

MAX_BODY = 16 * 1024
STORE_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


TOKEN_PREFIX = "cdpet_"  # noqa: S105 - a label, not a secret


def issue_token(session: Session, store_id: str, ttl_hours: float, *, now: datetime | None = None) -> str:
    """Create a single-use enrollment token for ``store_id``; only its digest is stored."""
    if not STORE_ID_RE.match(store_id):
        raise ValueError(f"store id {store_id!r} must be 1-32 characters of A-Z, a-z, 0-9, _ . -")
    if ttl_hours <= 0:
        raise ValueError("the token lifetime must be positive")
    now = now or clock.system_clock()
    # The prefix names what the secret is (for people and secret scanners) and keeps the token from
    # starting with "-", which command lines would take for an option.
    token = TOKEN_PREFIX + secrets.token_urlsafe(24)
    session.execute(
        insert(EnrollToken).values(
            token_digest=token_digest(token),
            store_id=store_id,
            created_at=now,
            expires_at=now + timedelta(hours=ttl_hours),
        )
    )
    return token


def new_device_id() -> str:
    """A fresh device id: ``dev_`` and 16 hex digits."""
    return "dev_" + secrets.token_hex(8)
