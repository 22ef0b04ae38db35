"""CSV files that appear whole or not at all, and cells that no spreadsheet runs as formulas.

Every CSV central writes (segment and identity exports, tags and statistics, import reports,
trigger lists) is opened by someone in Excel or WPS sooner or later, and much of what is in it
comes from outside: a member's name from the app, a source's own event ids, a legacy file's
member numbers. A cell such as ``=HYPERLINK("http://...","领取")`` or ``=cmd|' /C calc'!A0``
would run as a formula there ("CSV injection", https://owasp.org/www-community/attacks/CSV_Injection).
So every cell goes through :func:`spreadsheet_cell`, which writes such text behind an apostrophe,
the mark spreadsheets read as "this is text" and do not show. Numbers stay as they are, signs
included (``+8613812345678``, ``-12.50``): a spreadsheet reads them as numbers, never as code.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

# What a formula starts with, and the blanks a spreadsheet skips before looking for it.
_FORMULA = frozenset("=+-@")
_BLANKS = " \t\r\n\u00a0\u3000"
_LEADS = _FORMULA | frozenset(_BLANKS)
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*")


def spreadsheet_cell(value: Any) -> Any:
    """``value`` as a CSV cell: text that a spreadsheet would read as a formula gets a leading apostrophe."""
    if value.__class__ is not str or not value or value[0] not in _LEADS:
        return value
    text = value.lstrip(_BLANKS)
    if not text or text[0] not in _FORMULA or _NUMBER.fullmatch(text):
        return value
    return "'" + value


class SpreadsheetWriter:
    """A :func:`csv.writer` whose every cell goes through :func:`spreadsheet_cell`."""

    def __init__(self, out: TextIO, lineterminator: str = "\n") -> None:
        self._writer = csv.writer(out, lineterminator=lineterminator)

    def writerow(self, row: Iterable[Any]) -> None:
        self._writer.writerow([spreadsheet_cell(value) for value in row])


def write_csv(path: Path, header: list[str], rows: Iterable[list[Any]]) -> int:
    """Write a CSV next to ``path`` and move it into place when complete; return the rows written."""
    partial = path.with_name(path.name + ".partial")
    count = 0
    with partial.open("w", encoding="utf-8", newline="") as out:
        writer = SpreadsheetWriter(out)
        writer.writerow(header)
        for row in rows:
            writer.writerow(row)
            count += 1
    os.replace(partial, path)
    return count
