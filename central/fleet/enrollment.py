"""Enrollment tokens: single use, bound to a store, expiring, revocable; only their digest is stored.

A token is named in listings by the first 12 hex digits of its digest (its "id"), never by itself.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from central import audit, clock
from central.db import rows_changed
from central.fleet.models import EnrollToken
from shared.crypto import token_digest
from shared.wire import format_time

MAX_BODY = 16 * 1024
STORE_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,32}\Z")


TOKEN_PREFIX = "cdpet_"  # noqa: S105 - a label, not a secret
TOKEN_ID_CHARS = 12
TOKEN_ID_RE = re.compile(r"^[0-9a-f]{6,64}\Z")
DEVICE_PREFIX = "dev_"


class TokenError(ValueError):
    """A token id that matches no token, or more than one, or one that can no longer be revoked.

    ``reason`` is a stable code (``bad_token_id``, ``unknown_token``, ``ambiguous_token``,
    ``token_used``, ``token_changed``) and ``device_id`` the device a used token enrolled.
    """

    def __init__(self, message: str, reason: str, device_id: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.device_id = device_id


@dataclass(frozen=True, slots=True)
class TokenSummary:
    """An enrollment token as listings show it: never the token, only its id and state."""

    token_id: str
    store_id: str
    created_at: datetime
    expires_at: datetime
    state: str  # unused, used, expired, revoked
    used_at: datetime | None
    device_id: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "token_id": self.token_id,
            "store_id": self.store_id,
            "created_at": format_time(self.created_at),
            "expires_at": format_time(self.expires_at),
            "state": self.state,
            "used_at": None if self.used_at is None else format_time(self.used_at),
            "device_id": self.device_id,
        }


def token_state(used_at: datetime | None, revoked_at: datetime | None, expires_at: datetime, now: datetime) -> str:
    """``used``, ``revoked``, ``expired`` or ``unused``."""
    if used_at is not None:
        return "used"
    if revoked_at is not None:
        return "revoked"
    return "expired" if expires_at <= now else "unused"


def list_tokens(db: Session, now: datetime) -> list[TokenSummary]:
    """Every enrollment token, newest first."""
    rows = db.scalars(select(EnrollToken).order_by(EnrollToken.created_at.desc(), EnrollToken.id.desc()))
    return [
        TokenSummary(
            token_id=t.token_digest[:TOKEN_ID_CHARS],
            store_id=t.store_id,
            created_at=t.created_at,
            expires_at=t.expires_at,
            state=token_state(t.used_at, t.revoked_at, t.expires_at, now),
            used_at=t.used_at,
            device_id=t.device_id,
        )
        for t in rows
    ]


def revoke_token(db: Session, token_id: str, *, now: datetime, actor: str) -> TokenSummary:
    """Revoke the unused token whose id starts with ``token_id``; the caller commits."""
    token_id = token_id.strip().lower()
    if not TOKEN_ID_RE.match(token_id):
        raise TokenError(
            f"{token_id!r} is not a token id (6 or more hex digits, as `central-server tokens` shows)", "bad_token_id"
        )
    matches = list(db.scalars(select(EnrollToken).where(EnrollToken.token_digest.startswith(token_id)).limit(2)))
    if not matches:
        raise TokenError(f"no token with id {token_id} (list them with `central-server tokens`)", "unknown_token")
    if len(matches) > 1:
        raise TokenError(f"more than one token id starts with {token_id}; give more digits", "ambiguous_token")
    token = matches[0]
    state = token_state(token.used_at, token.revoked_at, token.expires_at, now)
    if state == "used":
        raise TokenError(
            f"token {token_id} was already used by device {token.device_id}; revoke the device instead "
            f"(`central-server revoke-device {token.device_id}`)",
            "token_used",
            token.device_id,
        )
    if state != "revoked":
        changed = rows_changed(
            db.execute(
                update(EnrollToken)
                .where(EnrollToken.id == token.id, EnrollToken.used_at.is_(None), EnrollToken.revoked_at.is_(None))
                .values(revoked_at=now)
            )
        )
        if changed != 1:
            raise TokenError(f"token {token_id} was used while it was being revoked", "token_changed")
        audit.record(
            db,
            at=now,
            actor=actor,
            action="enroll_token.revoke",
            subject=token.store_id,
            detail={"token_id": token.token_digest[:TOKEN_ID_CHARS]},
        )
    return TokenSummary(
        token.token_digest[:TOKEN_ID_CHARS], token.store_id, token.created_at, token.expires_at, "revoked", None, None
    )


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
    return DEVICE_PREFIX + secrets.token_hex(8)


def page_tokens(
    db: Session, now: datetime, *, before: int | None = None, stores: list[str] | None = None, limit: int = 50
) -> tuple[list[TokenSummary], int | None]:
    """Tokens newest first, older than the cursor ``before`` (a row id); the next page's cursor or None."""
    query = select(EnrollToken).order_by(EnrollToken.id.desc()).limit(limit + 1)
    if before is not None:
        query = query.where(EnrollToken.id < before)
    if stores is not None:
        query = query.where(EnrollToken.store_id.in_(sorted(stores)))
    rows = list(db.scalars(query))
    more = len(rows) > limit
    rows = rows[:limit]
    tokens = [
        TokenSummary(
            t.token_digest[:TOKEN_ID_CHARS],
            t.store_id,
            t.created_at,
            t.expires_at,
            token_state(t.used_at, t.revoked_at, t.expires_at, now),
            t.used_at,
            t.device_id,
        )
        for t in rows
    ]
    return tokens, rows[-1].id if more and rows else None
