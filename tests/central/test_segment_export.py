"""The streamed segment export keeps exactly the members the consent gate lets through, page by page.

A generated chain with merges (events and decisions following the survivor), decisions whose event
moved to another customer, withdrawals, ties, minors with and without a guardian's grant and
customers with no decision at all; the export is compared, masked and unmasked, with the members
the gate's own query (:func:`consented`, as exports asked it per page before) and its per-customer
verdict allow, with their details read one by one.
"""

from __future__ import annotations

import csv
import io
import random
import sqlite3
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from central import db as central_db
from central.customers.consent_gate import consented, may_market, moved_owners
from central.customers.consent_models import ALL_CHANNELS, GUARDIAN, ConsentDecision
from central.identity.models import LINKED, Customer, EventCustomer, GoldenAttribute, Identifier
from central.models import table
from central.segments import definitions, exports
from central.segments.definitions import PURPOSE, Draft
from central.segments.models import SegmentMember
from shared.masking import mask_identifier, mask_name
from shared.wire import format_time
from tests.central.support import START

TODAY = date(2026, 11, 23)
CUSTOMERS = 240


def _chain(db: Session, rng: random.Random) -> None:
    """Customers, a fifth merged away, identifiers, names, birthdays, events and decisions, drawn at random."""
    ids = range(1, CUSTOMERS + 1)
    survivors = [i for i in ids if i % 5]
    merged = {i: rng.choice(survivors) for i in ids if i % 5 == 0}
    db.execute(
        insert(table(Customer)),
        [
            {"id": i, "created_at": START, "first_seen_at": START, "last_seen_at": START, "merged_into": None}
            for i in ids
        ],
    )
    for away, survivor in merged.items():
        db.execute(update(table(Customer)).where(table(Customer).c.id == away).values(merged_into=survivor))
    identifiers = []
    for i in ids:
        for n, kind in enumerate(("phone", "phone", "email", "member_id", "member_card")):
            if n == 0 or rng.random() < 0.4:
                value = f"+86138{i:04d}{n:04d}" if kind == "phone" else f"{kind[:3]}{i}x{n}"
                if kind == "email":
                    value = f"p{i}@example.cn"
                identifiers.append((kind, value, i, rng.choice((LINKED, LINKED, "trusted", "unlinked"))))
    rng.shuffle(identifiers)  # the first of a kind is the lowest id, not the first drawn
    db.execute(
        insert(table(Identifier)),
        [
            {
                "id": n + 1,
                "kind": k,
                "value": v,
                "customer_id": c,
                "state": s,
                "created_at": START,
                "last_seen_at": START,
            }
            for n, (k, v, c, s) in enumerate(identifiers)
        ],
    )
    golden = [
        {"customer_id": i, "attribute": "name", "value": rng.choice(("张三丰", "李四", " 王五")), "source": "pos"}
        for i in ids
        if rng.random() < 0.8
    ]
    golden += [
        {"customer_id": i, "attribute": "birthday", "value": f"{rng.choice((1980, 2001, 2013, 2015))}-06-01"}
        | {"source": "member"}
        for i in ids
        if rng.random() < 0.5
    ]
    db.execute(insert(table(GoldenAttribute)), [g | {"verified": False, "observed_at": START} for g in golden])
    # Events now owned by a customer (a merged-away one's by its survivor, as merges move them); a decision
    # that came with an event follows it, so one recorded for another customer has moved with its event.
    owners = {pk: rng.choice(survivors) for pk in range(1, 400)}
    db.execute(
        insert(table(EventCustomer)),
        [{"event_pk": pk, "customer_id": c, "identifier_id": 0} for pk, c in owners.items()],
    )
    instants = [START - timedelta(days=d) for d in (30, 20, 10, 10, 5)]
    decisions = []
    for n in range(700):
        recorded = rng.choice(ids)
        event = rng.choice([None, None, rng.randrange(1, 400)])
        decisions.append(
            {
                "customer_id": recorded,
                "event_pk": event,
                "purpose": rng.choice((PURPOSE, PURPOSE, PURPOSE, "profiling")),
                "channel": rng.choice(("sms", "sms", "wechat", ALL_CHANNELS)),
                "granted": rng.random() < 0.7,
                "observed_at": rng.choice(instants),
                "recorded_at": START,
                "source": "pos",
                "notice_version": "v1",
                "scope": GUARDIAN if rng.random() < 0.2 else "chain",
                "origin": rng.choice(("pos", "crm")),
                "origin_id": f"o{n}",
            }
        )
    db.execute(insert(table(ConsentDecision)), decisions)


def _expected(db: Session, segment: Any, members: list[int], unmasked: bool) -> list[list[str]]:
    """The export as it was: the gate's query over the members, details read member by member."""
    allowed = set(db.scalars(consented(PURPOSE, segment.channel, TODAY, among=members)))
    rows = []
    for cid in sorted(allowed & set(members)):
        found: dict[str, str] = {}
        for kind, value in db.execute(
            select(Identifier.kind, Identifier.value)
            .where(Identifier.customer_id == cid, Identifier.state.in_(("linked", "trusted")))
            .order_by(Identifier.id)
        ):
            if kind in exports.KINDS:
                found.setdefault(kind, value if unmasked else mask_identifier(kind, value))
        name = db.scalar(
            select(GoldenAttribute.value).where(GoldenAttribute.customer_id == cid, GoldenAttribute.attribute == "name")
        )
        if name is not None:
            found["name"] = name if unmasked else mask_name(name)
        entered = format_time(START)
        rows.append([str(cid), *(found.get(k, "") for k in ("name", *exports.KINDS)), entered])
    return rows


def _exported(app: Any, segment: Any, unmasked: bool) -> list[list[str]]:
    sessions = central_db.session_factory(app)
    text = "".join(exports.csv_chunks(sessions, segment, TODAY, unmasked=unmasked, size=512))
    header, *rows = list(csv.reader(io.StringIO(text)))
    assert header == exports.HEADER
    return rows


@pytest.mark.parametrize("seed", [1, 2])
def test_the_streamed_export_keeps_exactly_the_members_the_gate_lets_through(app, seed):
    rng = random.Random(seed)
    with central_db.session_factory(app)() as db:
        _chain(db, rng)
        definitions.create(db, Draft("mixed", "purchases >= 1", "sms"), actor="test", now=START)
        segment = definitions.find(db, "mixed")
        members = sorted(rng.sample(range(1, CUSTOMERS + 1), 180))
        db.execute(
            insert(table(SegmentMember)),
            [{"segment_id": segment.id, "customer_id": c, "entered_at": START} for c in members],
        )
        db.commit()
        live = [c for c in members if c % 5]
        verdicts = {c: may_market(db, c, "sms", TODAY) for c in live}
        moved_here = set(db.scalars(moved_owners(PURPOSE, ["sms", ALL_CHANNELS])))
        expected = {unmasked: _expected(db, segment, members, unmasked) for unmasked in (False, True)}
    # The gate's per-customer verdict agrees with its query, and the chain reaches every case.
    assert {int(r[0]) for r in expected[True]} == {c for c, v in verdicts.items() if v}
    reasons = {v.reason for v in verdicts.values()}
    assert {"granted", "withdrawn", "no_consent", "minor_without_guardian_consent"} <= reasons
    assert len(moved_here & set(live)) >= 5 and len(members) > len(live)
    for unmasked in (False, True):
        assert _exported(app, segment, unmasked) == expected[unmasked]


def _everyone(app, rng):
    """A chain from ``rng`` and a segment "all" holding every customer of it."""
    with central_db.session_factory(app)() as db:
        _chain(db, rng)
        definitions.create(db, Draft("all", "purchases >= 1", "sms"), actor="test", now=START)
        segment = definitions.find(db, "all")
        db.execute(
            insert(table(SegmentMember)),
            [{"segment_id": segment.id, "customer_id": c, "entered_at": START} for c in range(1, CUSTOMERS + 1)],
        )
        db.commit()
    return segment


def test_the_download_starts_with_a_small_first_piece(app):
    segment = _everyone(app, random.Random(3))
    pieces = list(exports.csv_chunks(central_db.session_factory(app), segment, TODAY, unmasked=True, size=2048))
    assert len(pieces[0]) < exports.FIRST + 200 < len("".join(pieces))


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # PostgreSQL's readers never lock out writers
def test_a_download_under_way_does_not_hold_up_writers(app):
    segment = _everyone(app, random.Random(4))
    pieces = exports.csv_chunks(central_db.session_factory(app), segment, TODAY, unmasked=False, size=512)
    assert next(pieces).startswith("customer_id,")  # the download's statement is open
    writer = sqlite3.connect(app.config["CENTRAL"].effective_database_url.removeprefix("sqlite:///"), timeout=0.5)
    try:
        writer.execute("BEGIN IMMEDIATE")  # "database is locked" while the download held the write lock
        writer.execute("DELETE FROM recompute_marks")
        writer.commit()
    finally:
        writer.close()
    assert "".join(pieces).count("\n") > 5  # and the rest of it still comes
