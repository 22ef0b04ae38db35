"""Properties of the identity graph for any sequence of link events (hypothesis), on both backends.

Each example uses identifier values of its own, so examples share one database without meeting.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from central.identity import ledger, split
from central.identity.models import Identifier, LedgerEntry
from central.identity.registry import default_registry
from central.identity.resolve import resolve
from tests.central.identity_support import engine_for, facts
from tests.central.support import START

# Thresholds out of reach so that re-sending evidence cannot tip a value into suspicion.
CALM = replace(default_registry(), suspicious_per_day=10_000, suspicious_total=10_000)
# Thresholds so low that values turn suspicious and their links are undone within a few facts.
TIGHT = replace(default_registry(), suspicious_per_day=2, suspicious_total=3)
_examples = itertools.count(1001)

KINDS = ("member_id", "member_card", "phone", "email", "device_hash")
identifier = st.tuples(st.sampled_from(KINDS), st.integers(0, 3))
fact_sets = st.lists(st.lists(identifier, min_size=1, max_size=3, unique=True), min_size=1, max_size=8)
EXAMPLES = settings(
    max_examples=int(os.environ.get("CDP_HYPOTHESIS_EXAMPLES", "20")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def raw(kind: str, n: int, ex: int) -> str:
    return {
        "member_id": f"M{ex}-{n}",
        "member_card": f"C{ex}X{n}",
        "phone": f"139{ex:04d}{n:04d}",
        "email": f"e{ex}x{n}@example.com",
        "device_hash": f"d{ex:05d}x{n:04d}",
    }[kind]


def stored(kind: str, n: int, ex: int) -> tuple[str, str]:
    value = CALM.normalize(kind, raw(kind, n, ex))
    assert value is not None
    return (kind, value)


@pytest.fixture
def db(backend) -> Iterator[Session]:
    with engine_for(backend.url) as engine, Session(engine) as session:
        yield session


def send(db: Session, sets: list[list[tuple[str, int]]], ex: int, start: int = 0, registry=CALM) -> list[int | None]:
    made = facts(db, *[[(k, raw(k, n, ex)) for k, n in s] for s in sets], at=START + timedelta(hours=start))
    result = resolve(db, made, START + timedelta(days=1), registry=registry)
    db.commit()
    return result.customer_ids


def graph(db: Session, ex: int) -> set[frozenset[tuple[str, str]]]:
    """This example's live customers as sets of identifiers."""
    mine = {stored(k, n, ex) for k in KINDS for n in range(4)}
    groups: dict[int, set[tuple[str, str]]] = {}
    for kind, value, customer in db.execute(
        select(Identifier.kind, Identifier.value, Identifier.customer_id).where(Identifier.customer_id.is_not(None))
    ):
        if (kind, value) in mine:
            groups.setdefault(customer, set()).add((kind, value))
    return {frozenset(g) for g in groups.values()}


def no_mismatch(db: Session) -> None:
    found = ledger.rebuild(db)
    db.rollback()
    assert (found.identifier_mismatches, found.customer_mismatches) == (0, 0)


@EXAMPLES
@given(sets=fact_sets, batch_size=st.integers(1, 8), registry=st.sampled_from([CALM, TIGHT]))
def test_incremental_graph_equals_a_rebuild_from_the_ledger(db, sets, batch_size, registry):
    ex = next(_examples)
    for start in range(0, len(sets), batch_size):
        send(db, sets[start : start + batch_size], ex, start, registry)
    no_mismatch(db)


@EXAMPLES
@given(sets=fact_sets)
def test_no_customer_ever_holds_two_values_of_a_unique_type(db, sets):
    ex = next(_examples)
    for n, one in enumerate(sets):
        send(db, [one], ex, n)
        for group in graph(db, ex):
            assert len([kind for kind, _ in group if kind == "member_id"]) <= 1


@EXAMPLES
@given(sets=fact_sets, data=st.data())
def test_a_split_followed_by_the_same_evidence_merges_identically(db, sets, data):
    ex = next(_examples)
    evidence: dict[int, list[tuple[str, int]]] = {}
    for n, one in enumerate(sets):
        made = facts(db, [(k, raw(k, n_, ex)) for k, n_ in one], at=START + timedelta(hours=n))
        resolve(db, made, START + timedelta(days=1), registry=CALM)
        db.commit()
        evidence[made[0].event_pk] = one
    merged = graph(db, ex)
    rows = list(
        db.scalars(
            select(LedgerEntry)
            .where(LedgerEntry.action == "merge", LedgerEntry.event_pk.in_(list(evidence)))
            .order_by(LedgerEntry.id)
        )
    )
    if not rows:
        return
    row = data.draw(st.sampled_from(rows))
    survivor = db.scalar(select(Identifier.customer_id).where(Identifier.id == row.identifier_id))
    assert survivor is not None
    split.split(db, survivor, row.id, now=START + timedelta(days=2), operator="test")
    db.commit()
    assert len(merged) <= len(graph(db, ex)) <= len(merged) + 1
    no_mismatch(db)
    send(db, [evidence[row.event_pk]], ex, len(sets) + 1)
    assert graph(db, ex) == merged
    no_mismatch(db)


@EXAMPLES
@given(sets=fact_sets, removed=identifier)
def test_a_tombstoned_value_never_reattaches(db, sets, removed):
    ex = next(_examples)
    kind, value = stored(*removed, ex)
    send(db, sets[: len(sets) // 2], ex)
    split.remove_identifier(db, kind, value, now=START + timedelta(days=1), operator="test")
    db.commit()
    send(db, [*sets[len(sets) // 2 :], [removed]], ex, 10)
    state, owner = db.execute(
        select(Identifier.state, Identifier.customer_id).where(Identifier.kind == kind, Identifier.value == value)
    ).one()
    assert (state, owner) == ("removed", None)
    no_mismatch(db)
