"""The local days a report page is asked for (``?from=2026-11-01&to=2026-11-30``)."""

from __future__ import annotations

from datetime import date

from flask import request
from flask_babel import gettext as _


def days_asked(default: tuple[date, date]) -> tuple[date, date, str | None]:
    """``from`` and ``to`` (either may be left out for ``default``'s); ``default`` and why, when one is no date."""
    first, last = default
    try:
        if request.args.get("from"):
            first = date.fromisoformat(request.args["from"])
        if request.args.get("to"):
            last = date.fromisoformat(request.args["to"])
    except ValueError:
        return *default, _("日期的格式应为 2026-11-30。")
    return first, last, None
