"""Member tables: the member keys central certified, and the member scans stores reported."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from central.models import Base, BigId, UTCDateTime


class MemberKey(Base):
    """A member app's public key that central certified; revoking it puts it on every store's list."""

    __tablename__ = "member_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    member_id: Mapped[str] = mapped_column(String(64), index=True)
    fingerprint: Mapped[str] = mapped_column(String(16), unique=True)
    public_key: Mapped[str] = mapped_column(String(64))
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime)
    valid_until: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class MemberScan(Base):
    """A ``scan.member`` event a store accepted, and the receipt it was attached to.

    ``flag`` is set when the same code was accepted elsewhere too (``code_reused``): such a scan
    links nothing and waits for review; ``doubtful`` when the scan came right after a sale no one
    claimed (central.members.linking), so it links nothing either.
    """

    __tablename__ = "member_scans"
    __table_args__ = (
        Index("ix_member_scans_device_time", "device_id", "observed_at"),
        Index("ix_member_scans_code_digest", "code_digest"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_pk: Mapped[int] = mapped_column(BigInteger, unique=True)
    device_id: Mapped[str] = mapped_column(String(64))
    store_id: Mapped[str] = mapped_column(String(32))
    register: Mapped[str] = mapped_column(String(32), default="")
    member_id: Mapped[str] = mapped_column(String(64))
    code_digest: Mapped[str] = mapped_column(String(64))
    step: Mapped[int] = mapped_column(BigInteger)
    observed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    customer_id: Mapped[int | None] = mapped_column(Integer)
    receipt_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    flag: Mapped[str | None] = mapped_column(String(32))
