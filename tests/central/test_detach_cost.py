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

from central.identity.models import Identifier
from central.ingest.models import Event
from tests.central.customer_support import engine_at
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
