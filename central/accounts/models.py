"""Accounts' tables: the stores a store manager runs, server-side console sessions, login failure counters.

The ``users`` table itself is a platform table (``central.models.User``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
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


class LoginFailures(Base):
    """Failed logins counted per key (``account:NAME`` or ``address:IP``) within a window."""

    __tablename__ = "login_failures"

    key: Mapped[str] = mapped_column(String(160), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
