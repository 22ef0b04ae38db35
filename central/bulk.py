"""Multi-row statements for the ingest hot path, without per-row ORM or Core parameter processing.

A 500-event batch turns into a handful of statements whatever its size. PostgreSQL gets one
statement per table whose rows arrive as a single JSON parameter
(``INSERT ... SELECT ... FROM json_to_recordset(%s)``): psycopg adapts Python lists to PostgreSQL
arrays by escaping every element in Python, which costs more than the insert itself, while one JSON
document passes through untouched and the server unpacks it. SQLite, in process, gets plain
``executemany`` (or, where ids must come back, multi-row ``VALUES ... RETURNING``), with values
stored exactly as SQLAlchemy stores them so that rows written here read back the same through the
models.
"""

from __future__ import annotations

import functools
import hashlib
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    Column,
    Connection,
    Dialect,
    String,
    Table,
)
from sqlalchemy.exc import DBAPIError

from central.models import UTCDateTime

# SQLite refuses statements with more than 32766 parameters.
_SQLITE_MAX_PARAMS = 32_000

Converter = Callable[[Any], Any]


def _sqlite_time(value: datetime | None) -> str | None:
    # SQLAlchemy's SQLite DATETIME text form, naive UTC: "2026-11-23 02:00:00.000000".
    if value is None:
        return None
    return _sqlite_text(value)


# The same instants come back in every table a batch writes (events, identifiers, ledger).
@functools.lru_cache(maxsize=1 << 16)
def _sqlite_text(value: datetime) -> str:
    if value.tzinfo is not UTC:
        if value.tzinfo is None:
            raise ValueError("naive datetime given where an aware UTC datetime is required")
        value = value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:26]


def sqlite_time(value: datetime) -> str:
    """An aware datetime in the text form SQLAlchemy stores in SQLite (naive UTC, microseconds)."""
    text = _sqlite_time(value)
    assert text is not None
    return text


def stored_instant(value: Any) -> datetime:
    """A time as a driver hands it back (SQLite's naive UTC text, PostgreSQL's datetime) as aware UTC.

    SQLite's text is parsed with its offset appended: a sixth of the time of parsing it and then
    setting the zone with ``replace(tzinfo=UTC)``, which counts where a batch reads tens of
    thousands of them.
    """
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value + "+00:00")
        except ValueError:  # text that names its own offset
            value = datetime.fromisoformat(value)
    elif not isinstance(value, datetime):
        value = datetime.fromisoformat(str(value))
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _json_text(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


@functools.cache
def _sqlite_converter(column: Column[Any], dialect: Dialect) -> Converter | None:
    """How one column's Python values are handed to sqlite3; None when they pass as they are."""
    if isinstance(column.type, UTCDateTime):
        return _sqlite_time
    if isinstance(column.type, JSON):
        return _json_text
    return column.type.dialect_impl(dialect).bind_processor(dialect)


def _pg_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot send {type(value).__name__} to PostgreSQL as JSON")


class JsonBytes(bytes):
    """A JSON document already encoded as UTF-8, handed to psycopg as a ``json`` parameter unchanged."""


def _register_json_bytes() -> None:
    """Teach psycopg to send JsonBytes as ``json`` without decoding and re-encoding the document."""
    try:
        from psycopg import adapters
        from psycopg.adapt import Dumper
    except ImportError:  # a SQLite-only installation
        return

    class _JsonBytesDumper(Dumper):
        oid = adapters.types["json"].oid

        def dump(self, obj: Any) -> bytes:
            return bytes(obj)

    # Connections copy the global adapters when they open, so this runs at import, before any do.
    adapters.register_dumper(JsonBytes, _JsonBytesDumper)


_register_json_bytes()


def json_param(value: Any) -> JsonBytes:
    """``value`` as a PostgreSQL ``json`` parameter (Decimal as text, naive datetimes as UTC)."""
    return JsonBytes(orjson.dumps(value, default=_pg_default, option=orjson.OPT_NAIVE_UTC))


def pg_record_type(table: Table, name: str, dialect: Dialect) -> str:
    kind = table.c[name].type
    # Strings arrive as text so that the column's own length check applies on insert.
    return "text" if isinstance(kind, String) else kind.compile(dialect=dialect)


def pg_array_kind(column: Column[Any]) -> str:
    """How :func:`pg_array` writes ``column``'s values: "text" or "json"."""
    return "text" if isinstance(column.type, String) else "json"


def pg_array(values: Sequence[Any], kind: str) -> str:
    """``values`` as a PostgreSQL array literal, to be cast to the column's array type in SQL.

    ``kind`` is "text" (strings), or "json" for numbers, dates and aware datetimes (None as NULL),
    which orjson writes as a JSON array whose items an array literal reads the same way. Built as
    text here: psycopg adapts a list element by element, which cost more than the statement.
    """
    if kind == "text":
        # Inside double quotes an array literal only gives meaning to backslash and double quote.
        quoted = [v.replace("\\", "\\\\").replace('"', '\\"') for v in values]
        return '{"' + '","'.join(quoted) + '"}' if quoted else "{}"
    return "{" + orjson.dumps(values).decode()[1:-1] + "}"


def pg_source(
    table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]], dialect: Dialect
) -> tuple[str, JsonBytes]:
    """A PostgreSQL subquery yielding ``rows`` (columns named as given, in order) and its one parameter.

    ``json_to_recordset`` parses each row once however many columns it has (extracting fields from a
    ``json`` value one by one would re-read the row for every column).
    """
    definitions = [f"{name} {pg_record_type(table, name, dialect)}" for name in columns]
    names = ", ".join(columns)
    sql = (
        f"SELECT {names} FROM ROWS FROM (json_to_recordset(CAST(%s AS json))"  # noqa: S608 - our names
        f" AS ({', '.join(definitions)})) WITH ORDINALITY AS r({names}, position) ORDER BY r.position"
    )
    # Aware datetimes become RFC 3339 with their offset, which timestamptz reads exactly.
    return sql, json_param([dict(zip(columns, row)) for row in rows])  # noqa: B905 - rows match columns


def sqlite_rows(
    table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]], dialect: Dialect
) -> list[tuple[Any, ...]]:
    """``rows`` with each value in the form SQLAlchemy would have stored it in SQLite."""
    convert = [(i, c) for i, name in enumerate(columns) if (c := _sqlite_converter(table.c[name], dialect))]
    if not convert:
        return [tuple(row) for row in rows]
    out = []
    # Columns such as received_at hold one value for the whole batch: convert it once.
    last: dict[int, tuple[Any, Any]] = {}
    for row in rows:
        values = list(row)
        for i, conv in convert:
            value = values[i]
            seen = last.get(i)
            if seen is not None and seen[0] is value:
                values[i] = seen[1]
            else:
                values[i] = converted = conv(value)
                last[i] = (value, converted)
        out.append(tuple(values))
    return out


def sqlite_fetch(conn: Connection, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """The rows of one SQLite statement as the driver's own tuples, in ``conn``'s transaction.

    A batch's look-ups and ``RETURNING`` clauses read tens of thousands of rows; SQLAlchemy's
    result layer would wrap each in a ``Row`` first, which cost more than SQLite's own work here.
    Driver errors come out as SQLAlchemy's (IntegrityError, OperationalError), as from
    ``exec_driver_sql``, so callers' retry rules still apply.
    """
    if not conn.in_transaction():
        conn.begin()  # as exec_driver_sql would: central's "begin" hook issues BEGIN IMMEDIATE
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql, params)
        rows: list[tuple[Any, ...]] = cursor.fetchall()
    except sqlite3.Error as exc:
        raise DBAPIError.instance(sql, params, exc, sqlite3.Error) from exc
    finally:
        cursor.close()
    return rows


def integer_list(values: Iterable[int]) -> str:
    """``values`` as an SQL list of integer literals (each through ``int``, so nothing else gets in)."""
    return ", ".join(str(int(v)) for v in values)


def integer_lists(values: Sequence[int], size: int = 5000) -> list[str]:
    """``values`` as SQL lists of integer literals, at most ``size`` in each (one statement apiece)."""
    return [integer_list(values[i : i + size]) for i in range(0, len(values), size)]


def insert(
    conn: Connection,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    returning: Sequence[str] = (),
    skip_conflicts_on: Sequence[str] = (),
) -> list[tuple[Any, ...]]:
    """Insert ``rows`` (tuples in ``columns`` order); return the ``returning`` columns of each new row.

    With ``skip_conflicts_on`` (the columns of a unique constraint), rows that would violate it are
    skipped (``ON CONFLICT DO NOTHING``) and only the rows actually inserted are returned.
    Returned rows come in no particular order; when ``returning`` is just the integer primary key
    (and no row is skipped), they are sorted, which on both backends is the order of ``rows``: ids
    come from a sequence (or SQLite's rowid) in insertion order, and the insert follows ``rows``.
    """
    if not rows:
        return []
    dialect = conn.dialect
    names = ", ".join(columns)
    tail = f" ON CONFLICT ({', '.join(skip_conflicts_on)}) DO NOTHING" if skip_conflicts_on else ""
    if returning:
        tail += f" RETURNING {', '.join(returning)}"
    if dialect.name == "postgresql":
        source, document = pg_source(table, columns, rows, dialect)
        result = conn.exec_driver_sql(f"INSERT INTO {table.name} ({names}) {source}{tail}", (document,))
        out = [tuple(r) for r in result.fetchall()] if returning else []
    else:
        prepared = sqlite_rows(table, columns, rows, dialect)
        marks = "(" + ", ".join("?" for _ in columns) + ")"
        if not returning:
            sql = f"INSERT INTO {table.name} ({names}) VALUES {marks}{tail}"  # noqa: S608 - our own names
            conn.exec_driver_sql(sql, prepared)
            return []
        out = []
        per_statement = max(1, _SQLITE_MAX_PARAMS // len(columns))
        for start in range(0, len(prepared), per_statement):
            chunk = prepared[start : start + per_statement]
            values = ", ".join([marks] * len(chunk))
            sql = f"INSERT INTO {table.name} ({names}) VALUES {values}{tail}"  # noqa: S608 - our own names
            flat = tuple(v for row in chunk for v in row)
            out.extend(sqlite_fetch(conn, sql, flat))
    if list(returning) == [table.primary_key.columns.keys()[0]]:
        out.sort()
    return out


def remap(
    conn: Connection,
    table: Table,
    column: str,
    pairs: Sequence[tuple[Any, Any]],
    *,
    match: str | None = None,
    only_unset: bool = False,
) -> int:
    """``SET column = new WHERE match = old`` for every (old, new) pair; return the rows changed.

    ``match`` defaults to ``column`` itself (repointing references); ``only_unset`` leaves rows
    whose ``column`` is already set alone.
    """
    if not pairs:
        return 0
    match = match or column
    guard = f" AND {table.name}.{column} IS NULL" if only_unset else ""
    if conn.dialect.name == "postgresql":
        old_type = pg_record_type(table, match, conn.dialect)
        new_type = pg_record_type(table, column, conn.dialect)
        # The redundant "= ANY(array)" lets the planner see how few rows are meant; with only the
        # join it may estimate a large share of the table and scan all of it. MATERIALIZED: whatever
        # join it picks, the JSON is parsed once, not once per row.
        target = f"{table.name}.{match}"
        sql = (
            "WITH m AS MATERIALIZED (SELECT * FROM json_to_recordset(CAST(%s AS json))"  # noqa: S608 - our names
            f" AS (old {old_type}, new {new_type}))"
            f" UPDATE {table.name} SET {column} = m.new FROM m"
            f" WHERE {target} = m.old AND {target} = ANY(CAST(%s AS {old_type}[])){guard}"
        )
        document = json_param([{"old": old, "new": new} for old, new in pairs])
        return conn.exec_driver_sql(sql, (document, [old for old, _ in pairs])).rowcount
    sql = f"UPDATE {table.name} SET {column} = ? WHERE {match} = ?{guard}"  # noqa: S608 - our own names
    return conn.exec_driver_sql(sql, [(new, old) for old, new in pairs]).rowcount


def select_matching(
    conn: Connection,
    table: Table,
    key_columns: Sequence[str],
    keys: Iterable[Sequence[Any]],
    columns: Sequence[str],
    where: tuple[str, Sequence[Any]] = ("", ()),
) -> list[tuple[Any, ...]]:
    """``columns`` of the rows whose ``key_columns`` equal one of ``keys``, in one query.

    ``where``: a further condition on the table's row ``t`` (SQL starting with `` AND``, in the
    driver's placeholder style) and its parameters, so that the database drops rows nobody wants.
    """
    condition, condition_params = where
    keys = list(keys)
    if not keys:
        return []
    picked = ", ".join(f"t.{name}" for name in columns)
    if conn.dialect.name == "postgresql":
        record = ", ".join(f"{name} {pg_record_type(table, name, conn.dialect)}" for name in key_columns)
        on = " AND ".join(f"t.{name} = q.{name}" for name in key_columns)
        sql = (
            f"SELECT {picked} FROM json_to_recordset(CAST(%s AS json)) AS q({record})"  # noqa: S608 - our names
            f" JOIN {table.name} AS t ON {on}{condition}"
        )
        document = json_param([dict(zip(key_columns, key, strict=True)) for key in keys])
        return [tuple(row) for row in conn.exec_driver_sql(sql, (document, *condition_params)).fetchall()]
    on = " AND ".join(f"t.{name} = q.column{i + 1}" for i, name in enumerate(key_columns))
    marks = "(" + ", ".join("?" for _ in key_columns) + ")"
    out: list[tuple[Any, ...]] = []
    per_statement = _SQLITE_MAX_PARAMS // len(key_columns)
    for start in range(0, len(keys), per_statement):
        chunk = keys[start : start + per_statement]
        sql = (
            f"SELECT {picked} FROM (VALUES {', '.join([marks] * len(chunk))}) AS q"  # noqa: S608 - our names
            f" JOIN {table.name} AS t ON {on}{condition}"
        )
        params = (*(v for key in chunk for v in key), *condition_params)
        out.extend(sqlite_fetch(conn, sql, params))
    return out


def update_rows(conn: Connection, table: Table, key: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
    """``SET column = value, ... WHERE key = k`` for each row ``(k, value, ...)``; return the rows changed."""
    if not rows:
        return 0
    names = (key, *columns)
    if conn.dialect.name == "postgresql":
        source, document = pg_source(table, names, rows, conn.dialect)
        sets = ", ".join(f"{name} = v.{name}" for name in columns)
        sql = (
            f"WITH v AS MATERIALIZED ({source}) UPDATE {table.name} AS t SET {sets}"  # noqa: S608 - our names
            f" FROM v WHERE t.{key} = v.{key}"
        )
        return conn.exec_driver_sql(sql, (document,)).rowcount
    prepared = sqlite_rows(table, names, rows, conn.dialect)
    sets = ", ".join(f"{name} = ?" for name in columns)
    sql = f"UPDATE {table.name} SET {sets} WHERE {key} = ?"  # noqa: S608 - our own names
    return conn.exec_driver_sql(sql, [(*row[1:], row[0]) for row in prepared]).rowcount


def advisory_locks(conn: Connection, names: Iterable[str]) -> None:
    """PostgreSQL: hold a transaction-level advisory lock on each of ``names`` until commit (SQLite: nothing).

    The locks are taken in one statement, in the order of their keys, so two transactions naming
    the same things cannot deadlock on them; the second waits for the first to commit. (On SQLite
    the ingest transaction already holds the database's write lock.)
    """
    if conn.dialect.name != "postgresql":
        return
    keys = sorted({int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True) for name in names})
    if keys:
        conn.exec_driver_sql(
            "SELECT count(pg_advisory_xact_lock(k)) FROM (SELECT unnest(CAST(%s AS bigint[])) AS k) AS keys",
            (pg_array(keys, "json"),),
        )
