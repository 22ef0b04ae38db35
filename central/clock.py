"""The server's notion of "now": a callable returning an aware UTC datetime, injectable for tests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from flask import current_app

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """The wall clock in UTC."""
    return datetime.now(UTC)


def now() -> datetime:
    """The current time according to the running app's clock (``app.config["CLOCK"]``)."""
    clock: Clock = current_app.config.get("CLOCK", system_clock)
    return clock()


def offset_text(minutes: int) -> str:
    """A UTC offset in minutes as ISO 8601 writes it: +08:00."""
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def local_date(moment: datetime, timezone: str) -> date:
    """The calendar date at ``moment`` in the IANA ``timezone`` (birthdays, ages, occasions)."""
    return moment.astimezone(ZoneInfo(timezone)).date()


def today() -> date:
    """Today's date in ``triggers.timezone`` by the running app's clock."""
    return local_date(now(), current_app.config["CENTRAL"].triggers_timezone)
