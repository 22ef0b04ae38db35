"""Numbers in requests and on the command line: ids and counts, bounded by what the database holds.

Flask's ``int`` converter, argparse's ``type=int`` and ``int()`` accept any number of digits, while a
BIGINT holds at most 2^63-1: SQLite cannot bind a larger integer and PostgreSQL refuses it, so an id
or an offset past it ended a request in a 500 and a command in a traceback. Most ids are INTEGER
columns, which PostgreSQL holds in 32 bits: it refuses to bind 2^31 to one ("integer out of range"),
so their bound is 2^31-1 (:func:`id_limit` reads it from the column). Past the bound no row exists:
a path does not match (404; ``<int32:...>`` for an INTEGER id, ``<int:...>`` for a BIGINT one), a
query parameter is a 400 naming its range, and a command's argument is a usage error naming its
range (exit 2).
"""

from __future__ import annotations

import argparse

from flask import request
from sqlalchemy import BigInteger
from sqlalchemy.orm import QueryableAttribute
from werkzeug.routing import IntegerConverter, Map

from central.errors import ApiError

MAX_ROW_ID = 2**63 - 1
MAX_INTEGER_ID = 2**31 - 1  # an INTEGER column's on PostgreSQL


def _decimal_up_to(highest: int) -> str:
    """A regular expression for the decimal numbers from 0 to ``highest``: fewer digits, or as many and
    smaller at the first digit that differs; for 127, ``\\d{1,2}|[0-0]\\d{2}|1[0-1]\\d{1}|12[0-6]\\d{0}|127``."""
    digits = str(highest)
    shorter = [rf"\d{{1,{len(digits) - 1}}}"] if len(digits) > 1 else []
    lower = [rf"{digits[:i]}[0-{int(d) - 1}]\d{{{len(digits) - i - 1}}}" for i, d in enumerate(digits) if d != "0"]
    return "(?:" + "|".join([*shorter, *lower, digits]) + ")"


class RowIdConverter(IntegerConverter):
    """``<int:...>`` for central's routes: a non-negative integer no larger than a BIGINT."""

    highest = MAX_ROW_ID

    def __init__(self, url_map: Map, fixed_digits: int = 0, min: int | None = None, max: int | None = None) -> None:
        bound = self.highest if max is None else max
        super().__init__(url_map, fixed_digits=fixed_digits, min=min, max=bound)
        # A larger number does not match the path at all, so it is a 404 for every method: refused only
        # after matching, it would be a 405 where a rule for another method shares the path.
        if not fixed_digits:
            self.regex = _decimal_up_to(bound)


class IntegerIdConverter(RowIdConverter):
    """``<int32:...>``: the id of a row whose id column is an INTEGER (``customers.id``), at most 2^31-1."""

    highest = MAX_INTEGER_ID


CONVERTERS = {"int": RowIdConverter, "int32": IntegerIdConverter}
"""The URL converters of central's routes, by name."""


def id_limit(column: QueryableAttribute[int]) -> int:
    """The largest id ``column`` (``Customer.id``) holds: 2^63-1 for a BIGINT, 2^31-1 for an INTEGER.

    PostgreSQL stores an INTEGER in 32 bits and refuses a larger number; SQLite holds 64 everywhere,
    but the schema is the same on both.
    """
    return MAX_ROW_ID if isinstance(column.type, BigInteger) else MAX_INTEGER_ID


def whole_number(text: str, highest: int = MAX_ROW_ID) -> int | None:
    """``text`` as a whole number from 0 to ``highest`` written in ASCII digits, else None.

    ``str.isdigit`` also says yes to ``²`` and ``١٢``, which ``int()`` then refuses or reads.
    """
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(highest)):
        return None
    value = int(text)
    return value if value <= highest else None


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


class WholeNumber:
    """An argparse ``type``: a whole number from ``lowest`` to ``highest``, else a usage error naming the range."""

    def __init__(self, lowest: int, highest: int = MAX_ROW_ID) -> None:
        self.lowest, self.highest = lowest, highest

    def __call__(self, text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = self.lowest - 1
        if not self.lowest <= value <= self.highest:
            raise argparse.ArgumentTypeError(
                f"must be a whole number from {self.lowest} to {self.highest}; got {text!r}"
            )
        return value


def id_argument(column: QueryableAttribute[int]) -> WholeNumber:
    """An argparse ``type`` for ids of ``column`` (``Customer.id``): from 1 to :func:`id_limit`."""
    return WholeNumber(1, id_limit(column))


ROW_COUNT = WholeNumber(1)
"""An argparse ``type`` for how many rows a command lists (``--limit``)."""
