"""The identity export for warehouses and audits: identifiers, events and customers as CSV files.

``identifiers.csv`` (type, value as stored, customer_id), ``events.csv`` (source or device,
event_id, customer_id) and ``customers.csv`` (the golden record: every live customer, with the
columns of the customers table). All three are read from one snapshot (a read-only transaction;
REPEATABLE READ on PostgreSQL), a page at a time by primary key, so memory stays flat whatever
the size. Customer ids are the live ones: a customer merged away is shown as its survivor; an
identifier or event that belongs to no customer (a removed identifier, one held back as suspicious,
an event that names no one) has an empty customer_id.
Personal values are masked (``138****5678``, last four characters) unless the export is unmasked.
Events of the agents' own bookkeeping (``agent.*``) are left out: they never name anyone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, and_, not_, select

from central.csvfiles import write_csv
from central.customers.sales import fen
from central.db import READ_ONLY
from central.identity.models import Customer, EventCustomer, Identifier
from central.ingest.models import Event
from central.privacy.models import not_erased
from central.sources.survivors import survivors
from shared.masking import mask_identifier
from shared.wire import format_time

PAGE = 10_000
FILES = ("identifiers.csv", "events.csv", "customers.csv")
# Golden-record columns that hold personal data, masked unless the export is unmasked.
PERSONAL_COLUMNS = frozenset({"name", "birthday", "phone", "email", "address", "postcode", "given_name", "family_name"})


@dataclass(frozen=True)
class ExportCounts:
    """Rows written to each file."""

    identifiers: int
    events: int
    customers: int


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, Decimal):
        return f"{fen(value):.2f}"
    return value


def mask_text(value: str) -> str:
    """A personal text shown by its first character only (王芳 -> 王*)."""
    return value[:1] + "*" * max(len(value) - 1, 1) if value else ""


def _pages(conn: Connection, query: Callable[[int], Any], size: int) -> Iterator[Sequence[Any]]:
    """Rows of ``query(last_id)`` ``size`` at a time; the first column of each row is the id paged on."""
    last = 0
    while True:
        rows = conn.execute(query(last).limit(size)).all()
        if not rows:
            return
        yield rows
        last = rows[-1][0]


def _identifier_rows(conn: Connection, unmasked: bool, size: int) -> Iterator[list[Any]]:
    def query(last: int) -> Any:
        return (
            select(Identifier.id, Identifier.kind, Identifier.value, Identifier.customer_id)
            .where(Identifier.id > last)
            .order_by(Identifier.id)
        )

    for page in _pages(conn, query, size):
        # A removed identifier (a tombstone) or one held back as suspicious belongs to no one.
        live = survivors(conn, [r.customer_id for r in page if r.customer_id is not None])
        for r in page:
            value = r.value if unmasked else mask_identifier(r.kind, r.value)
            owner = "" if r.customer_id is None else live.get(r.customer_id, r.customer_id)
            yield [r.kind, value, owner]


def _event_rows(conn: Connection, size: int) -> Iterator[list[Any]]:
    owner = EventCustomer.__table__

    def query(last: int) -> Any:
        return (
            select(Event.id, Event.device_id, Event.event_id, owner.c.customer_id)
            .outerjoin(owner, owner.c.event_pk == Event.id)
            .where(and_(Event.id > last, not_(Event.kind.startswith("agent."))))
            .order_by(Event.id)
        )

    for page in _pages(conn, query, size):
        linked = [r[3] for r in page]
        live = survivors(conn, [c for c in linked if c is not None])
        for r, customer in zip(page, linked, strict=True):
            yield [r.device_id, r.event_id, "" if customer is None else live.get(customer, customer)]


def _customer_columns() -> list[str]:
    return [c.name for c in Customer.__table__.columns if c.name != "merged_into"]


def _customer_rows(conn: Connection, unmasked: bool, size: int) -> Iterator[list[Any]]:
    table = Customer.__table__
    columns = [table.c[name] for name in _customer_columns()]

    def query(last: int) -> Any:
        return (
            select(*columns)
            .where(table.c.id > last, table.c.merged_into.is_(None), not_erased(table.c.id))
            .order_by(table.c.id)
        )

    names = _customer_columns()
    for page in _pages(conn, query, size):
        for r in page:
            row = []
            for name, value in zip(names, r, strict=True):
                if not unmasked and name in PERSONAL_COLUMNS and isinstance(value, str):
                    value = mask_text(value)
                row.append(_cell(value))
            yield row


def export_identity(engine: Engine, out_dir: Path, *, unmasked: bool, page: int = PAGE) -> ExportCounts:
    """Write the three files into ``out_dir`` (created, owner-only) from one snapshot of the database."""
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    options: dict[str, Any] = dict(READ_ONLY)
    if engine.dialect.name == "postgresql":
        options["isolation_level"] = "REPEATABLE READ"
    with engine.connect() as conn:
        conn = conn.execution_options(**options)
        with conn.begin():
            identifiers = write_csv(
                out_dir / "identifiers.csv", ["type", "value", "customer_id"], _identifier_rows(conn, unmasked, page)
            )
            events = write_csv(out_dir / "events.csv", ["source", "event_id", "customer_id"], _event_rows(conn, page))
            customers = write_csv(out_dir / "customers.csv", _customer_columns(), _customer_rows(conn, unmasked, page))
    return ExportCounts(identifiers, events, customers)
