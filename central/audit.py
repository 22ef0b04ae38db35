"""The audit trail: who read or changed what, written in the same transaction as the work itself."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from central.models import AuditLog


def record(
    session: Session,
    *,
    at: datetime,
    actor: str,
    action: str,
    subject: str = "",
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one audit row; the caller commits it together with what it describes."""
    session.execute(
        insert(AuditLog).values(at=at, actor=actor[:128], action=action, subject=subject[:255], detail=detail)
    )
