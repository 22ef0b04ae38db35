"""Login throttling: failed logins counted in the database, per account and per client address.

The counters live in ``login_failures`` so every central instance sharing the database sees the
same numbers (an in-process limiter would let an attacker multiply the budget by the instance
count). A key that reached its limit within the window refuses logins until the window, counted
from the first failure, has passed; a successful login clears the counter it was counted on. The
account key is the name as typed, so an unknown name is throttled exactly like a real one.

An attempt from a browser the account logged in from before (its device cookie,
:mod:`central.accounts.devices`) counts on that browser's own key instead of the account's, with
the same limit: a stranger guessing the account's password locks out browsers the account never
used, never the one its owner uses (OWASP's device cookies).

A refused attempt writes no audit row: it adds one to the counter of each key that refused it, so
``failures`` past the limit is the number of attempts refused in that window. The audit log gets
one ``login_throttled`` row when a key reaches its limit (:func:`failed` reports which did).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, delete, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from central.accounts.models import LoginFailures
from central.config import CentralConfig
from central.models import table

_failures = table(LoginFailures)


@dataclass(frozen=True, slots=True)
class Rules:
    """How many failures each kind of key may have within ``window``."""

    per_account: int
    per_address: int
    window: timedelta

    @classmethod
    def of(cls, config: CentralConfig) -> Rules:
        """The ``console.login_*`` settings."""
        return cls(
            per_account=config.console_login_failures_per_account,
            per_address=config.console_login_failures_per_address,
            window=timedelta(minutes=config.console_login_window_minutes),
        )


def name_hash(secret: bytes, username: str) -> str:
    """A login name no account has, as the audit log and ``user throttled`` show it: 16 hex digits of
    an HMAC-SHA256 under the server's secret key, the same for the same name in any case."""
    digest = hmac.new(secret, b"login-name\0" + username.strip().lower().encode(), hashlib.sha256)
    return digest.hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Block:
    """A key refusing logins now: its kind and value, failures counted, refusals since, and until when."""

    kind: str
    value: str
    failures: int
    refused: int
    until: datetime


def blocks(db: Session, *, now: datetime, rules: Rules) -> list[Block]:
    """Every key at its limit within its window, the one blocked longest first."""
    rows = db.execute(
        select(_failures.c.key, _failures.c.failures, _failures.c.window_start)
        .where(_failures.c.window_start > now - rules.window)
        .order_by(_failures.c.window_start)
    )
    out = []
    for key, failures, start in rows:
        limit = rules.per_address if kind(key) == "address" else rules.per_account
        if failures >= limit:
            out.append(Block(kind(key), key.split(":", 1)[1], limit, failures - limit, start + rules.window))
    return out


def keys(username: str, remote_addr: str, device: str | None = None) -> tuple[str, str]:
    """The attempt's own key (its browser's, given the ``device`` it logged in from before, else the
    account's) and its address key."""
    own = f"device:{device[:57]}" if device else f"account:{username.strip().lower()[:64]}"
    return own, f"address:{remote_addr[:64]}"


def blocked(
    db: Session, username: str, remote_addr: str, *, now: datetime, rules: Rules, device: str | None = None
) -> bool:
    """True if either key already used up its failures within the window."""
    own, address = keys(username, remote_addr, device)
    rows = db.execute(
        select(_failures.c.key, _failures.c.failures).where(
            _failures.c.key.in_((own, address)), _failures.c.window_start > now - rules.window
        )
    )
    limits = {own: rules.per_account, address: rules.per_address}
    return any(failures >= limits[key] for key, failures in rows)


def kind(key: str) -> str:
    """What a key counts: "account", "device" or "address"."""
    return key.split(":", 1)[0]


def failed(
    db: Session, username: str, remote_addr: str, *, now: datetime, rules: Rules, device: str | None = None
) -> list[str]:
    """Count one failure against both keys (a window that ran out starts afresh); the caller commits.

    Returns the keys this failure brought to their limit: throttling starts for them now.
    """
    insert = postgresql.insert if db.get_bind().dialect.name == "postgresql" else sqlite.insert
    stale = _failures.c.window_start <= now - rules.window
    at = literal(now, type_=_failures.c.window_start.type)
    reached = []
    for key in keys(username, remote_addr, device):
        statement = insert(_failures).values(key=key, failures=1, window_start=now)
        counted = db.execute(
            statement.on_conflict_do_update(
                index_elements=[_failures.c.key],
                set_={
                    "failures": case((stale, 1), else_=_failures.c.failures + 1),
                    "window_start": case((stale, at), else_=_failures.c.window_start),
                },
            ).returning(_failures.c.failures)
        ).scalar_one()
        if counted == (rules.per_address if kind(key) == "address" else rules.per_account):
            reached.append(key)
    return reached


def refused(
    db: Session, username: str, remote_addr: str, *, now: datetime, rules: Rules, device: str | None = None
) -> None:
    """Count a refused attempt on the keys that refused it (those at their limit within the window); the
    caller commits. Their windows keep their start, so counting a refusal never lengthens a block."""
    own, address = keys(username, remote_addr, device)
    current = _failures.c.window_start > now - rules.window
    for key, limit in ((own, rules.per_account), (address, rules.per_address)):
        db.execute(
            update(_failures)
            .where(_failures.c.key == key, current, _failures.c.failures >= limit)
            .values(failures=_failures.c.failures + 1)
        )


def succeeded(db: Session, username: str, device: str | None = None) -> None:
    """Clear the counter a successful login was counted on (its browser's, or the account's); the caller commits.

    The owner logging in from their own browser leaves the strangers' count on the account as it is.
    """
    db.execute(delete(_failures).where(_failures.c.key == keys(username, "", device)[0]))


def clear_account(db: Session, username: str) -> None:
    """Lift an account's throttle (an administrator reset its password); the caller commits."""
    succeeded(db, username)
