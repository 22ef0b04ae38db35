"""What names a person without being linked to them: the rows an erasure must find beyond the person's own.

Identity links an event to a customer only through an identifier it could use. An event whose
phone was blocked, a staff number, or a suspicious value (the over-merge guard), or whose card was
removed from the customer later, stays in ``events`` with the value in its envelope (or in a
receipt's ``payload.member``, a member scan's ``payload.member_id``) and belongs to no one, or to
someone else; a reprint of the person's receipt is kept as evidence with no customer at all
(decision 0085). Decision 0098 as amended: the erasure finds them here.

* Identifiers the person held once and no one holds now (removed, flagged suspicious): the
  identity ledger names them (its rows by customer are indexed).
* Receipt copies of the person's receipts: by ``reprint_of`` (its partial index).
* Events naming any of those values, as stored or as sent: no index can find a value inside the
  events' JSON, so every event is read, in pages of ``PAGE`` by primary key, only its envelope and
  the two payload fields that name members (decision 0098 gives the cost).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, Connection, Text, and_, case, cast, or_, select, type_coerce

from central.customers.models import Receipt
from central.identity import normalizers
from central.identity.models import EventCustomer, Identifier, LedgerEntry
from central.identity.registry import Registry
from central.ingest.models import Event
from central.models import table

PAGE = 5000
RECEIPT = "pos.receipt"
SCAN = "scan.member"
_events = table(Event)
_owners = table(EventCustomer)
_receipts = table(Receipt)
_identifiers = table(Identifier)
_ledger = table(LedgerEntry)
# Where a payload names a member, as ingest reads it: a receipt's ``member`` (central.ingest.batches.
# member_identifiers) and a member scan's ``member_id``.
_MEMBER_FIELDS = (("phone", "phone"), ("card", "member_card"))
Pair = tuple[str, str]


@dataclass(frozen=True)
class Mentions:
    """The rows beyond the person's own that name them."""

    released: list[tuple[int, str, str]]
    """Identifiers (id, type, stored value) the person held once and no one holds now."""
    unlinked: list[int]
    """Events naming the person and linked to no one: scrubbed whole."""
    copies: list[int]
    """The events of copies of the person's receipts (reprints, a second sender): scrubbed whole."""
    foreign: dict[int, list[str]]
    """Events linked to someone else that also name the person: the envelope keys to drop."""
    sent: set[str]
    """The person's values as these events sent them (``139 1234 0876``), to replace inside text."""


def released_identifiers(conn: Connection, ids: Sequence[int]) -> list[tuple[int, str, str]]:
    """Identifiers the ledger says ``ids`` held (or linked through), which no customer holds now."""
    named: set[int] = set()
    for column in (_ledger.c.customer_id, _ledger.c.other_customer_id):
        pairs = conn.execute(select(_ledger.c.identifier_id, _ledger.c.anchor_identifier_id).where(column.in_(ids)))
        named.update(i for pair in pairs for i in pair if i is not None)
    found: list[tuple[int, str, str]] = []
    ordered = sorted(named)
    for start in range(0, len(ordered), 500):
        rows = conn.execute(
            select(_identifiers.c.id, _identifiers.c.kind, _identifiers.c.value).where(
                _identifiers.c.id.in_(ordered[start : start + 500]), _identifiers.c.customer_id.is_(None)
            )
        )
        found.extend((int(i), str(k), str(v)) for i, k, v in rows)
    return found


def receipt_copies(conn: Connection, ids: Sequence[int], event_pks: Sequence[int]) -> list[int]:
    """The events of receipts kept as copies (reprints, a second sender, another total) of the person's receipts."""
    originals = select(_receipts.c.id).where(or_(_receipts.c.customer_id.in_(ids), _receipts.c.event_pk.in_(event_pks)))
    # reprint_of IS NOT NULL spelled out, so that the partial index ix_receipts_reprint_of serves it.
    query = select(_receipts.c.event_pk).where(
        _receipts.c.reprint_of.is_not(None), _receipts.c.reprint_of.in_(originals)
    )
    return sorted(int(pk) for pk in conn.scalars(query))


def _scoped(registry: Registry, kind: str) -> bool:
    spec = registry.types.get(kind)
    return spec is not None and spec.scoped


class Matcher:
    """Whether an identifier an event names is one of the person's, by stored form or as sent."""

    def __init__(self, registry: Registry, held: Iterable[Pair], sent: Iterable[str]) -> None:
        self.registry = registry
        self.held = set(held)
        # A scoped value (an openid, stored ``app:value``) also matches when the event left the app out.
        self.bare = {(k, v.partition(":")[2]) for k, v in self.held if _scoped(registry, k)}
        self.sent = {s for s in sent if len(s.strip()) >= 2}

    def __call__(self, kind: str, raw: Any, app_id: str | None) -> bool:
        if not isinstance(raw, str):
            return False
        if raw in self.sent:
            return True
        spec = self.registry.types.get(kind)
        if spec is None:
            return False
        # The normalizer without the registry's blocked lists and junk rules: an identifier unusable
        # for those reasons (a staff phone, a blocked card) still names the person.
        value = normalizers.NORMALIZERS[spec.normalizer](raw)
        if value is None:
            return False
        if spec.scoped:
            return (kind, value) in self.bare or (kind, f"{app_id}:{value}") in self.held
        return (kind, value) in self.held


def named_pairs(identifiers: Any, member: Any, member_id: Any) -> list[tuple[str | None, str, Any]]:
    """(envelope key or None, type, raw value) of every identifier an event names."""
    out: list[tuple[str | None, str, Any]] = []
    if isinstance(identifiers, dict):
        out.extend((k, k, v) for k, v in identifiers.items())
    if isinstance(member, dict):
        out.extend((None, kind, member.get(field)) for field, kind in _MEMBER_FIELDS if field in member)
    if member_id is not None:
        out.append((None, "member_id", member_id))
    return out


def _payload_field(kind: str, name: str) -> Any:
    """The payload's ``name`` of events of ``kind`` that hold it (None for others).

    Reading a field parses the JSON, the scan's main cost on PostgreSQL; a plain text match first
    leaves out the events that cannot have it (every other kind, a receipt without a member).
    """
    holds = and_(_events.c.kind == kind, cast(_events.c.payload, Text).contains(f'"{name}"'))
    return type_coerce(case((holds, _events.c.payload[name])), JSON)


def naming_events(conn: Connection, matches: Matcher, skip: Collection[int]) -> tuple[dict[int, list[str]], set[str]]:
    """Every event outside ``skip`` that names the person: its envelope keys that do, and the raw values as sent.

    Reads the whole ``events`` table a page at a time (constant memory), only the columns that can name anyone.
    """
    found: dict[int, list[str]] = {}
    sent: set[str] = set()
    columns = (
        _events.c.id,
        _events.c.identifiers,
        _events.c.app_id,
        _payload_field(RECEIPT, "member"),
        _payload_field(SCAN, "member_id"),
    )
    last = 0
    while True:
        page = conn.execute(select(*columns).where(_events.c.id > last).order_by(_events.c.id).limit(PAGE)).all()
        if not page:
            return found, sent
        last = int(page[-1][0])
        for pk, identifiers, app_id, member, member_id in page:
            if pk in skip:
                continue
            hits = [
                (key, raw)
                for key, kind, raw in named_pairs(identifiers, member, member_id)
                if matches(kind, raw, app_id)
            ]
            if hits:
                found[int(pk)] = [key for key, _ in hits if key is not None]
                sent.update(str(raw) for _, raw in hits)


def find(
    conn: Connection,
    registry: Registry,
    ids: Sequence[int],
    held: Iterable[Pair],
    sent: Iterable[str],
    event_pks: Sequence[int],
) -> Mentions:
    """The rows naming the customers ``ids`` (one person) beyond their linked events ``event_pks``.

    ``held`` are the identifiers they hold (type, stored value), ``sent`` those values as their events sent them.
    """
    released = released_identifiers(conn, ids)
    matches = Matcher(registry, [*held, *((k, v) for _, k, v in released)], sent)
    copies = receipt_copies(conn, ids, event_pks)
    skip = set(event_pks) | set(copies)
    naming, raw = naming_events(conn, matches, skip)
    owners: dict[int, int] = {}
    ordered = sorted(naming)
    for start in range(0, len(ordered), 500):
        rows = conn.execute(
            select(_owners.c.event_pk, _owners.c.customer_id).where(
                _owners.c.event_pk.in_(ordered[start : start + 500])
            )
        )
        owners.update((int(pk), int(cid)) for pk, cid in rows)
    unlinked = sorted(pk for pk in naming if pk not in owners)
    foreign = {pk: keys for pk, keys in naming.items() if pk in owners}
    return Mentions(released, unlinked, copies, foreign, raw)
