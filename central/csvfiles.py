"""CSV files that appear whole or not at all: written beside their name, then moved into place."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def write_csv(path: Path, header: list[str], rows: Iterable[list[Any]]) -> int:
    """Write a CSV next to ``path`` and move it into place when complete; return the rows written."""
    partial = path.with_name(path.name + ".partial")
    count = 0
    with partial.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow(row)
            count += 1
    os.replace(partial, path)
    return count
