"""Authentication over real HTTP: two central instances (waitress) on one database, an agent with a real clock."""

from __future__ import annotations

import gzip
import time
from datetime import UTC, datetime, timedelta

import requests

from central import db as central_db
from central.clock import system_clock
from central.fleet.devices import set_status
from tests.central.live import serving
from tests.central.support import BATCHES, Agent, token_for

UNAUTHORIZED = b'{"error":{"code":"unauthorized","message":"authentication failed"}}\n'


def _enrolled(base: str, app, store: str = "S001") -> Agent:
    agent = Agent(store_id=store, clock=lambda: datetime.now(UTC))
    token = token_for(app, store, now=system_clock())
    response = requests.post(f"{base}/api/v1/enroll", json={"token": token, "public_key": _b64(agent)}, timeout=10)
    assert response.status_code == 201, response.text
    agent.device_id = response.json()["device_id"]
    return agent


def _b64(agent: Agent) -> str:
    from shared.crypto import b64

    return b64(agent.public_key)


def _post(base: str, body: bytes, headers: dict[str, str]) -> requests.Response:
    return requests.post(f"{base}{BATCHES}", data=body, headers=headers, timeout=10)


def test_every_attack_is_refused_identically_on_every_instance(make_app):
    first, second = make_app(), make_app()
    offset = timedelta()
    for app in (first, second):
        app.config["CLOCK"] = lambda: system_clock() + offset
    with serving(first) as one, serving(second) as two:
        agent, other = _enrolled(one, first), _enrolled(two, second)
        body = gzip.compress(agent.body([agent.receipt("R1")]))
        headers = agent.signed_headers(body)
        assert _post(one, body, headers).status_code == 200

        time.sleep(1.0)
        refusals = {"replayed a second later, to the other instance": _post(two, body, headers)}
        refusals["replayed a second later, to the same instance"] = _post(one, body, headers)
        tampered = bytearray(gzip.compress(agent.body([agent.receipt("R2")])))
        fresh = agent.signed_headers(bytes(tampered))
        tampered[len(tampered) // 2] ^= 0x01
        refusals["one bit of the body flipped"] = _post(one, bytes(tampered), fresh)
        forged = Agent(device_id=agent.device_id, private_key=other.private_key, clock=agent.clock)
        forged_body = gzip.compress(agent.body([agent.receipt("R3")]))
        refusals["signed by another device"] = _post(two, forged_body, forged.signed_headers(forged_body))
        offset = timedelta(minutes=10)
        refusals["replayed ten minutes later"] = _post(one, body, headers)
        offset = timedelta()

        with central_db.session_factory(first)() as db:
            set_status(db, agent.device_id, "revoked", reason="stolen", now=system_clock(), actor="test")
            db.commit()
        revoked_at = time.monotonic()
        for name, base in (("revoked, first instance", one), ("revoked, second instance", two)):
            late = gzip.compress(agent.body([agent.receipt("R4")]))
            refusals[name] = _post(base, late, agent.signed_headers(late))
        assert time.monotonic() - revoked_at < 1.0

        assert _post(two, *_signed(other, "R5")).status_code == 200
        with central_db.session_factory(second)() as db:
            set_status(db, other.device_id, "retired", reason="", now=system_clock(), actor="test")
            db.commit()
        refusals["retired"] = _post(one, *_signed(other, "R6"))

        for name, response in refusals.items():
            assert (response.status_code, response.content) == (401, UNAUTHORIZED), name
            assert response.headers["Content-Type"] == "application/json", name


def _signed(agent: Agent, receipt_no: str) -> tuple[bytes, dict[str, str]]:
    body = gzip.compress(agent.body([agent.receipt(receipt_no)]))
    return body, agent.signed_headers(body)


def test_expired_and_reused_tokens_are_refused_identically(app):
    app.config["CLOCK"] = system_clock
    with serving(app) as base:
        used = token_for(app, now=system_clock())
        expired = token_for(app, ttl_hours=1, now=system_clock() - timedelta(hours=2))
        first = requests.post(f"{base}/api/v1/enroll", json={"token": used, "public_key": _b64(Agent())}, timeout=10)
        assert first.status_code == 201
        answers = [
            requests.post(f"{base}/api/v1/enroll", json={"token": token, "public_key": _b64(Agent())}, timeout=10)
            for token in (used, expired, "cdpet_never-issued")
        ]
    assert {(a.status_code, a.content) for a in answers} == {
        (
            401,
            b'{"error":{"code":"enroll_rejected","message":"enrollment token is invalid, expired or already used"}}\n',
        )
    }
