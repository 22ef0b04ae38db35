"""Rebuilding the identity graph from the append-only ledger, set-based, inside the database.

The ledger is a log of state changes: an identifier belongs to the customer named by its latest
``link`` row (nobody after an ``unlink``); a customer lives on as the customer named by its latest
``merge`` row (itself after an ``unmerge``), and that one as its own survivor, and so on. A few
statements compute this for any number of rows: the latest row per merged customer into a
temporary table, pointer jumping to the surviving root (a handful of rounds), then one query that
takes each identifier's latest row, follows its customer to the root and counts where the live
tables differ. Nothing is loaded into Python, so the process's memory does not grow with the
graph; :func:`rebuild` repairs the tables with ``apply=True``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection
from sqlalchemy.orm import Session

MAX_ROUNDS = 64  # pointer jumping halves every path each round: 2**64 merges deep is out of reach


@dataclass(frozen=True, slots=True)
class Rebuilt:
    """What a rebuild found: ledger rows, identifiers and customers that disagree with the tables, jump rounds."""

    links: int
    identifier_mismatches: int
    customer_mismatches: int
    rounds: int


def _temp(conn: Connection, name: str, columns: str) -> None:
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
    conn.exec_driver_sql(f"CREATE TEMPORARY TABLE {name} ({columns})")


# The latest link or unlink row of every identifier. PostgreSQL: DISTINCT ON, one sort (a
# max(id) aggregate joined back to the ledger costs several times more). SQLite: a bare column
# beside max() is documented to come from the row holding the maximum, so one pass over the index.
_LATEST = {
    "postgresql": (
        "SELECT DISTINCT ON (identifier_id) identifier_id, action, customer_id FROM identity_ledger"
        " WHERE action IN ('link', 'unlink') AND identifier_id IS NOT NULL ORDER BY identifier_id, id DESC"
    ),
    "sqlite": (
        "SELECT identifier_id, action, customer_id, max(id) AS id FROM identity_ledger"
        " WHERE action IN ('link', 'unlink') AND identifier_id IS NOT NULL GROUP BY identifier_id"
    ),
}


def _identifier_diff(dialect: str) -> str:
    """FROM ... WHERE of the identifiers whose customer is not the one the ledger names."""
    latest = _LATEST[dialect]
    owner = "CASE WHEN d.action = 'link' THEN coalesce(p.parent_id, d.customer_id) END"
    owners = f"SELECT d.identifier_id, {owner} AS owner FROM ({latest}) AS d"  # noqa: S608 - our own SQL
    owners += " LEFT JOIN rb_parent p ON p.customer_id = d.customer_id"
    return (
        f" FROM identifiers i LEFT JOIN ({owners}) AS o ON o.identifier_id = i.id"
        " WHERE coalesce(o.owner, -1) <> coalesce(i.customer_id, -1)"
    )


_CUSTOMER_DIFF = (
    " FROM customers c LEFT JOIN rb_parent p ON p.customer_id = c.id"
    " WHERE coalesce(p.parent_id, -1) <> coalesce(c.merged_into, -1)"
)
# Room for the per-identifier aggregate and joins to stay in memory on PostgreSQL (this transaction only).
PG_WORK_MEM = "1GB"


def rebuild(db: Session, *, apply: bool = False) -> Rebuilt:
    """Replay the ledger and compare (or, with ``apply``, repair) the live tables.

    Survivors go to a temporary table (one row per merged customer); owners are computed inside
    the comparison query itself, so the ten-million-row side is never written anywhere.
    """
    conn = db.connection()
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SET LOCAL work_mem = '{PG_WORK_MEM}'")
    _temp(conn, "rb_parent", "customer_id INTEGER PRIMARY KEY, parent_id INTEGER")
    conn.exec_driver_sql(
        "INSERT INTO rb_parent (customer_id, parent_id)"
        " SELECT l.other_customer_id, CASE WHEN l.action = 'merge' THEN l.customer_id END FROM identity_ledger l"
        " JOIN (SELECT other_customer_id, max(id) AS id FROM identity_ledger"
        "       WHERE action IN ('merge', 'unmerge') AND other_customer_id IS NOT NULL"
        "       GROUP BY other_customer_id) AS last"
        " ON l.id = last.id"
    )
    conn.exec_driver_sql("DELETE FROM rb_parent WHERE parent_id IS NULL OR parent_id = customer_id")
    if conn.dialect.name == "postgresql":
        # Temporary tables are never auto-analyzed; without statistics the joins go row by row.
        conn.exec_driver_sql("ANALYZE rb_parent")
    rounds = 0
    jump = (
        "UPDATE rb_parent SET parent_id = up.parent_id FROM rb_parent AS up WHERE up.customer_id = rb_parent.parent_id"
    )
    while rounds < MAX_ROUNDS and conn.exec_driver_sql(jump).rowcount:
        rounds += 1
    links = conn.exec_driver_sql("SELECT count(*) FROM identity_ledger").scalar_one()
    identifier_diff = _identifier_diff(conn.dialect.name)
    wrong_identifiers = conn.exec_driver_sql(f"SELECT count(*){identifier_diff}").scalar_one()
    wrong_customers = conn.exec_driver_sql(f"SELECT count(*){_CUSTOMER_DIFF}").scalar_one()
    if apply and (wrong_identifiers or wrong_customers):
        _repair(conn, identifier_diff)
    conn.exec_driver_sql("DROP TABLE rb_parent")
    return Rebuilt(int(links), int(wrong_identifiers), int(wrong_customers), rounds)


def _repair(conn: Connection, identifier_diff: str) -> None:
    """Make identifiers and customers say what the ledger says."""
    _temp(conn, "rb_owner", "identifier_id INTEGER PRIMARY KEY, owner INTEGER")
    conn.exec_driver_sql(f"INSERT INTO rb_owner (identifier_id, owner) SELECT i.id, o.owner{identifier_diff}")
    conn.exec_driver_sql(
        "UPDATE identifiers SET customer_id = o.owner FROM rb_owner AS o WHERE o.identifier_id = identifiers.id"
    )
    conn.exec_driver_sql(
        "UPDATE customers SET merged_into = p.parent_id FROM rb_parent AS p"
        " WHERE p.customer_id = customers.id AND p.parent_id <> coalesce(customers.merged_into, -1)"
    )
    conn.exec_driver_sql(
        "UPDATE customers SET merged_into = NULL WHERE merged_into IS NOT NULL"
        " AND id NOT IN (SELECT customer_id FROM rb_parent)"
    )
    conn.exec_driver_sql("DROP TABLE rb_owner")
