"""Fleet tables: enrolled store PCs, enrollment tokens, request nonces seen, and downlink documents."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, PrimaryKeyConstraint, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from central.models import Base, UTCDateTime


class Device(Base):
    """An enrolled edge agent and what central last heard from it.

    ``status`` is ``active``, ``revoked`` (refused from now on, e.g. a stolen PC) or ``retired``
    (taken out of service); only active devices authenticate.
    """

    __tablename__ = "devices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64), unique=True)
    store_id: Mapped[str] = mapped_column(String(32))
    public_key: Mapped[str] = mapped_column(String(64))
    hostname: Mapped[str] = mapped_column(String(255), default="")
    agent_version: Mapped[str] = mapped_column(String(64), default="")
    status: Mapped[str] = mapped_column(String(16), default="active")
    enrolled_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_seq: Mapped[int | None] = mapped_column(BigInteger)
    last_heartbeat: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # When the stored heartbeat arrived, and its seq: a heartbeat replaces it only with a higher seq.
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    heartbeat_seq: Mapped[int | None] = mapped_column(BigInteger)
    status_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status_reason: Mapped[str] = mapped_column(String(255), default="")
    key_rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class EnrollToken(Base):
    """A single-use enrollment token, stored only as its SHA-256 digest."""

    __tablename__ = "enroll_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    store_id: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    device_id: Mapped[str | None] = mapped_column(String(64), ForeignKey("devices.device_id"))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RequestNonce(Base):
    """A nonce a device signed a request with, kept for the clock-skew window and then purged.

    In the database rather than in memory so that every central instance refuses a replay.
    """

    __tablename__ = "request_nonces"
    __table_args__ = (
        PrimaryKeyConstraint("device_id", "nonce"),
        Index("ix_request_nonces_seen_at", "seen_at"),
    )

    device_id: Mapped[str] = mapped_column(String(64))
    nonce: Mapped[str] = mapped_column(String(64))
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime)


class DownlinkDocument(Base):
    """One published document for one store (or ``*``, every store); a null body marks a deletion.

    ``version`` rises across the whole table, so a store's combined version is the highest version
    among its own documents and the ``*`` ones.
    """

    __tablename__ = "downlink_documents"
    __table_args__ = (UniqueConstraint("store_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    store_id: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(BigInteger, unique=True)
    body: Mapped[Any | None] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_by: Mapped[str] = mapped_column(String(128))
