"""Numbers in requests: ids in paths and integers in query strings, bounded by what the database holds.

Flask's ``int`` converter and ``int()`` accept any number of digits, while a BIGINT holds at most
2^63-1: SQLite cannot bind a larger integer and PostgreSQL refuses it, so an id or an offset past it
ended a request in a 500. Past that bound no row exists: a path does not match (404) and a query
parameter is a 400 naming its range.
"""

from __future__ import annotations

from flask import request
from werkzeug.routing import IntegerConverter, Map

from central.errors import ApiError

MAX_ROW_ID = 2**63 - 1


class RowIdConverter(IntegerConverter):
    """``<int:...>`` for central's routes: a non-negative integer no larger than a BIGINT."""

    def __init__(self, url_map: Map, fixed_digits: int = 0, min: int | None = None, max: int | None = None) -> None:
        super().__init__(url_map, fixed_digits=fixed_digits, min=min, max=MAX_ROW_ID if max is None else max)


def int_param(name: str, default: int, lowest: int, highest: int = MAX_ROW_ID) -> int:
    """The query parameter ``name`` as an integer from ``lowest`` to ``highest``, or ``default`` when absent;
    anything else is a 400 naming the range."""
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = lowest - 1
    if not lowest <= value <= highest:
        bound = f"between {lowest} and {highest}" if highest < MAX_ROW_ID else f"at least {lowest}"
        raise ApiError(400, "invalid_request", f"{name} must be an integer {bound}")
    return value
