"""Helpers for the trigger kind and effect tests: people with consent, sales, tags, declaring and firing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask
from sqlalchemy import func, select

from central import db as central_db
from central.campaigns import triggers
from central.campaigns.models import ExportEntry, TriggerOccasion
from central.customers import catalog, tagging
from shared import wire
from tests.central.consent_support import consent_event, customer_of, load, signup
from tests.central.customer_support import PRODUCTS, sale, store

TZ = "Asia/Shanghai"
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)  # 20:00 in Shanghai, Monday 30 November


def at(delta: timedelta) -> str:
    """NOW plus ``delta`` as wire time."""
    return wire.format_time(NOW + delta)


def instant(delta: timedelta) -> str:
    """NOW plus ``delta`` to the second, as occasions spell purchase times."""
    return (NOW + delta).strftime("%Y-%m-%dT%H:%M:%SZ")


def person(app: Flask, phone: str, *, consent: bool | None = True, purpose: str = "marketing") -> None:
    """A member (signed up 400 days ago, profiled) who granted, withdrew or never decided ``purpose`` on SMS."""
    events = [signup(f"s-{phone}", phone, at=NOW - timedelta(days=400))]
    # Profiling consent, so the tags win-back and repurchase reminders read are computed for them.
    profiled = NOW - timedelta(days=399)
    events.append(consent_event(f"p-{phone}", phone, granted=True, purpose="profiling", channel=None, at=profiled))
    if consent is not None:
        events.append(
            consent_event(f"c-{phone}-{purpose}", phone, granted=consent, purpose=purpose, at=NOW - timedelta(days=399))
        )
    load(app, events, now=NOW - timedelta(days=399))


def sales(app: Flask, events: Sequence[dict[str, Any]], now: datetime = NOW) -> None:
    """Store sale events (see ``customer_support.sale``) through the ingest path."""
    store(central_db.engine_for(app), events, now=now)


def buy(app: Flask, event_id: str, phone: str, when: timedelta, total: str = "50.00", skus: Sequence[str] = ()) -> None:
    """One store receipt of ``phone`` at NOW + ``when``."""
    sales(app, [sale(event_id, at(when), total, phone=phone, skus=list(skus))], now=NOW + max(when, timedelta(0)))


def with_catalog(app: Flask) -> None:
    with central_db.engine_for(app).begin() as conn:
        catalog.load(conn, PRODUCTS, NOW)


def recompute(app: Flask, now: datetime = NOW) -> None:
    """The nightly full recompute of the built-in tags as of ``now``."""
    with central_db.engine_for(app).begin() as conn:
        tagging.recompute(conn, app.config["CENTRAL"], now)


def declare(
    app: Flask,
    name: str,
    kind: str,
    params: dict[str, Any] | None = None,
    *,
    action: str = "export",
    action_params: dict[str, Any] | None = None,
    control: float = 0.0,
) -> int:
    declared = triggers.check(name, kind, {"channel": "sms", **(params or {})}, action, action_params or {}, control)
    with central_db.session_factory(app)() as db:
        trigger_id = triggers.declare(db, declared, actor="test", now=NOW)
        db.commit()
    return trigger_id


def evaluate(app: Flask, now: datetime = NOW, instance: str = "test") -> dict[str, int]:
    with central_db.session_factory(app)() as db:
        return triggers.evaluate_all(db, now, TZ, instance)


def fired(app: Flask, trigger_id: int) -> list[tuple[int, str, str]]:
    """(customer, occasion, group) of each firing of the trigger, in ledger order."""
    occasions = TriggerOccasion.__table__
    query = (
        select(occasions.c.customer_id, occasions.c.occasion, occasions.c.grp)
        .where(occasions.c.trigger_id == trigger_id)
        .order_by(occasions.c.id)
    )
    with central_db.session_factory(app)() as db:
        return [(int(c), str(o), str(g)) for c, o, g in db.execute(query)]


def exported(app: Flask, trigger_id: int) -> int:
    """How many rows the trigger added to its export list."""
    exports = ExportEntry.__table__
    with central_db.session_factory(app)() as db:
        return db.scalar(select(func.count()).select_from(exports).where(exports.c.trigger_id == trigger_id)) or 0


def customer(app: Flask, phone: str) -> int:
    return customer_of(app, phone)
