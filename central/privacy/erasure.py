"""Erasing a customer (PIPL Art. 47; decision 0098): afterwards central holds no personal data of theirs.

One transaction does it all, and writes the ``erasures`` row last: killed midway, nothing is done;
run again, it finds the row and says so. What goes and what stays:

* identifiers, the golden record, attribute observations, match keys, notes, statistics, tags,
  segment memberships and their history, trigger export rows, review items and the person's rows of
  the identity ledger are deleted; each identifier leaves only a keyed hash (``tombstones``);
* the person's events keep their kind, store, time and sale (total, items) for finance, with the
  identity envelope, attributes and every personal field of the payload removed; receipts, scans,
  visits and import rows no longer name the customer; coupon codes no longer name the member;
* what named the person without being linked to them (:mod:`central.privacy.mentions`): identifiers
  they held once and no one holds now go like theirs; events naming them and linked to no one, and
  the copies of their receipts, are scrubbed like theirs; someone else's events that also named
  them lose only the envelope keys and texts that did;
* consent decisions are reduced to the withdrawals, the proof that a withdrawal was honoured;
* pending webhook calls about the person are cancelled, and every call's body about them emptied
  (segment exports' calls lose the person's entries: :mod:`central.privacy.calls`);
* the member's app keys are revoked at every store, and the stores' member cards lose the member;
* the ``customers`` row stays as an empty shell (no figures, dates set to the erasure) so that its
  id is never given to someone else, and the erasure row says when, by whom and why.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, delete, insert, or_, select, update
from sqlalchemy.orm import Session

from central.campaigns.coupon_models import CouponCode
from central.campaigns.models import ExportEntry
from central.customers.consent_models import ConsentDecision
from central.customers.models import (
    CustomerCategory,
    CustomerDay,
    CustomerNote,
    CustomerStats,
    CustomerStore,
    CustomerTag,
    Receipt,
)
from central.fleet import downlink
from central.fleet.models import DownlinkDocument
from central.identity.models import (
    AttributeObservation,
    Customer,
    EventCustomer,
    GoldenAttribute,
    Identifier,
    LedgerEntry,
    MatchKey,
    RecomputeMark,
    ReviewItem,
)
from central.identity.registry import Registry, default_registry
from central.ingest.models import Event
from central.members import cards, codes
from central.members.models import MemberKey, MemberScan
from central.models import table
from central.presence.models import PresenceVisit
from central.privacy import calls, mentions, scrubbing, tombstones
from central.privacy.models import ErasedIdentifier, Erasure
from central.privacy.scrubbing import ERASED
from central.privacy.subjects import customers_of
from central.segments.models import SegmentMember, SegmentMembershipEvent
from central.sources.models import ImportRow

# Attributes too common to replace inside other text (a city is also in store names).
_NOT_SEARCHED = frozenset({"gender", "city", "province", "postcode"})
_MIN_SEARCHED = 2


class ErasureError(Exception):
    """An erasure that cannot be done as asked (the message says why)."""


@dataclass(frozen=True)
class Plan:
    """What erasing a customer would touch, counted before anything changes."""

    customer_id: int
    counts: dict[str, int]


@dataclass(frozen=True)
class Done:
    """An erasure, done now or earlier (``already``)."""

    customer_id: int
    erased_at: datetime
    counts: dict[str, int]
    already: bool


def erasure_of(db: Session, customer_id: int) -> Erasure | None:
    """The erasure of a customer, if there was one."""
    return db.scalar(select(Erasure).where(Erasure.customer_id == customer_id))


def revokes_member_keys(db: Session, customer_id: int) -> bool:
    """Whether erasing the customer revokes member app keys: then it needs central's ``secret.key`` to sign."""
    held = (
        select(MemberKey.id)
        .join(Identifier, Identifier.value == MemberKey.member_id)
        .where(Identifier.customer_id.in_(customers_of(db, customer_id)), Identifier.kind == "member_id")
        .limit(1)
    )
    return db.scalar(held) is not None


def _count(db: Session, model: Any, *where: Any) -> int:
    from sqlalchemy import func

    return int(db.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def _event_pks(db: Session, ids: Sequence[int]) -> list[int]:
    """Every event that says something about the person: linked to them, or behind a fact of theirs."""
    found: set[int] = set(db.scalars(select(EventCustomer.event_pk).where(EventCustomer.customer_id.in_(ids))))
    for column, owner in (
        (AttributeObservation.event_pk, AttributeObservation.customer_id),
        (ConsentDecision.event_pk, ConsentDecision.customer_id),
        (MemberScan.event_pk, MemberScan.customer_id),
        (PresenceVisit.event_pk, PresenceVisit.customer_id),
        (ImportRow.event_pk, ImportRow.customer_id),
    ):
        found.update(pk for pk in db.scalars(select(column).where(owner.in_(ids))) if pk is not None)
    return sorted(found)


@dataclass(frozen=True)
class _Reach:
    """Everything about the person an erasure reads before it changes anything."""

    ids: list[int]
    held: list[tuple[int, str, str]]
    event_pks: list[int]
    sent: set[str]
    found: mentions.Mentions

    @property
    def identifiers(self) -> list[tuple[int, str, str]]:
        return [*self.held, *self.found.released]

    @property
    def all_events(self) -> list[int]:
        return sorted({*self.event_pks, *self.found.unlinked, *self.found.copies, *self.found.foreign})


def _reach(db: Session, customer_id: int, registry: Registry | None) -> _Reach:
    ids = customers_of(db, customer_id)
    idents = db.execute(select(Identifier.id, Identifier.kind, Identifier.value).where(Identifier.customer_id.in_(ids)))
    held = [(int(i), str(k), str(v)) for i, k, v in idents]
    event_pks = _event_pks(db, ids)
    sent = _sent_values(db, event_pks)
    pairs = [(k, v) for _, k, v in held]
    found = mentions.find(db.connection(), registry or default_registry(), ids, pairs, sent, event_pks)
    return _Reach(ids, held, event_pks, sent, found)


def _reviews_of(reach: _Reach) -> list[Any]:
    """Conditions on review_items, one per page of events, that together find every item about the person."""
    ident_ids = [i for i, _, _ in reach.identifiers]
    about = [
        ReviewItem.customer_id.in_(reach.ids),
        ReviewItem.other_customer_id.in_(reach.ids),
        ReviewItem.identifier_id.in_(ident_ids),
    ]
    events = reach.all_events
    # review_items.event_pk has no index; the queue is small next to the events, and read once a page.
    pages = [ReviewItem.event_pk.in_(events[start : start + 500]) for start in range(0, len(events), 500)]
    return [or_(*about), *pages]


def plan(db: Session, customer_id: int, *, registry: Registry | None = None) -> Plan:
    """Count what erasing ``customer_id`` would change, changing nothing (``registry`` reads identifiers as sent)."""
    reach = _reach(db, customer_id, registry)
    ids = reach.ids
    reviews: set[int] = set()
    for where in _reviews_of(reach):
        reviews.update(db.scalars(select(ReviewItem.id).where(where)))
    counts = {
        "identifiers": len(reach.identifiers),
        "attributes": _count(db, GoldenAttribute, GoldenAttribute.customer_id.in_(ids)),
        "events": len(reach.event_pks),
        "events_unlinked": len(reach.found.unlinked),
        "events_of_others": len(reach.found.foreign),
        "receipt_copies": len(reach.found.copies),
        "review_items": len(reviews),
        "receipts": _count(db, Receipt, Receipt.customer_id.in_(ids)),
        "consent_decisions": _count(db, ConsentDecision, ConsentDecision.customer_id.in_(ids)),
        "notes": _count(db, CustomerNote, CustomerNote.customer_id.in_(ids)),
        "tags": _count(db, CustomerTag, CustomerTag.customer_id.in_(ids)),
        "segment_members": _count(db, SegmentMember, SegmentMember.customer_id.in_(ids)),
    }
    return Plan(customer_id, counts)


def _sent_values(db: Session, event_pks: Sequence[int]) -> set[str]:
    """The person's identifiers and member details as their events sent them."""
    found: set[str] = set()
    for start in range(0, len(event_pks), 500):
        chunk = event_pks[start : start + 500]
        for sent, payload in db.execute(select(Event.identifiers, Event.payload).where(Event.id.in_(chunk))):
            if isinstance(sent, dict):
                found.update(v for v in sent.values() if isinstance(v, str))
            member = payload.get("member") if isinstance(payload, dict) else None
            if isinstance(member, dict):
                found.update(v for v in member.values() if isinstance(v, str))
    return found


def _personal_strings(db: Session, reach: _Reach) -> list[str]:
    """Every text that names the person, longest first: identifiers as stored and as sent, names, birthdays."""
    ids = reach.ids
    found: set[str] = {*reach.sent, *reach.found.sent}
    for _, kind, value in reach.identifiers:
        found.add(value)
        if kind == "phone" and value.startswith("+86"):
            found.add(value[3:])  # the national form tills print
    for model in (GoldenAttribute, AttributeObservation):
        for attribute, value in db.execute(select(model.attribute, model.value).where(model.customer_id.in_(ids))):
            if attribute not in _NOT_SEARCHED:
                found.add(value)
    found.update(db.scalars(select(MemberScan.member_id).where(MemberScan.customer_id.in_(ids))))
    return sorted((s for s in found if len(s.strip()) >= _MIN_SEARCHED), key=len, reverse=True)


def _delete(conn: Connection, model: Any, *where: Any) -> int:
    return int(conn.execute(delete(table(model)).where(*where)).rowcount or 0)


def _update(conn: Connection, model: Any, values: dict[str, Any], *where: Any) -> int:
    return int(conn.execute(update(table(model)).where(*where).values(**values)).rowcount or 0)


def erase(
    db: Session,
    customer_id: int,
    *,
    now: datetime,
    operator: str,
    reason: str,
    secret: bytes | None,
    registry: Registry | None = None,
) -> Done:
    """Erase a live customer in the caller's transaction (the caller commits); an erased one is left as it is.

    ``secret`` (central's ``secret.key``) signs the revoked member keys' list for the stores; it may
    be None only when the customer holds no member app keys. ``registry`` (the retail defaults if
    None) reads the identifiers events sent, to find those that name the person unlinked.
    """
    earlier = erasure_of(db, customer_id)
    if earlier is not None:
        return Done(customer_id, earlier.erased_at, dict(earlier.counts), already=True)
    row = db.get(Customer, customer_id)
    if row is None:
        raise ErasureError(f"no customer {customer_id}")
    if row.merged_into is not None:
        raise ErasureError(f"customer {customer_id} was merged into {row.merged_into}: erase that customer")
    reason = reason.strip()
    if not reason:
        raise ErasureError("say why (the request's ticket), with a reason")
    reach = _reach(db, customer_id, registry)
    ids = reach.ids
    conn = db.connection()
    counts: dict[str, int] = {}
    personal = scrubbing.pattern(_personal_strings(db, reach))

    # Identifiers, held now or once: the hash stays, the value goes; member keys and cards follow the member id.
    held = reach.identifiers
    member_ids = [v for _, k, v in reach.held if k == "member_id"]
    counts["member_keys"] = _revoke_members(db, member_ids, secret, now=now, operator=operator)
    key = tombstones.key_for_erasure(conn, now)
    ident_ids = [i for i, _, _ in held]
    counts["ledger"] = _delete(
        conn,
        LedgerEntry,
        or_(
            LedgerEntry.customer_id.in_(ids),
            LedgerEntry.other_customer_id.in_(ids),
            LedgerEntry.identifier_id.in_(ident_ids),
            LedgerEntry.anchor_identifier_id.in_(ident_ids),
        ),
    )
    counts["review_items"] = sum(_delete(conn, ReviewItem, where) for where in _reviews_of(reach))
    counts["event_customers"] = _delete(conn, EventCustomer, EventCustomer.customer_id.in_(ids))
    counts["identifiers"] = _delete(conn, Identifier, Identifier.id.in_(ident_ids))
    for model, column in (
        (GoldenAttribute, GoldenAttribute.customer_id),
        (AttributeObservation, AttributeObservation.customer_id),
        (MatchKey, MatchKey.customer_id),
        (CustomerNote, CustomerNote.customer_id),
        (CustomerStats, CustomerStats.customer_id),
        (CustomerDay, CustomerDay.customer_id),
        (CustomerStore, CustomerStore.customer_id),
        (CustomerCategory, CustomerCategory.customer_id),
        (CustomerTag, CustomerTag.customer_id),
        (SegmentMember, SegmentMember.customer_id),
        (SegmentMembershipEvent, SegmentMembershipEvent.customer_id),
        (ExportEntry, ExportEntry.customer_id),
        (RecomputeMark, RecomputeMark.customer_id),
    ):
        counts[str(model.__tablename__)] = _delete(conn, model, column.in_(ids))
    counts["consent_grants"] = _delete(
        conn, ConsentDecision, ConsentDecision.customer_id.in_(ids), ConsentDecision.granted.is_(True)
    )
    counts["consent_withdrawals_kept"] = _count(db, ConsentDecision, ConsentDecision.customer_id.in_(ids))

    # Facts that stay for finance and operations, no longer about anyone.
    counts["receipts"] = _update(conn, Receipt, {"customer_id": None}, Receipt.customer_id.in_(ids))
    gone = {"customer_id": None, "member_id": ERASED}
    counts["member_scans"] = _update(conn, MemberScan, gone, MemberScan.customer_id.in_(ids))
    # A scan linked to no one (of a member id removed earlier) still names it; found by its event (unique index).
    unlinked = reach.found.unlinked
    for start in range(0, len(unlinked), 500):
        chunk = unlinked[start : start + 500]
        counts["member_scans"] += _update(conn, MemberScan, gone, MemberScan.event_pk.in_(chunk))
    counts["presence_visits"] = _update(conn, PresenceVisit, {"customer_id": None}, PresenceVisit.customer_id.in_(ids))
    counts["import_rows"] = _update(
        conn, ImportRow, {"customer_id": None, "external_id": None}, ImportRow.customer_id.in_(ids)
    )
    if member_ids:
        counts["coupon_codes"] = _update(conn, CouponCode, {"member_id": None}, CouponCode.member_id.in_(member_ids))
    counts["events"] = scrubbing.scrub_events(conn, reach.event_pks, personal)
    counts["events_unlinked"] = scrubbing.scrub_events(conn, reach.found.unlinked, personal)
    counts["receipt_copies"] = scrubbing.scrub_events(conn, reach.found.copies, personal)
    counts["events_of_others"] = scrubbing.scrub_events(
        conn, sorted(reach.found.foreign), personal, reach.found.foreign
    )
    counts["webhook_calls"] = calls.scrub_calls(conn, ids, now)

    tables = table(Customer)
    conn.execute(
        update(tables)
        .where(tables.c.id.in_(ids))
        .values(receipts_count=0, total_spent=0, first_seen_at=now, last_seen_at=now, version=tables.c.version + 1)
    )
    counts = {name: n for name, n in sorted(counts.items()) if n}
    erasure_id = conn.execute(
        insert(table(Erasure))
        .values(customer_id=customer_id, erased_at=now, operator=operator[:128], reason=reason[:500], counts=counts)
        .returning(table(Erasure).c.id)
    ).scalar_one()
    digests = sorted({tombstones.digest(key, kind, value) for _, kind, value in held})
    if digests:
        conn.execute(
            insert(table(ErasedIdentifier)),
            [{"digest": d, "erasure_id": erasure_id, "erased_at": now} for d in digests],
        )
    return Done(customer_id, now, counts, already=False)


def _revoke_members(
    db: Session, member_ids: Sequence[str], secret: bytes | None, *, now: datetime, operator: str
) -> int:
    """Revoke the members' app keys at every store and take them off the stores' member cards."""
    if not member_ids:
        return 0
    keys: Table = table(MemberKey)
    held = db.scalar(select(keys.c.id).where(keys.c.member_id.in_(member_ids)).limit(1))
    revoked = 0
    if held is not None:
        if secret is None:
            raise ErasureError("the member's app keys are revoked with central's secret.key, which was not given")
        revoked = int(
            db.connection()
            .execute(
                update(keys).where(keys.c.member_id.in_(member_ids), keys.c.revoked_at.is_(None)).values(revoked_at=now)
            )
            .rowcount
            or 0
        )
        db.execute(update(keys).where(keys.c.member_id.in_(member_ids)).values(member_id=ERASED))
        codes.publish_keys(db, secret, now=now, actor=operator)
    _drop_cards(db, member_ids, now=now, operator=operator)
    return revoked


def _drop_cards(db: Session, member_ids: Iterable[str], *, now: datetime, operator: str) -> None:
    docs = table(DownlinkDocument)
    gone = set(member_ids)
    for store_id, body in db.execute(select(docs.c.store_id, docs.c.body).where(docs.c.name == cards.DOCUMENT)).all():
        members = body.get("members") if isinstance(body, dict) else None
        if isinstance(members, dict) and gone & set(members):
            kept = {k: v for k, v in members.items() if k not in gone}
            downlink.publish(db, store_id, cards.DOCUMENT, {**body, "members": kept}, now=now, actor=operator)
