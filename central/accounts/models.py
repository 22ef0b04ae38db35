"""Accounts' tables: stores a store manager runs, console sessions, login failure counters, two-step sign-in.

The ``users`` table itself is a platform table (``central.models.User``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, LargeBinary, String, false
from sqlalchemy.orm import Mapped, mapped_column

from central.models import Base, UTCDateTime


class UserStore(Base):
    """A store a store manager may see; other roles have no rows here."""

    __tablename__ = "user_stores"

    user_id: Mapped[int] = mapped_column(Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    store_id: Mapped[str] = mapped_column(String(32), primary_key=True)


class ConsoleSession(Base):
    """A logged-in console session. The cookie holds a random token; only its SHA-256 is stored here.

    Deleting the row ends the session everywhere (logout, password reset, disabling the user).
    """

    __tablename__ = "console_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    remote_addr: Mapped[str] = mapped_column(String(64), default="")
    # True once the user passed two-step sign-in in this session (a code at login, or enrolling in it);
    # a session opened by the password alone is confined to enrolment when the user's role requires it.
    two_step: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class LoginFailures(Base):
    """Failed logins counted per key (``account:NAME`` or ``address:IP``) within a window."""

    __tablename__ = "login_failures"

    key: Mapped[str] = mapped_column(String(160), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)


class TwoStep(Base):
    """A user's authenticator secret, sealed under a key derived from ``secret.key`` (never stored in clear).

    ``enabled_at`` is None while the user has been shown the secret but has not yet typed a code from it.
    ``last_step`` is the RFC 6238 time step of the last code accepted: no code of that step or an earlier one
    is accepted again.
    """

    __tablename__ = "user_two_step"

    user_id: Mapped[int] = mapped_column(Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    secret_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_step: Mapped[int | None] = mapped_column(BigInteger)


class RecoveryCode(Base):
    """A single-use recovery code, as a keyed hash; ``used_at`` is set when it is spent."""

    __tablename__ = "user_recovery_codes"

    user_id: Mapped[int] = mapped_column(Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PendingLogin(Base):
    """A login whose password was right and whose one-time code is still to come; not a session.

    The browser holds a random token, this table its SHA-256; the row goes when the code passes or
    expires a few minutes after the password was typed.
    """

    __tablename__ = "console_pending_logins"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    remote_addr: Mapped[str] = mapped_column(String(64), default="")
