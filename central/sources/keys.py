"""API keys of online sources (the member app's backend, the mini-program, the e-commerce platform).

A key is shown once when issued (``central-server source-key --source NAME``); central keeps only
its SHA-256. A request names its source in the path and presents the key as
``Authorization: Bearer <key>``; the digest is compared in constant time with every active key of
that source, and every way of failing gets the same 401 as device authentication. Revoking a key
is permanent; a source may hold several keys at once so that one can be rotated without a gap.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from central.sources.models import SourceKey

KEY_PREFIX = "cdpsk_"
_HINT_CHARS = 12
# Longer than any key we issue, short enough that hashing it costs nothing.
MAX_KEY_CHARS = 128


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """A source key as listed: never the key itself."""

    id: int
    source: str
    hint: str
    created_at: datetime
    created_by: str
    revoked_at: datetime | None


def digest(key: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def issue_key(db: Session, source: str, now: datetime, created_by: str) -> tuple[int, str]:
    """Create a key for ``source``; return its id and the key (shown once, never stored)."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = SourceKey(
        source=source, key_digest=digest(key), hint=key[:_HINT_CHARS], created_at=now, created_by=created_by
    )
    db.add(row)
    db.flush()
    return row.id, key


def revoke_key(db: Session, key_id: int, now: datetime) -> KeyInfo | None:
    """Revoke one key for good; None if there is no such key. Revoking twice keeps the first time."""
    db.execute(update(SourceKey).where(SourceKey.id == key_id, SourceKey.revoked_at.is_(None)).values(revoked_at=now))
    row = db.get(SourceKey, key_id)
    return None if row is None else _info(row)


def list_keys(db: Session) -> list[KeyInfo]:
    """Every key ever issued, by source then age."""
    return [_info(r) for r in db.scalars(select(SourceKey).order_by(SourceKey.source, SourceKey.id))]


def _info(row: SourceKey) -> KeyInfo:
    return KeyInfo(row.id, row.source, row.hint, row.created_at, row.created_by, row.revoked_at)


def key_matches(db: Session, source: str, presented: str) -> bool:
    """True if ``presented`` is an active key of ``source``; the digests are compared in constant time."""
    if not presented or len(presented) > MAX_KEY_CHARS:
        return False
    wanted = digest(presented).encode()
    stored = db.scalars(
        select(SourceKey.key_digest).where(SourceKey.source == source, SourceKey.revoked_at.is_(None))
    ).all()
    matched = False
    for candidate in stored:
        # No early exit: the time taken does not say which of a source's keys came close.
        matched |= hmac.compare_digest(candidate.encode(), wanted)
    return matched
