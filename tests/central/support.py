"""Test helpers for central: a fake clock, a simulated agent that signs real batches, console login."""

from __future__ import annotations

import functools
import gc
import gzip
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from central import db as central_db
from central.auth import hash_password
from central.fleet.enrollment import issue_token
from central.models import User
from central.schema import Base
from shared import wire
from shared.crypto import RequestSigner, b64, new_signing_key
from shared.ids import UUID7

START = datetime(2026, 11, 23, 2, 0, 0, tzinfo=UTC)
BATCHES = "/api/v1/batches"
USERNAME = "alice"
PASSWORD = "correct horse battery"


@dataclass
class FakeClock:
    """A clock that stands still until a test moves it."""

    now: datetime = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def token_for(app: Flask, store_id: str = "S001", ttl_hours: float = 24.0, now: datetime | None = None) -> str:
    """A fresh enrollment token, issued the way the CLI issues it."""
    with central_db.session_factory(app)() as db:
        token = issue_token(db, store_id, ttl_hours, now=now or app.config["CLOCK"]())
        db.commit()
    return token


def row_counts(app: Flask) -> dict[str, int]:
    """How many rows every table holds."""
    with central_db.session_factory(app)() as db:
        return {
            name: db.scalar(select(func.count()).select_from(table)) or 0
            for name, table in Base.metadata.tables.items()
        }


def table_rows(app: Flask, model: type[Base]) -> list[Any]:
    """Every row of ``model``'s table, ordered by id, as plain rows."""
    with central_db.session_factory(app)() as db:
        table = model.__table__
        return list(db.execute(select(table).order_by(table.c.id)))


@dataclass
class Agent:
    """A simulated edge agent: its own key pair, event ids and sequence numbers."""

    store_id: str = "S001"
    device_id: str = ""
    private_key: bytes = b""
    public_key: bytes = b""
    seq: int = 0
    new_id: UUID7 = field(default_factory=UUID7)
    # What the agent signs requests with as their time: the fake clock's start, or for a real
    # server (which checks the time against its own clock) ``lambda: datetime.now(UTC)``.
    clock: Callable[[], datetime] = field(default=lambda: START)

    def __post_init__(self) -> None:
        if not self.private_key:
            self.private_key, self.public_key = new_signing_key()

    def signer(self) -> RequestSigner:
        return RequestSigner(self.device_id, self.private_key)

    def enroll(self, client: FlaskClient, token: str) -> TestResponse:
        response = client.post(
            "/api/v1/enroll",
            json={"token": token, "public_key": b64(self.public_key), "hostname": "pos-1", "agent_version": "0.1.0"},
        )
        if response.status_code == 201:
            self.device_id = response.get_json()["device_id"]
        return response

    def event(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        store_id: str | None = None,
        observed_at: datetime = START,
    ) -> wire.Event:
        self.seq += 1
        return wire.Event(
            event_id=self.new_id(),
            seq=self.seq,
            kind=kind,
            observed_at=wire.format_time(observed_at),
            store_id=store_id or self.store_id,
            payload=payload,
        )

    def receipt(
        self,
        receipt_no: str,
        total: str = "10.00",
        *,
        phone: str | None = None,
        card: str | None = None,
        observed_at: datetime = START,
    ) -> wire.Event:
        payload: dict[str, Any] = {"receipt_no": receipt_no, "total": total, "items": []}
        member = {k: v for k, v in (("phone", phone), ("card", card)) if v is not None}
        if member:
            payload["member"] = member
        return self.event("pos.receipt", payload, observed_at=observed_at)

    def body(self, events: list[wire.Event] | list[dict[str, Any]], *, device_id: str | None = None) -> bytes:
        """The JSON batch as the agent encodes it (before gzip)."""
        if events and isinstance(events[0], dict):
            import json

            doc = {
                "schema": 1,
                "device_id": device_id or self.device_id,
                "batch_id": self.new_id(),
                "sent_at": wire.format_time(START),
                "events": events,
            }
            return json.dumps(doc).encode()
        batch = wire.Batch(
            device_id=device_id or self.device_id,
            batch_id=self.new_id(),
            sent_at=wire.format_time(START),
            events=tuple(events),  # type: ignore[arg-type]
        )
        return wire.encode_batch(batch)

    def signed_headers(self, body: bytes, *, path: str = BATCHES, gzipped: bool = True) -> dict[str, str]:
        headers = self.signer().headers("POST", path, wire.format_time(self.clock()), body)
        headers["Content-Type"] = "application/json"
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        return headers

    def post(self, client: FlaskClient, raw: bytes, *, gzipped: bool = True) -> TestResponse:
        """Sign and send ``raw`` (gzipping it first unless told not to)."""
        body = gzip.compress(raw) if gzipped else raw
        return client.post(BATCHES, data=body, headers=self.signed_headers(body, gzipped=gzipped))

    def send(self, client: FlaskClient, events: list[wire.Event]) -> dict[str, Any]:
        """Send one batch and return the reply, insisting it was a 200."""
        response = self.post(client, self.body(events))
        assert response.status_code == 200, response.get_data(as_text=True)
        reply: dict[str, Any] = response.get_json()
        return reply


@functools.cache
def _hashed(password: str) -> str:
    return hash_password(password)


def create_user(
    app: Flask, username: str = USERNAME, password: str = PASSWORD, role: str = "admin", stores: tuple[str, ...] = ()
) -> None:
    """Add a console user directly (an admin unless ``role`` says otherwise), as ``central-server user add`` would."""
    from central.accounts.models import UserStore

    with central_db.session_factory(app)() as db:
        user = User(username=username, password_hash=_hashed(password), role=role, created_at=app.config["CLOCK"]())
        db.add(user)
        db.flush()
        db.add_all(UserStore(user_id=user.id, store_id=store) for store in stores)
        db.commit()


_CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(page: str) -> str:
    match = _CSRF_RE.search(page)
    assert match, "no CSRF token on the page"
    return match.group(1)


def post_form(
    client: FlaskClient, path: str, form: dict[str, Any] | None = None, page: str = "/console/"
) -> TestResponse:
    """POST a console form as the browser would: with the CSRF token of ``page`` (a page of the session)."""
    token = csrf_from(client.get(page).get_data(as_text=True))
    return client.post(path, data={**(form or {}), "csrf_token": token})


def login(client: FlaskClient, username: str = USERNAME, password: str = PASSWORD) -> TestResponse:
    """Log in through the real form, CSRF token included."""
    token = csrf_from(client.get("/console/login").get_data(as_text=True))
    return client.post("/console/login", data={"username": username, "password": password, "csrf_token": token})


@contextmanager
def collector_passes() -> Iterator[list[int]]:
    """The generations of the cycle collector's passes that start inside the ``with`` block."""
    passes: list[int] = []

    def count(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            passes.append(info["generation"])

    gc.callbacks.append(count)
    try:
        yield passes
    finally:
        gc.callbacks.remove(count)
