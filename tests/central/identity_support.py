"""Helpers for identity tests: facts as events would give them, and the graph as plain data."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert, select
from sqlalchemy.orm import Session

from central.db import make_engine
from central.identity.models import Customer, EventCustomer, Identifier, ReviewItem
from central.identity.resolve import IdentityFact
from central.ingest.models import Event
from tests.central.support import START

_event_numbers = itertools.count(1)


@contextmanager
def engine_for(url: str) -> Iterator[Engine]:
    engine = make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def store_events(db: Session, count: int, *, at: datetime = START, source: str = "dev_test") -> list[int]:
    """Insert ``count`` bare events (the rows resolve() links to) and return their primary keys."""
    pks = []
    for _ in range(count):
        number = next(_event_numbers)
        result = db.execute(
            insert(Event).values(
                device_id=source,
                event_id=f"ev-{number:08d}",
                seq=number,
                kind="member.update",
                store_id="S001",
                observed_at=at,
                received_at=at,
                payload={},
                batch_id="b",
            )
        )
        pks.append(result.inserted_primary_key[0])
    return pks


def facts(
    db: Session,
    *identifier_sets: dict[str, str] | list[tuple[str, str]],
    at: datetime = START,
    step: timedelta = timedelta(0),
    app_id: str | None = None,
    attributes: dict[str, str] | None = None,
    source: str = "dev_test",
) -> list[IdentityFact]:
    """One fact per identifier set, each backed by a stored event, ``step`` apart."""
    pks = store_events(db, len(identifier_sets), at=at, source=source)
    out = []
    for n, (pk, ids) in enumerate(zip(pks, identifier_sets, strict=True)):
        pairs = tuple(ids.items()) if isinstance(ids, dict) else tuple(ids)
        out.append(
            IdentityFact(
                event_pk=pk,
                source=source,
                event_id=f"ev-{pk}",
                kind="member.update",
                store_id="S001",
                observed_at=at + step * n,
                identifiers=pairs,
                app_id=app_id,
                attributes=attributes or {},
            )
        )
    return out


def partition(db: Session) -> set[frozenset[tuple[str, str]]]:
    """The live customers as sets of their linked (type, value) identifiers."""
    groups: dict[int, set[tuple[str, str]]] = {}
    for kind, value, customer in db.execute(
        select(Identifier.kind, Identifier.value, Identifier.customer_id).where(Identifier.customer_id.is_not(None))
    ):
        groups.setdefault(customer, set()).add((kind, value))
    return {frozenset(g) for g in groups.values()}


def owner_of(db: Session, kind: str, value: str) -> int | None:
    return db.scalar(select(Identifier.customer_id).where(Identifier.kind == kind, Identifier.value == value))


def live_customers(db: Session) -> list[int]:
    return list(db.scalars(select(Customer.id).where(Customer.merged_into.is_(None)).order_by(Customer.id)))


def open_reviews(db: Session) -> list[Any]:
    return list(db.execute(select(ReviewItem).where(ReviewItem.status == "open").order_by(ReviewItem.id)))


def event_owner(db: Session, event_pk: int) -> int | None:
    return db.scalar(select(EventCustomer.customer_id).where(EventCustomer.event_pk == event_pk))
