"""Rebuilding the identity graph from the append-only ledger, set-based, inside the database.

The ledger is a log of state changes: an identifier belongs to the customer named by its latest
``link`` row (nobody after an ``unlink``); a customer lives on as the customer named by its latest
``merge`` row (itself after an ``unmerge``), and that one as its own survivor, and so on. Three
statements compute this for any number of rows (latest row per identifier, latest row per merged
customer, then pointer jumping to the surviving root, a handful of rounds), into temporary
tables; nothing is loaded into Python, so time and memory grow with the database, not the process.
:func:`rebuild` then counts where the live tables differ, or repairs them with ``apply=True``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection
from sqlalchemy.orm import Session

MAX_ROUNDS = 64  # pointer jumping halves every path each round: 2**64 merges deep is out of reach


@dataclass(frozen=True, slots=True)
class Rebuilt:
    """What a rebuild found: ledger rows read, identifiers and customers that disagree with the tables."""

    links: int
    identifiers: int
    identifier_mismatches: int
    customer_mismatches: int
    rounds: int


def _temp(conn: Connection, name: str, columns: str) -> None:
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
    conn.exec_driver_sql(f"CREATE TEMPORARY TABLE {name} ({columns})")


def rebuild(db: Session, *, apply: bool = False) -> Rebuilt:
    """Replay the ledger into temporary tables and compare (or, with ``apply``, repair) the live ones."""
    conn = db.connection()
    _temp(conn, "rb_owner", "identifier_id INTEGER PRIMARY KEY, customer_id INTEGER")
    _temp(conn, "rb_parent", "customer_id INTEGER PRIMARY KEY, parent_id INTEGER")
    conn.exec_driver_sql(
        "INSERT INTO rb_owner (identifier_id, customer_id)"
        " SELECT l.identifier_id, CASE WHEN l.action = 'link' THEN l.customer_id END FROM identity_ledger l"
        " JOIN (SELECT identifier_id, max(id) AS id FROM identity_ledger"
        "       WHERE action IN ('link', 'unlink') AND identifier_id IS NOT NULL GROUP BY identifier_id) AS last"
        " ON l.id = last.id"
    )
    conn.exec_driver_sql(
        "INSERT INTO rb_parent (customer_id, parent_id)"
        " SELECT l.other_customer_id, CASE WHEN l.action = 'merge' THEN l.customer_id END FROM identity_ledger l"
        " JOIN (SELECT other_customer_id, max(id) AS id FROM identity_ledger"
        "       WHERE action IN ('merge', 'unmerge') AND other_customer_id IS NOT NULL"
        "       GROUP BY other_customer_id) AS last"
        " ON l.id = last.id"
    )
    conn.exec_driver_sql("DELETE FROM rb_parent WHERE parent_id IS NULL OR parent_id = customer_id")
    rounds = 0
    if conn.dialect.name == "postgresql":
        # Temporary tables are never auto-analyzed; without statistics the joins below go row by row.
        conn.exec_driver_sql("ANALYZE rb_owner")
        conn.exec_driver_sql("ANALYZE rb_parent")
    jump = (
        "UPDATE rb_parent SET parent_id = up.parent_id FROM rb_parent AS up WHERE up.customer_id = rb_parent.parent_id"
    )
    while rounds < MAX_ROUNDS and conn.exec_driver_sql(jump).rowcount:
        rounds += 1
    conn.exec_driver_sql(
        "UPDATE rb_owner SET customer_id = p.parent_id FROM rb_parent AS p WHERE p.customer_id = rb_owner.customer_id"
    )
    links = conn.exec_driver_sql("SELECT count(*) FROM identity_ledger").scalar_one()
    counted = conn.exec_driver_sql("SELECT count(*) FROM rb_owner").scalar_one()
    identifier_diff = (
        " FROM identifiers i LEFT JOIN rb_owner o ON o.identifier_id = i.id"
        " WHERE coalesce(o.customer_id, -1) <> coalesce(i.customer_id, -1)"
    )
    customer_diff = (
        " FROM customers c LEFT JOIN rb_parent p ON p.customer_id = c.id"
        " WHERE coalesce(p.parent_id, -1) <> coalesce(c.merged_into, -1)"
    )
    wrong_identifiers = conn.exec_driver_sql(f"SELECT count(*){identifier_diff}").scalar_one()
    wrong_customers = conn.exec_driver_sql(f"SELECT count(*){customer_diff}").scalar_one()
    if apply and (wrong_identifiers or wrong_customers):
        conn.exec_driver_sql(
            "UPDATE identifiers SET customer_id = o.customer_id FROM rb_owner AS o"
            " WHERE o.identifier_id = identifiers.id"
            " AND coalesce(o.customer_id, -1) <> coalesce(identifiers.customer_id, -1)"
        )
        conn.exec_driver_sql(
            "UPDATE identifiers SET customer_id = NULL WHERE customer_id IS NOT NULL"
            " AND id NOT IN (SELECT identifier_id FROM rb_owner)"
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
    conn.exec_driver_sql("DROP TABLE rb_parent")
    return Rebuilt(int(links), int(counted), int(wrong_identifiers), int(wrong_customers), rounds)
