"""Detaching the values a batch flags costs a bounded number of statements per value (counted, not timed).

A phone typed for every customer at a counter (the staff's own number) is flagged suspicious and
its earlier links undone. A batch of receipts can flag several such values; each one's replay of
the ledger reads and writes its own decisions, while where their events, receipts and
observations go is written once for all of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session

from central.identity.models import Identifier, RecomputeMark
from central.identity.resolve import resolve
from central.ingest.models import Event
from tests.central.customer_support import NOW, engine_at
from tests.central.identity_support import engine_for, facts, live_customers
from tests.central.support import Agent


@contextmanager
def _statements() -> Iterator[list[str]]:
    """Every statement any engine sends while the block runs (the app's own engine included)."""
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(Engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", count)


def _staff_phones(agent: Agent, client: FlaskClient, first: int, values: int) -> int:
    """One batch in which ``values`` phones are each typed with ten new cards; its statement count."""
    receipts = [
        agent.receipt(
            f"R{first + n}-{i}", "10.00", phone=f"1381{first + n:03d}5729", card=f"STAFF{first + n:03d}{i:02d}"
        )
        for n in range(values)
        for i in range(10)
    ]
    with _statements() as seen:
        agent.send(client, receipts)
    return len(seen)


def test_the_values_of_one_batch_are_detached_together(backend, app, client, agent):
    one = _staff_phones(agent, client, 0, 1)
    five = _staff_phones(agent, client, 100, 5)
    with engine_at(backend.url) as engine, engine.connect() as conn:
        flagged = conn.scalar(select(func.count()).select_from(Identifier).where(Identifier.state == "suspicious"))
        stored = conn.scalar(select(func.count()).select_from(Event))
    assert (flagged, stored) == (6, 60)
    # Each extra value costs its look-up, its ledger replay and the writes of its own decisions:
    # about eight statements. Moving each value's events, receipts, observations, counts and
    # golden record on its own made it about nineteen.
    assert (five - one) / 4 <= 10, (one, five)


def test_a_detach_that_moves_no_events_leaves_no_statistics_to_recompute(backend):
    # Eight members typed the same phone: each receipt belongs to its member id (the stronger
    # type), so undoing the phone's links moves no event, and no customer's sales change.
    phone = "13812345678"
    with engine_for(backend.url) as engine, Session(engine) as db:
        resolve(db, facts(db, *[{"member_id": f"M{n}", "phone": phone} for n in range(8)]), NOW)
        db.commit()
        state = db.scalar(select(Identifier.state).where(Identifier.value == "+86" + phone))
        assert (state, len(live_customers(db))) == ("suspicious", 8)
        # The phone's first holder was marked for a recompute of statistics that had not changed.
        assert db.scalars(select(RecomputeMark.customer_id)).all() == []
