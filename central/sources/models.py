"""Tables of the sources domain: online sources' API keys and legacy member imports, row by row and run by run."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from central.models import Base, BigId, UTCDateTime


class SourceKey(Base):
    """An API key of one online source; only its SHA-256 is kept, and revoking it is permanent."""

    __tablename__ = "source_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(57), index=True)
    key_digest: Mapped[str] = mapped_column(String(64), unique=True)
    # The key's first characters, so an operator can tell keys apart in a listing.
    hint: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(64))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class MemberImport(Base):
    """One legacy member file imported with one mapping; ``digest`` covers both."""

    __tablename__ = "member_imports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    source: Mapped[str] = mapped_column(String(57))
    filename: Mapped[str] = mapped_column(String(255))
    operator: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    rows: Mapped[int | None] = mapped_column(Integer)


class ImportRow(Base):
    """What became of one row of an import, committed with the row's event; a rerun skips it."""

    __tablename__ = "import_rows"
    __table_args__ = (
        UniqueConstraint("import_id", "row"),
        # The import page counts rows by outcome from this index alone.
        Index("ix_import_rows_import_id_outcome", "import_id", "outcome"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    import_id: Mapped[int] = mapped_column(Integer, ForeignKey("member_imports.id"))
    row: Mapped[int] = mapped_column(Integer)
    event_pk: Mapped[int | None] = mapped_column(BigInteger)
    external_id: Mapped[str | None] = mapped_column(String(128))
    customer_id: Mapped[int | None] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)


class ImportRun(Base):
    """One run of an import (a rerun after a kill is another): rows done so far, and how it ended.

    ``rows_done`` is written in the transaction of each chunk, so it never runs ahead of the rows
    committed. ``status`` is ``running``, ``completed``, ``failed`` or ``interrupted`` (a later run of
    the same import found it still ``running``: the process was killed).
    """

    __tablename__ = "import_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    import_id: Mapped[int] = mapped_column(Integer, ForeignKey("member_imports.id"), index=True)
    operator: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    rows_total: Mapped[int] = mapped_column(Integer)
    rows_skipped: Mapped[int] = mapped_column(Integer)
    rows_done: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(String(500))
