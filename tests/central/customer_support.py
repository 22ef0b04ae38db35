"""Helpers for the customer statistics and tag tests: sale events, storing them, reading the tables back."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from central.customers import statistics
from central.db import make_engine
from central.sources.events import SourceRow, read_events, stage_rows
from tests.central.sources_support import default_registry

STAT_TABLES = {
    "customer_stats": "customer_id",
    "customer_days": "customer_id, day",
    "customer_stores": "customer_id, store_id",
    "customer_categories": "customer_id, category",
    "unknown_skus": "sku",
}
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
ANY_TIME = datetime.max.replace(tzinfo=UTC)  # generated histories are read whatever their dates


@contextmanager
def engine_at(url: str) -> Iterator[Engine]:
    engine = make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def sale(
    event_id: str,
    at: str,
    total: str,
    *,
    phone: str | None = None,
    card: str | None = None,
    kind: str = "pos.receipt",
    store: str = "S001",
    channel: str | None = None,
    skus: Sequence[str] = (),
) -> dict[str, Any]:
    """A sale event as an online source or backfill sends it."""
    payload: dict[str, Any] = {"total": total, "items": [{"sku": s, "name": s, "qty": 1} for s in skus]}
    if kind == "pos.receipt":
        payload["receipt_no"] = event_id
    elif kind == "order.online":
        payload["order_no"] = event_id
        if channel is not None:
            payload["channel"] = channel
    identifiers = {k: v for k, v in (("phone", phone), ("member_card", card)) if v is not None}
    event: dict[str, Any] = {"event_id": event_id, "kind": kind, "observed_at": at, "store_id": store}
    event["payload"] = payload
    if identifiers:
        event["identifiers"] = identifiers
    return event


def profiling_consent(
    event_id: str,
    *,
    phone: str | None = None,
    card: str | None = None,
    granted: bool = True,
    at: str = "2026-01-01T09:00:00+08:00",
) -> dict[str, Any]:
    """A ``consent.given`` (or ``consent.withdrawn``) event for profiling, naming a phone or a card."""
    identifiers = {k: v for k, v in (("phone", phone), ("member_card", card)) if v is not None}
    return {
        "event_id": event_id,
        "kind": "consent.given" if granted else "consent.withdrawn",
        "observed_at": at,
        "identifiers": identifiers,
        "payload": {"purpose": "profiling", "notice_version": "2026-01"},
    }


def store(engine: Engine, events: Sequence[dict[str, Any]], source: str = "pos_backfill", now: datetime = NOW) -> None:
    """Store the events through the sources' ingest path in one transaction."""
    rows, _, rejected = read_events(events, ANY_TIME)
    assert not rejected, rejected
    with Session(engine) as db:
        stage_rows(db, source, list[SourceRow](rows), now, registry=default_registry())
        db.commit()


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every statistics row, in key order (the log of unknown SKUs folded first)."""
    out = {}
    with engine.begin() as conn:
        statistics.fold_unknown_skus(conn)
    with engine.connect() as conn:
        for name, order in STAT_TABLES.items():
            out[name] = [tuple(r) for r in conn.execute(text(f"SELECT * FROM {name} ORDER BY {order}"))]  # noqa: S608
    return out


PRODUCTS = (
    "sku,gtin,name,category,brand\n",
    "F900,6901234567892,Formula 900 g,Baby > Formula,Feihe\n",
    "D52,,Diapers M 52,Baby/Diapers,Pampers\n",
    "W1,,Wipes,Baby/Care,\n",
    "M1,,Milk 1 l,Dairy,\n",
)


def phone(n: int) -> str:
    """A valid mainland mobile number for customer ``n`` that the registry accepts (not sequential)."""
    return f"139{(n * 7919 + 1_000_003) % 10**8:08d}"


def card(n: int) -> str:
    return f"C{(n * 104729) % 10**9:09d}"
