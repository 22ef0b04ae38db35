"""Audit rows for what a console user does: who, what, on which subject, marked as done through the console."""

from __future__ import annotations

from typing import Any

from central import audit, clock
from central.accounts import web
from central.db import get_session


def record_audit(action: str, subject: str = "", **detail: Any) -> None:
    """Write an audit row for this console user (the caller commits it with the work)."""
    active = web.current()
    audit.record(
        get_session(),
        at=clock.now(),
        actor=active.username if active else "anonymous",
        action=action,
        subject=subject,
        detail={"via": "console", **detail},
    )
