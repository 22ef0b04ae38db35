"""The server's notion of "now": a callable returning an aware UTC datetime, injectable for tests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from flask import current_app

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """The wall clock in UTC."""
    return datetime.now(UTC)


def now() -> datetime:
    """The current time according to the running app's clock (``app.config["CLOCK"]``)."""
    clock: Clock = current_app.config.get("CLOCK", system_clock)
    return clock()
