"""The product catalogue HQ loads from CSV: SKU, GTIN, name, category path and brand.

A file such as::

    sku,gtin,name,category,brand
    F900,6901234567892,Stage 1 formula 900 g,Baby > Formula > Stage 1,Feihe
    D12,,Diapers M 52,Baby/Diapers,Pampers

Category paths may separate their levels with ``>`` or ``/``; they are stored as ``Baby > Formula >
Stage 1``. A later load replaces a SKU's row. Sale lines whose SKU the catalogue does not hold are
counted in ``unknown_skus`` (ingest logs them and folds the log in bulk, and a load folds it first);
loading the catalogue takes the SKUs it now knows off that list (their past sales get their
categories at the next ``central-server recompute-tags``).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, delete, func, select

from central import bulk
from central.customers import statistics
from central.customers.models import Product, UnknownSku
from central.models import table

REQUIRED = ("sku", "name", "category")
OPTIONAL = ("gtin", "brand")
CHUNK = 5000
_LEVELS = re.compile(r"\s*[>/]\s*")
_GTIN = re.compile(r"^\d{8,14}\Z")
_LIMITS = {"sku": 64, "name": 256, "category": 255, "brand": 128}
# NUL (which PostgreSQL cannot store), bells, escapes: a broken export, not a product's name.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_products = table(Product)
_unknown = table(UnknownSku)
_COLUMNS = ("sku", "gtin", "name", "category", "brand", "loaded_at")


class CatalogError(ValueError):
    """A file that cannot be read as a catalogue at all (no header, missing columns, not CSV)."""


@dataclass(frozen=True, slots=True)
class Item:
    """One product row as the file gives it."""

    sku: str
    gtin: str | None
    name: str
    category: str
    brand: str | None


@dataclass
class LoadReport:
    """What one load did: rows read, products written, rows refused (line and reason), SKUs still unknown."""

    rows: int = 0
    loaded: int = 0
    refused: list[tuple[int, str]] = field(default_factory=list)
    newly_known: int = 0
    unknown_skus: int = 0
    unknown_lines: int = 0


def category_path(raw: str) -> str:
    """``Baby/Formula`` and ``Baby > Formula`` both become ``Baby > Formula``."""
    return " > ".join(level for level in _LEVELS.split(raw.strip()) if level)


def parse(lines: Iterable[str]) -> Iterator[tuple[int, Item | str]]:
    """(line number, item or the reason the row is refused) for each data row of a catalogue CSV."""
    reader = csv.DictReader(lines)
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        raise CatalogError(f"the header must name the columns {', '.join(REQUIRED)}; missing: {', '.join(missing)}")
    reader.fieldnames = header
    try:
        for row in reader:
            line = reader.line_num
            values = {k: (v or "").strip() for k, v in row.items() if isinstance(k, str)}
            yield line, _item(values)
    except csv.Error as exc:
        raise CatalogError(f"line {reader.line_num}: {exc}; the file is not CSV as exported") from None


def _item(values: dict[str, str]) -> Item | str:
    for name in REQUIRED:
        if not values.get(name):
            return f"{name} is empty"
    for name, limit in _LIMITS.items():
        if len(values.get(name, "")) > limit:
            return f"{name} is longer than {limit} characters"
        if _CONTROL.search(values.get(name, "")):
            return f"{name} contains control characters"
    gtin = values.get("gtin") or None
    if gtin is not None and not _GTIN.match(gtin):
        return "gtin must be 8 to 14 digits"
    category = category_path(values["category"])
    if not category:
        return "category has no level"
    return Item(values["sku"], gtin, values["name"], category, values.get("brand") or None)


def load(conn: Connection, lines: Iterable[str], now: datetime) -> LoadReport:
    """Write the catalogue's products (a repeated SKU: its last row wins) and recount unknown SKUs."""
    report = LoadReport()
    chunk: dict[str, Item] = {}
    for line, parsed in parse(lines):
        report.rows += 1
        if isinstance(parsed, str):
            report.refused.append((line, parsed))
            continue
        chunk[parsed.sku] = parsed
        if len(chunk) >= CHUNK:
            report.loaded += _write(conn, chunk, now)
            chunk = {}
    report.loaded += _write(conn, chunk, now)
    statistics.fold_unknown_skus(conn)
    known = select(_products.c.sku).where(_products.c.sku == _unknown.c.sku).exists()
    report.newly_known = conn.execute(delete(_unknown).where(known)).rowcount
    count, lines_total = conn.execute(select(func.count(), func.coalesce(func.sum(_unknown.c.lines), 0))).one()
    report.unknown_skus, report.unknown_lines = int(count), int(lines_total)
    return report


def _write(conn: Connection, items: dict[str, Item], now: datetime) -> int:
    if not items:
        return 0
    rows = [(i.sku, i.gtin, i.name, i.category, i.brand, now) for _, i in sorted(items.items())]
    updates = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS[1:])
    if conn.dialect.name == "postgresql":
        source, document = bulk.pg_source(_products, _COLUMNS, rows, conn.dialect)
        conn.exec_driver_sql(
            f"INSERT INTO products ({', '.join(_COLUMNS)}) {source} ON CONFLICT (sku) DO UPDATE SET {updates}",
            (document,),
        )
    else:
        marks = ", ".join("?" for _ in _COLUMNS)
        conn.exec_driver_sql(
            f"INSERT INTO products ({', '.join(_COLUMNS)}) VALUES ({marks})"  # noqa: S608 - our own names
            f" ON CONFLICT (sku) DO UPDATE SET {updates}",
            bulk.sqlite_rows(_products, _COLUMNS, rows, conn.dialect),
        )
    return len(rows)
