"""Helpers for the consent and trigger tests: customers and consent events through the sources path."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

import orjson
from flask import Flask
from sqlalchemy import select

from central import db as central_db
from central.customers.consent_models import ConsentDecision
from central.identity.models import Identifier
from central.identity.registry import load_registry
from central.sources.backfill import BadLine, LoadSummary, load_events
from central.sources.events import store_source_events
from shared import wire

NOTICE = "2026-01"
"""The privacy notice version test grants were given under."""


def load(app: Flask, events: list[dict[str, Any]], *, source: str = "crm", now: datetime | None = None) -> Any:
    """Store ``events`` as source ``source`` would post them; the staged outcome."""
    with central_db.session_factory(app)() as db:
        staged = store_source_events(
            db, source, events, now or app.config["CLOCK"](), registry=load_registry(app.config["CENTRAL"])
        )
    assert not staged.rejected, staged.rejected
    return staged


def signup(event_id: str, phone: str, *, birthday: date | str | None = None, at: datetime) -> dict[str, Any]:
    """A member signup naming a phone and, optionally, a birthday."""
    event: dict[str, Any] = {
        "event_id": event_id,
        "kind": "member.signup",
        "observed_at": wire.format_time(at),
        "identifiers": {"phone": phone},
        "payload": {},
    }
    if birthday is not None:
        event["birthday"] = str(birthday)
    return event


def consent_event(
    event_id: str,
    phone: str,
    *,
    granted: bool,
    at: datetime,
    purpose: str = "marketing",
    channel: str | None = "sms",
    **payload: Any,
) -> dict[str, Any]:
    """A ``consent.given`` or ``consent.withdrawn`` event about the customer holding ``phone``.

    A grant names notice version :data:`NOTICE` unless ``payload`` names one (or ``policy_version``).
    """
    notice = {"notice_version": NOTICE} if granted and "policy_version" not in payload else {}
    body = {"purpose": purpose, **notice, **payload}
    if channel is not None:
        body["channel"] = channel
    return {
        "event_id": event_id,
        "kind": "consent.given" if granted else "consent.withdrawn",
        "observed_at": wire.format_time(at),
        "identifiers": {"phone": phone},
        "payload": body,
    }


def customer_of(app: Flask, phone: str) -> int:
    """The customer holding ``phone`` (as the registry normalizes it)."""
    with central_db.session_factory(app)() as db:
        rows = db.execute(select(Identifier.customer_id, Identifier.value).where(Identifier.kind == "phone")).all()
    matches = [cid for cid, value in rows if value.endswith(phone[-11:])]
    assert len(matches) == 1, (phone, rows)
    return int(matches[0])


def decision_rows(app: Flask) -> list[tuple[str, bool, str, str]]:
    """``(origin_id, granted, source, notice_version)`` of every decision, by origin id."""
    with central_db.session_factory(app)() as db:
        rows = db.execute(
            select(
                ConsentDecision.origin_id,
                ConsentDecision.granted,
                ConsentDecision.source,
                ConsentDecision.notice_version,
            )
        ).all()
    return sorted((o, bool(g), s, n) for o, g, s, n in rows)


def backfill(
    app: Flask, tmp_path: Path, lines: list[dict[str, Any]], **options: Any
) -> tuple[LoadSummary, list[tuple[str | None, str]]]:
    """Load ``lines`` as ``load-events`` would, as source ``legacy``; the summary and the bad lines' ids and reasons."""
    path = tmp_path / "history.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(line) for line in lines) + b"\n")
    bad: list[BadLine] = []
    with central_db.session_factory(app)() as db:
        summary = load_events(
            db,
            path,
            "legacy",
            registry=load_registry(app.config["CENTRAL"]),
            clock=app.config["CLOCK"],
            on_bad_line=bad.append,
            **options,
        )
    return summary, [(b.event_id, b.reason) for b in bad]
