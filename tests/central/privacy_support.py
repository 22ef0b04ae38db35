"""A person to answer requests about (a copy, an erasure), and a scan of the whole database for their traces."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import JSON, Engine, String, Text, func, select, text

from central import db as central_db
from central.customers.notes import add_note, file_complaint
from central.identity.models import Identifier
from central.identity.registry import load_registry
from central.schema import Base
from central.sources.events import store_source_events
from tests.central.cli_runner import write_config
from tests.central.support import START, Agent

PHONE = "13912340876"
NAME = "欧阳娜娜"
MEMBER = "M7788123"
OTHER = "13712345670"
NEEDLES = (PHONE, NAME, MEMBER, "1990-03-05")  # what erasing the person must leave nowhere


def load(app: Flask, events: list[dict[str, Any]], *, now: Any = START, source: str = "crm") -> None:
    """Ingest ``events`` from the online source ``source``, as its API would."""
    with central_db.session_factory(app)() as db:
        staged = store_source_events(db, source, events, now, registry=load_registry(app.config["CENTRAL"]))
        db.commit()
    assert not staged.rejected, staged.rejected


def event(event_id: str, kind: str, at: Any, payload: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """One source event observed ``at``."""
    return {"event_id": event_id, "kind": kind, "observed_at": at.isoformat(), "payload": payload or {}, **fields}


def config_file(app: Flask) -> str:
    """A ``central.toml`` for the app's data directory and database, for the command."""
    config = app.config["CENTRAL"]
    return str(
        write_config(config.server_data_dir.parent / "central.toml", config.server_data_dir, config.database_url)
    )


def make_person(app: Flask, client: FlaskClient, agent: Agent) -> int:
    """One member with a signup, consents, a till receipt, an online order, a note and a complaint; and someone else."""
    ids = {"phone": PHONE, "member_id": MEMBER}
    at = START - timedelta(days=3)
    load(
        app,
        [
            event("s1", "member.signup", at, identifiers=ids, name=NAME, birthday="1990-03-05", city="杭州"),
            event(
                "c1",
                "consent.given",
                at,
                {"purpose": "marketing", "channel": "sms", "notice_version": "2026-01"},
                identifiers=ids,
            ),
            event("c2", "consent.withdrawn", at + timedelta(hours=1), {"purpose": "marketing"}, identifiers=ids),
            event(
                "o1",
                "order.online",
                at + timedelta(hours=2),
                {"order_no": "W1", "total": "59.90", "items": [{"sku": "F900", "name": "Formula", "qty": 1}]},
                identifiers={"phone": PHONE},
            ),
            event("x1", "member.signup", at, identifiers={"phone": OTHER}, name="李四"),
        ],
    )
    agent.send(client, [agent.receipt("R1", "100.00", phone=PHONE, observed_at=START - timedelta(days=1))])
    with central_db.session_factory(app)() as db:
        customer = db.scalar(select(Identifier.customer_id).where(Identifier.value == "+86" + PHONE))
        assert customer is not None
        add_note(db, customer, f"called back {NAME} about the order", author="wang", now=START)
        file_complaint(db, load_registry(app.config["CENTRAL"]), customer, "late delivery", operator="cs1", now=START)
        db.commit()
    return customer


def _text_columns() -> Iterator[tuple[str, str]]:
    for table in Base.metadata.sorted_tables:
        for column in table.columns:
            if isinstance(column.type, String | Text | JSON):
                yield table.name, column.name


def traces(engine: Engine, needles: tuple[str, ...] | list[str]) -> list[tuple[str, str]]:
    """Every (table, column) whose text holds one of ``needles``: a scan of the whole database."""
    found = []
    with engine.connect() as conn:
        for table, column in _text_columns():
            for (value,) in conn.execute(text(f"SELECT CAST({column} AS TEXT) FROM {table}")):  # noqa: S608
                if value is not None and any(n in value or json.dumps(n)[1:-1] in value for n in needles):
                    found.append((table, column))
    return sorted(set(found))


def row_counts(engine: Engine) -> dict[str, int]:
    """How many rows every table of the database at ``engine`` holds."""
    with engine.connect() as conn:
        return {
            name: conn.scalar(select(func.count()).select_from(table)) or 0
            for name, table in Base.metadata.tables.items()
        }
