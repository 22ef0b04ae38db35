"""Two-step sign-in: a time-based one-time code (RFC 6238, as authenticator apps show it) after the password.

- A user enrols by scanning a QR code (or typing the secret) into an authenticator app and typing one
  code from it; only then is two-step sign-in on for them. Ten single-use recovery codes are shown once,
  at that moment, and stored as keyed hashes.
- The secret is stored sealed (AES-GCM) under a key derived from ``secret.key``, bound to the user's id,
  so a copy of the database alone does not give anyone the codes (decision 0100).
- A code is accepted for its own 30-second step and one step either side (clock drift); the step of the
  last code accepted is kept, and no code of that step or an earlier one is accepted again (RFC 6238 §5.2).
  The check and the note are one conditional UPDATE, so two instances cannot both accept one code.
"""

from __future__ import annotations

import base64
import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import pyotp
import segno
from cryptography.exceptions import InvalidTag
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from central import audit
from central.accounts import sessions
from central.accounts.models import RecoveryCode, TwoStep
from central.accounts.throttle import clear_account
from central.db import rows_changed
from central.models import User
from shared.crypto import Sealer, derive_key, keyed_hash

log = logging.getLogger(__name__)

STEP_SECONDS = 30  # RFC 6238's default, the only one authenticator apps all support
DRIFT_STEPS = 1  # a code from the step before or after is accepted too: phones' clocks drift
DIGITS = 6
RECOVERY_CODES = 10
# Letters and digits no one mistakes for another when reading them off paper (no 0/o, 1/l/i).
RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
RECOVERY_LENGTH = 12  # about 59 bits: out of reach of guessing within the login throttle
ISSUER = "Retail CDP"

_SECRET_PURPOSE = "cdp-two-step-secret-v1"  # noqa: S105 - an HKDF label, not a secret
_RECOVERY_PURPOSE = "cdp-two-step-recovery-v1"


class TwoStepError(ValueError):
    """A two-step request that cannot be done, with a message saying why."""


@dataclass(frozen=True, slots=True)
class State:
    """Where a user stands: on, half set up (shown a secret, no code typed yet) or off."""

    enabled: bool
    pending: bool
    recovery_left: int


def required_roles(setting: str) -> frozenset[str]:
    """The roles ``console.two_step_roles`` names (comma-separated)."""
    return frozenset(part.strip() for part in setting.split(",") if part.strip())


def new_secret() -> str:
    """A fresh 160-bit secret in base32, as RFC 4226 recommends and authenticator apps read it."""
    return base64.b32encode(secrets.token_bytes(20)).decode()


def grouped(secret: str) -> str:
    """The secret in groups of four for typing by hand: ``ABCD EFGH ...``."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def provisioning_uri(secret: str, username: str) -> str:
    """The ``otpauth://totp/...`` URI an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(name=username, issuer_name=ISSUER)


def qr_data_uri(uri: str) -> str:
    """A QR image of ``uri`` as an inline SVG data URI (no request leaves the page)."""
    return str(segno.make_qr(uri, error="m").svg_data_uri(scale=5, border=4))


def _sealer(secret_key: bytes) -> Sealer:
    return Sealer(derive_key(secret_key, _SECRET_PURPOSE))


def _aad(user_id: int) -> bytes:
    return f"user_two_step:{user_id}".encode()


def _open(row: TwoStep, secret_key: bytes) -> str | None:
    try:
        return _sealer(secret_key).open(row.secret_sealed, _aad(row.user_id)).decode()
    except InvalidTag:
        # Sealed under another secret.key (decision 0092 should have refused to start with it).
        log.warning("user %d's two-step secret does not open with this secret.key; `user reset-two-step`", row.user_id)
        return None


def _recovery_hash(secret_key: bytes, code: str) -> str:
    return keyed_hash(derive_key(secret_key, _RECOVERY_PURPOSE), code, length=64)


def _normalized_recovery(code: str) -> str:
    return "".join(ch for ch in code.lower() if ch.isalnum())


def new_recovery_code(choice: Callable[[str], str] = secrets.choice) -> str:
    """One recovery code, ``xxxx-xxxx-xxxx``."""
    raw = "".join(choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_LENGTH))
    return "-".join(raw[i : i + 4] for i in range(0, RECOVERY_LENGTH, 4))


def state(db: Session, user_id: int) -> State:
    """Whether two-step sign-in is on for a user, half set up, and how many recovery codes are unspent."""
    row = db.get(TwoStep, user_id)
    left = db.scalar(
        select(func.count())
        .select_from(RecoveryCode)
        .where(RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))
    )
    return State(
        enabled=row is not None and row.enabled_at is not None,
        pending=row is not None and row.enabled_at is None,
        recovery_left=int(left or 0),
    )


def enabled_user_ids(db: Session) -> set[int]:
    """The users with two-step sign-in on (for listings)."""
    return set(db.scalars(select(TwoStep.user_id).where(TwoStep.enabled_at.is_not(None))))


def start(db: Session, user: User, *, secret_key: bytes, now: datetime, secret: str | None = None) -> str:
    """Give the user a new secret to scan, not yet in force; returns it. Refused once two-step is on. Caller commits."""
    row = db.get(TwoStep, user.id)
    if row is not None and row.enabled_at is not None:
        raise TwoStepError("two-step sign-in is already on; turn it off first to set up another phone")
    chosen = secret or new_secret()
    sealed = _sealer(secret_key).seal(chosen.encode(), _aad(user.id))
    if row is None:
        db.add(TwoStep(user_id=user.id, secret_sealed=sealed, created_at=now, enabled_at=None, last_step=None))
    else:
        row.secret_sealed, row.created_at, row.last_step = sealed, now, None
    return chosen


def pending_secret(db: Session, user_id: int, *, secret_key: bytes) -> str | None:
    """The secret a user is being shown while setting up, or None if there is none (or it is already on)."""
    row = db.get(TwoStep, user_id)
    if row is None or row.enabled_at is not None:
        return None
    return _open(row, secret_key)


def _step_of(secret: str, code: str, now: datetime) -> int | None:
    """The time step ``code`` belongs to within the drift allowed around ``now``, or None."""
    code = code.strip().replace(" ", "")
    if len(code) != DIGITS or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
    current = totp.timecode(now)
    for step in range(current + DRIFT_STEPS, current - DRIFT_STEPS - 1, -1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def _use_step(db: Session, user_id: int, step: int) -> bool:
    """Note ``step`` as used unless it, or a later one, already was: False means a replayed code."""
    fresh = (TwoStep.last_step.is_(None)) | (TwoStep.last_step < step)
    changed = db.execute(
        update(TwoStep)
        .where(TwoStep.user_id == user_id, fresh)
        .values(last_step=step)
        .execution_options(synchronize_session=False)
    )
    return rows_changed(changed) == 1


def check_code(db: Session, user_id: int, code: str, *, secret_key: bytes, now: datetime) -> str | None:
    """How ``code`` signs the user in: "code" (a one-time code), "recovery" (a recovery code, now spent), or
    None (wrong, replayed, or two-step not on). The caller commits."""
    row = db.get(TwoStep, user_id)
    if row is None or row.enabled_at is None:
        return None
    secret = _open(row, secret_key)
    step = _step_of(secret, code, now) if secret is not None else None
    if step is not None:
        return "code" if _use_step(db, user_id, step) else None
    normalized = _normalized_recovery(code)
    if len(normalized) != RECOVERY_LENGTH:
        return None
    spent = db.execute(
        update(RecoveryCode)
        .where(
            RecoveryCode.user_id == user_id,
            RecoveryCode.code_hash == _recovery_hash(secret_key, normalized),
            RecoveryCode.used_at.is_(None),
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    return "recovery" if rows_changed(spent) == 1 else None


def confirm(db: Session, user: User, code: str, *, secret_key: bytes, now: datetime, actor: str) -> list[str] | None:
    """Switch two-step sign-in on if ``code`` comes from the secret being set up; returns the recovery codes
    to show once (None: the code is wrong, or nothing is being set up). The caller commits."""
    row = db.get(TwoStep, user.id)
    if row is None or row.enabled_at is not None:
        return None
    secret = _open(row, secret_key)
    step = _step_of(secret, code, now) if secret is not None else None
    if step is None or not _use_step(db, user.id, step):
        return None
    db.refresh(row)
    row.enabled_at = now
    codes = [new_recovery_code() for _ in range(RECOVERY_CODES)]
    db.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    db.add_all(
        RecoveryCode(user_id=user.id, code_hash=_recovery_hash(secret_key, _normalized_recovery(c))) for c in codes
    )
    audit.record(db, at=now, actor=actor, action="two_step.enable", subject=user.username)
    return codes


def turn_off(db: Session, user_id: int) -> bool:
    """Remove the user's secret and recovery codes; returns whether two-step sign-in was on. The caller
    commits and audits."""
    was_on = state(db, user_id).enabled
    db.execute(delete(TwoStep).where(TwoStep.user_id == user_id))
    db.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    return was_on


def reset(db: Session, username: str, *, now: datetime, actor: str) -> tuple[bool, int]:
    """An administrator's reset for a user who lost their phone: two-step off, sessions ended, throttle lifted.

    Returns whether it was on and how many sessions ended. At the next login the user signs in with the
    password and, if their role requires two-step sign-in, sets it up again before anything else. The
    caller commits.
    """
    user = db.scalars(select(User).where(User.username == username)).first()
    if user is None:
        raise TwoStepError(f"no user {username!r}")
    was_on = turn_off(db, user.id)
    ended = sessions.end_all(db, user.id)
    clear_account(db, username)
    detail = {"was_on": was_on, "sessions_ended": ended}
    audit.record(db, at=now, actor=actor, action="user.two_step_reset", subject=username, detail=detail)
    return was_on, ended
