"""Identifiers stored before the normalizers folded full-width characters are spelt as they are now.

A phone stored as ``１３９００００１１１１`` or a card as ``ＶＩＰ００４２`` (before
``central.identity.normalizers.fold``) never met the same value arriving today in ASCII, which the
normalizers now produce. Every stored value with a character outside ASCII (the only ones ``fold``
changes) is normalized again with its type's current normalizer, a batch of rows at a time:

* a value nobody else holds in its new spelling is renamed in place (its id, and so its ledger rows,
  events and review items, stay as they were);
* a value whose new spelling the same customer holds already is folded into that row: its events
  move there and the old row is unlinked in the ledger (rule ``respelled``);
* a value whose new spelling is a tombstone (removed for good) is removed too, as the operator asked
  for that value; a tombstone whose new spelling is held by nobody makes that row a tombstone;
* anything else (the new spelling is another customer's, or flagged as suspicious) is left as it is
  and goes to the review queue as ``respelled_value``, naming both customers: accepting it merges
  them, as for a conflict. Nothing is ever merged here (decision 0083).

Types the registry does not know, and values today's normalizer refuses, are left alone. The
registry is the configured one under ``central-server migrate`` (and ``database.auto_migrate``),
else the retail defaults. Running it again changes nothing.

Revision ID: 0028_respell_identifiers
Revises: 0027_surname_readings
Create Date: 2026-12-08
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from alembic import op
from sqlalchemy.engine import Connection

from central.models import UTCDateTime

revision = "0028_respell_identifiers"
down_revision = "0027_surname_readings"
branch_labels = None
depends_on = None

BATCH = 2000
REASON = "respelled_value"
OPERATOR = "migration 0028_respell_identifiers"
LINKED, SUSPICIOUS, REMOVED, TRUSTED = "linked", "suspicious", "removed", "trusted"
HOLDING = (LINKED, TRUSTED)

_identifiers = sa.table(
    "identifiers",
    sa.column("id", sa.Integer),
    sa.column("value", sa.String),
    sa.column("customer_id", sa.Integer),
    sa.column("state", sa.String),
    sa.column("last_seen_at", UTCDateTime),
)
_ledger = sa.table(
    "identity_ledger",
    sa.column("at", UTCDateTime),
    sa.column("action", sa.String),
    sa.column("rule", sa.String),
    sa.column("identifier_id", sa.Integer),
    sa.column("customer_id", sa.Integer),
    sa.column("operator", sa.String),
    sa.column("detail", sa.JSON),
)
_reviews = sa.table(
    "review_items",
    sa.column("key", sa.String),
    sa.column("reason", sa.String),
    sa.column("status", sa.String),
    sa.column("created_at", UTCDateTime),
    sa.column("customer_id", sa.Integer),
    sa.column("other_customer_id", sa.Integer),
    sa.column("identifier_id", sa.Integer),
    sa.column("source", sa.String),
    sa.column("evidence", sa.JSON),
)
_marks = sa.table(
    "recompute_marks",
    sa.column("customer_id", sa.Integer),
    sa.column("marked_at", UTCDateTime),
    sa.column("reason", sa.String),
)
# The rows with a character outside ASCII, found by their length in bytes: one pass over the table.
_NOT_ASCII = {
    "postgresql": "octet_length(i.value) <> char_length(i.value)",
    "sqlite": "length(CAST(i.value AS BLOB)) <> length(i.value)",
}
_ROW = (
    "SELECT i.id, i.kind, i.value, coalesce(c.merged_into, i.customer_id), i.state, i.last_seen_at"
    " FROM identifiers i LEFT JOIN customers c ON c.id = i.customer_id"
)


class Row(NamedTuple):
    """One stored identifier: its id, type, value, live customer (None: nobody's), state, last sighting."""

    id: int
    kind: str
    value: str
    customer: int | None
    state: str
    seen: Any


class Work:
    """What one batch does, written together at its end (a plain class: Alembic loads this module outside
    ``sys.modules``, where a dataclass cannot be made)."""

    def __init__(self) -> None:
        self.renames: list[dict[str, Any]] = []
        self.unlinks: list[tuple[Row, Row, str]] = []  # (row, the row of its new spelling, rule)
        self.tombstones: list[int] = []  # rows without a customer that become tombstones
        self.moves: list[dict[str, Any]] = []  # event_customers and sightings: old row -> new
        self.reviews: list[dict[str, Any]] = []


def respelled(registry: Any, kind: str, value: str) -> str | None:
    """``value`` as today's normalizer of ``kind`` spells it; None for an unknown type or a refused value."""
    from central.identity.normalizers import NORMALIZERS

    spec = registry.types.get(kind)
    if spec is None:
        return None
    prefix = ""
    if spec.scoped:  # app_id:value, the app id being ASCII already
        app_id, colon, value = value.partition(":")
        if not colon:
            return None
        prefix = f"{app_id}:"
    new = NORMALIZERS[spec.normalizer](value)
    return None if new is None else prefix + new


def _row(found: Any) -> Row:
    from central.bulk import stored_instant

    return Row(int(found[0]), found[1], found[2], found[3], found[4], stored_instant(found[5]))


def _rows(conn: Connection, where: str, params: dict[str, Any]) -> list[Row]:
    return [_row(r) for r in conn.execute(sa.text(f"{_ROW} WHERE {where}"), params).all()]


def _holders(conn: Connection, wanted: set[tuple[str, str]]) -> dict[tuple[str, str], Row]:
    """The stored rows already spelt as ``wanted`` (type, value), by (type, value)."""
    found: dict[tuple[str, str], Row] = {}
    by_kind: dict[str, list[str]] = {}
    for kind, value in wanted:
        by_kind.setdefault(kind, []).append(value)
    query = sa.text(f"{_ROW} WHERE i.kind = :kind AND i.value IN :values").bindparams(
        sa.bindparam("values", expanding=True)
    )
    for kind, values in by_kind.items():
        for r in conn.execute(query, {"kind": kind, "values": sorted(values)}).all():
            row = _row(r)
            found[(row.kind, row.value)] = row
    return found


def _digest(kind: str, value: str) -> str:
    """As ``central.identity.changes.value_digest``: names a value in a review key without storing it."""
    return hashlib.sha256(f"{kind}\x00{value}".encode()).hexdigest()[:20]


def _review(row: Row, holder: Row, new: str, now: datetime) -> dict[str, Any]:
    customer, other = row.customer, holder.customer
    if customer is None:  # a tombstone whose new spelling someone holds
        customer, other = other, None
    if customer is not None and other is not None and customer != other:
        low, high = sorted((customer, other))
        key = f"{REASON}:{low}:{high}"
    else:
        key = f"{REASON}:{customer}:{_digest(row.kind, new)}"
    return {
        "key": key,
        "reason": REASON,
        "status": "open",
        "created_at": now,
        "customer_id": customer,
        "other_customer_id": other,
        "identifier_id": row.id,
        "source": "migration",
        # Masked wherever shown, like every review item's value; the ids name the two rows.
        "evidence": {"type": row.kind, "value": new, "stored_ids": f"{row.id} {holder.id}"},
    }


def _decide(row: Row, holder: Row, new: str, now: datetime, work: Work) -> None:
    """What to do with ``row`` whose new spelling ``new`` is already stored as ``holder``."""
    if row.state == REMOVED:
        if holder.state == REMOVED:
            return  # the value is removed in both spellings
        if holder.customer is None and holder.state != SUSPICIOUS:
            work.tombstones.append(holder.id)  # nobody holds it: the removal now covers this spelling too
            return
        work.reviews.append(_review(row, holder, new, now))  # removed in one spelling, someone's in the other
        return
    if row.customer is None:
        return  # holds nothing and links nothing: an unlinked or suspicious value, already decided or in review
    if holder.state == REMOVED and row.state in HOLDING:
        work.unlinks.append((row, holder, "removed"))
        return
    if holder.customer == row.customer and row.state in HOLDING and holder.state in HOLDING:
        work.unlinks.append((row, holder, "respelled"))
        work.moves.append({"old": row.id, "new": holder.id, "seen": row.seen})
        return
    work.reviews.append(_review(row, holder, new, now))


def _write(conn: Connection, work: Work, now: datetime) -> None:
    if work.renames:
        conn.execute(
            _identifiers.update().where(_identifiers.c.id == sa.bindparam("row_id")).values(value=sa.bindparam("new")),
            work.renames,
        )
    if work.tombstones:
        conn.execute(_identifiers.update().where(_identifiers.c.id.in_(work.tombstones)).values(state=REMOVED))
    if work.moves:
        conn.execute(sa.text("UPDATE event_customers SET identifier_id = :new WHERE identifier_id = :old"), work.moves)
        conn.execute(
            _identifiers.update()
            .where(_identifiers.c.id == sa.bindparam("new"), _identifiers.c.last_seen_at < sa.bindparam("seen"))
            .values(last_seen_at=sa.bindparam("seen")),
            work.moves,
        )
    if work.unlinks:
        for row, _holder, rule in work.unlinks:
            state = REMOVED if rule == "removed" else row.state
            conn.execute(_identifiers.update().where(_identifiers.c.id == row.id).values(customer_id=None, state=state))
        conn.execute(
            _ledger.insert(),
            [
                {
                    "at": now,
                    "action": "unlink",
                    "rule": rule,
                    "identifier_id": row.id,
                    "customer_id": row.customer,
                    "operator": OPERATOR,
                    "detail": {"respelled_as": holder.id},
                }
                for row, holder, rule in work.unlinks
            ],
        )
        customers = sorted({row.customer for row, _, _ in work.unlinks if row.customer is not None})
        conn.execute(
            sa.text("UPDATE customers SET version = version + 1 WHERE id IN :ids").bindparams(
                sa.bindparam("ids", expanding=True)
            ),
            {"ids": customers},
        )
        removed = sorted({row.customer for row, _, rule in work.unlinks if rule == "removed" and row.customer})
        marked = sa.text("SELECT customer_id FROM recompute_marks WHERE customer_id IN :ids").bindparams(
            sa.bindparam("ids", expanding=True)
        )
        already = {r[0] for r in conn.execute(marked, {"ids": removed}).all()} if removed else set()
        fresh = [c for c in removed if c not in already]
        if fresh:
            conn.execute(
                _marks.insert(), [{"customer_id": c, "marked_at": now, "reason": "identifier_removed"} for c in fresh]
            )
    if work.reviews:
        known = {
            r[0]
            for r in conn.execute(
                sa.text("SELECT key FROM review_items WHERE key IN :keys").bindparams(
                    sa.bindparam("keys", expanding=True)
                ),
                {"keys": sorted({r["key"] for r in work.reviews})},
            ).all()
        }
        fresh_items: dict[str, dict[str, Any]] = {}
        for item in work.reviews:
            if item["key"] not in known:
                fresh_items.setdefault(item["key"], item)
        if fresh_items:
            conn.execute(_reviews.insert(), list(fresh_items.values()))


def respell(conn: Connection, registry: Any, now: datetime, batch: int = BATCH) -> dict[str, int]:
    """Spell every stored identifier as today's normalizers do; what was done, by outcome."""
    counts = dict.fromkeys(("renamed", "folded", "removed", "reviewed", "left"), 0)
    not_ascii = _NOT_ASCII["postgresql" if conn.dialect.name == "postgresql" else "sqlite"]
    last = 0
    while True:
        rows = _rows(conn, f"i.id > :last AND {not_ascii} ORDER BY i.id LIMIT :n", {"last": last, "n": batch})
        if not rows:
            return counts
        last = rows[-1].id
        spelt = {row.id: respelled(registry, row.kind, row.value) for row in rows}
        wanted = {row.id: new for row in rows if (new := spelt[row.id]) is not None and new != row.value}
        holders = _holders(conn, {(row.kind, wanted[row.id]) for row in rows if row.id in wanted})
        work = Work()
        for row in rows:
            new = wanted.get(row.id)
            if new is None:
                continue
            holder = holders.get((row.kind, new))
            if holder is None:
                work.renames.append({"row_id": row.id, "new": new})
                holders[(row.kind, new)] = Row(row.id, row.kind, new, row.customer, row.state, row.seen)
                counts["renamed"] += 1
                continue
            before = (len(work.unlinks), len(work.tombstones), len(work.reviews))
            _decide(row, holder, new, now, work)
            if len(work.reviews) > before[2]:
                counts["reviewed"] += 1
            elif len(work.unlinks) > before[0]:
                counts["removed" if work.unlinks[-1][2] == "removed" else "folded"] += 1
            elif len(work.tombstones) > before[1]:
                counts["removed"] += 1
            else:
                counts["left"] += 1
        _write(conn, work, now)


def upgrade() -> None:
    """Respell the stored identifiers with the configured registry (else the defaults)."""
    from central.identity.registry import default_registry

    config = op.get_context().config
    registry = (config.attributes.get("identity_registry") if config else None) or default_registry()
    respell(op.get_bind(), registry, datetime.now(UTC))


def downgrade() -> None:
    """Not undone: the old spellings were never found by what arrives today."""


__all__: Sequence[str] = ("respell", "respelled")
