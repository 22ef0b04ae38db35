"""Helpers for the sources tests: issuing keys, posting a source's events, reading stored events."""

from __future__ import annotations

import gzip
from typing import Any

import orjson
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from central import db as central_db
from central.config_loader import load_config
from central.identity.models import Customer, EventCustomer
from central.identity.registry import Registry, load_registry
from central.ingest.models import Event
from central.sources.keys import issue_key


def new_key(app: Flask, source: str = "miniprogram") -> str:
    """A fresh API key for ``source``, issued as the CLI issues it."""
    with central_db.session_factory(app)() as db:
        _, key = issue_key(db, source, app.config["CLOCK"](), created_by="test")
        db.commit()
    return key


def post_events(
    client: FlaskClient, key: str, events: list[Any], *, source: str = "miniprogram", gzipped: bool = False
) -> TestResponse:
    body = orjson.dumps({"schema": 1, "events": events})
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    if gzipped:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    return client.post(f"/api/v1/sources/{source}/events", data=body, headers=headers)


def source_event(event_id: str, kind: str = "member.login", **fields: Any) -> dict[str, Any]:
    return {"event_id": event_id, "kind": kind, "observed_at": "2026-11-20T08:00:00+08:00", **fields}


def stored_events(app: Flask) -> list[Any]:
    with central_db.session_factory(app)() as db:
        # Which customer an event belongs to is identity's event_customers.
        owner = EventCustomer.__table__
        query = select(Event.__table__, owner.c.customer_id).outerjoin(owner, owner.c.event_pk == Event.id)
        return list(db.execute(query.order_by(Event.id)))


def survivor(app: Flask, customer_id: int | None) -> int | None:
    """The live customer a (possibly merged-away) customer id now belongs to."""
    with central_db.session_factory(app)() as db:
        while customer_id is not None:
            merged_into = db.scalar(select(Customer.merged_into).where(Customer.id == customer_id))
            if merged_into is None:
                return customer_id
            customer_id = merged_into
    return None


def default_registry() -> Registry:
    """The identifier registry under the default settings."""
    return load_registry(load_config(None, environ={}))
