"""CSV files that appear whole or not at all, owner-only, with cells that no spreadsheet runs as formulas.

Every CSV central writes (segment and identity exports, tags and statistics, import reports,
trigger lists) names customers, so each is created owner-only (0600) whatever the umask and the
directory it is written to (an operator's ``mkdir exp`` is 0755), and keeps that mode from its
first byte: it is written beside its final name and moved into place whole (:func:`open_private`).
Every one is also opened by someone in Excel or WPS sooner or later, and much of what is in it
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
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
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


@contextmanager
def open_private(path: Path) -> Iterator[TextIO]:
    """``path`` for writing UTF-8 text as a new owner-only (0600) file, moved into place when the block ends.

    The text goes to ``<path>.partial``, created afresh with mode 0600 (a partial file left by a
    killed run is removed first, never reused with its mode), and replaces ``path`` only once
    complete: an earlier file of that name stays as it was if writing fails. A device or a pipe
    (``/dev/stdout``) has no mode to protect and cannot be replaced; it is written as it is.
    """
    try:
        existing = os.stat(path)
    except FileNotFoundError:
        existing = None
    if existing is not None and not stat.S_ISREG(existing.st_mode) and not stat.S_ISDIR(existing.st_mode):
        with path.open("w", encoding="utf-8", newline="") as device:
            yield device
        return
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    # O_EXCL: a file (or a symlink) someone put there in between is refused, not written through.
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # a umask can only take bits away; this makes it exactly 0600 whatever it is
        out = os.fdopen(fd, "w", encoding="utf-8", newline="")
    except BaseException:
        os.close(fd)
        partial.unlink(missing_ok=True)
        raise
    try:
        with out:
            yield out
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, path)


def write_csv(path: Path, header: list[str], rows: Iterable[list[Any]]) -> int:
    """Write a CSV owner-only next to ``path`` and move it into place when complete; return the rows written."""
    count = 0
    with open_private(path) as out:
        writer = SpreadsheetWriter(out)
        writer.writerow(header)
        for row in rows:
            writer.writerow(row)
            count += 1
    return count
