"""Signed device requests: every way of failing answers the same 401, byte for byte."""

from __future__ import annotations

import gzip
from datetime import timedelta

from sqlalchemy import update

from central import db as central_db
from central.auth import purge_nonces
from central.fleet.devices import set_status
from central.fleet.models import Device
from shared import wire
from shared.crypto import (
    HEADER_DEVICE,
    HEADER_NONCE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    RequestSigner,
    new_signing_key,
)
from tests.central.support import BATCHES, START, Agent, row_counts, token_for

EXPECTED = b'{"error":{"code":"unauthorized","message":"authentication failed"}}\n'


def _post(client, body, headers):
    return client.post(BATCHES, data=body, headers=headers)


def test_every_failure_looks_the_same(app, client, agent):
    body = gzip.compress(agent.body([agent.receipt("R1")]))
    good = agent.signed_headers(body)
    assert _post(client, body, good).status_code == 200

    other_key, _ = new_signing_key()
    forged = RequestSigner(agent.device_id, other_key).headers("POST", BATCHES, good[HEADER_TIMESTAMP], body)
    stranger = Agent()
    stranger.device_id = "dev_00000000000000ff"
    failures = {
        "missing headers": _post(client, body, {"Content-Encoding": "gzip"}),
        "missing signature": _post(client, body, {k: v for k, v in good.items() if k != HEADER_SIGNATURE}),
        "missing device": _post(client, body, {k: v for k, v in good.items() if k != HEADER_DEVICE}),
        "missing timestamp": _post(client, body, {k: v for k, v in good.items() if k != HEADER_TIMESTAMP}),
        "missing nonce": _post(client, body, {k: v for k, v in good.items() if k != HEADER_NONCE}),
        "nonce changed": _post(client, body, {**agent.signed_headers(body), HEADER_NONCE: "A" * 22}),
        "replayed": _post(client, body, good),
        "bad signature": _post(client, body, {**good, **forged, "Content-Encoding": "gzip"}),
        "not base64": _post(client, body, {**good, HEADER_SIGNATURE: "%%%not-base64%%%"}),
        "unknown device": _post(client, body, stranger.signed_headers(body)),
        "timestamp changed": _post(client, body, {**good, HEADER_TIMESTAMP: "2026-11-23T02:00:01.000Z"}),
        "body tampered": _post(client, body + b"\0", good),
        "another path's signature": _post(client, body, {**good, **agent.signed_headers(body, path="/api/v1/enroll")}),
    }
    for kind, response in failures.items():
        assert response.status_code == 401, kind
        assert response.get_data() == EXPECTED, kind
        assert response.content_type == "application/json", kind
    assert row_counts(app)["events"] == 1


def test_a_revoked_device_is_refused(app, client, agent):
    with central_db.session_factory(app)() as db:
        db.execute(update(Device).where(Device.device_id == agent.device_id).values(status="revoked"))
        db.commit()
    response = agent.post(client, agent.body([agent.receipt("R1")]))
    assert (response.status_code, response.get_data()) == (401, EXPECTED)
    assert row_counts(app)["events"] == 0


def test_the_signature_covers_the_body_as_sent(client, agent):
    raw = agent.body([agent.receipt("R1")])
    body = gzip.compress(raw)
    signed_over_plain = agent.signed_headers(raw)  # signing the JSON, then sending gzip, must fail
    assert _post(client, body, signed_over_plain).get_data() == EXPECTED
    assert agent.signed_headers(body)[HEADER_TIMESTAMP] == START.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def test_a_replay_is_refused_a_second_and_ten_minutes_later_even_after_the_purge(app, client, agent, clock):
    body = gzip.compress(agent.body([agent.receipt("R1")]))
    headers = agent.signed_headers(body)
    assert _post(client, body, headers).status_code == 200
    clock.advance(seconds=1)
    assert _post(client, body, headers).get_data() == EXPECTED
    clock.advance(minutes=10)
    with central_db.session_factory(app)() as db:
        purge_nonces(db, clock.now)  # forget every nonce: the time window alone must refuse it now
        db.commit()
    assert row_counts(app)["request_nonces"] == 0
    assert _post(client, body, headers).get_data() == EXPECTED


def test_the_time_window_is_the_configured_skew_both_ways(make_app, clock):
    app = make_app(auth__max_clock_skew=60)
    client = app.test_client()
    agent = Agent()
    agent.enroll(client, token_for(app))
    for offset, status in ((-59, 200), (59, 200), (-61, 401), (61, 401)):
        agent.clock = lambda offset=offset: START + timedelta(seconds=offset)
        response = agent.post(client, agent.body([agent.receipt(f"R{offset}")]))
        assert response.status_code == status, offset


def test_a_nonce_is_per_device(app, client, agent):
    other = Agent()
    other.enroll(client, token_for(app))
    fixed = "the-same-nonce-for-both"
    for sender in (agent, other):
        body = gzip.compress(sender.body([sender.receipt("R1")]))
        headers = RequestSigner(sender.device_id, sender.private_key, nonce=lambda: fixed).headers(
            "POST", BATCHES, wire.format_time(START), body
        )
        headers["Content-Encoding"] = "gzip"
        assert _post(client, body, headers).status_code == 200
    body = gzip.compress(agent.body([agent.receipt("R2")]))  # new body, same nonce: still a replay
    headers = RequestSigner(agent.device_id, agent.private_key, nonce=lambda: fixed).headers(
        "POST", BATCHES, wire.format_time(START), body
    )
    headers["Content-Encoding"] = "gzip"
    assert _post(client, body, headers).get_data() == EXPECTED


def test_old_nonces_are_purged_by_requests_at_most_once_a_minute(app, client, agent, clock):
    agent.clock = lambda: clock.now
    agent.send(client, [agent.receipt("R1")])
    clock.advance(seconds=30)
    agent.send(client, [agent.receipt("R2")])
    assert row_counts(app)["request_nonces"] == 2
    clock.advance(seconds=601)  # past twice the window since both
    agent.send(client, [agent.receipt("R3")])
    assert row_counts(app)["request_nonces"] == 1
    clock.advance(seconds=30)  # the next purge is not due yet
    agent.send(client, [agent.receipt("R4")])
    assert row_counts(app)["request_nonces"] == 2


def test_a_retired_device_is_refused(app, client, agent):
    with central_db.session_factory(app)() as db:
        set_status(db, agent.device_id, "retired", reason="", now=START, actor="test")
        db.commit()
    response = agent.post(client, agent.body([agent.receipt("R1")]))
    assert (response.status_code, response.get_data()) == (401, EXPECTED)


def test_every_instance_refuses_a_replay_and_a_revocation_at_once(make_app, agent, app):
    """Two apps on one database stand for two central instances behind a load balancer."""
    second = make_app()
    one, two = app.test_client(), second.test_client()
    body = gzip.compress(agent.body([agent.receipt("R1")]))
    headers = agent.signed_headers(body)
    assert _post(one, body, headers).status_code == 200
    assert _post(two, body, headers).get_data() == EXPECTED
    with central_db.session_factory(second)() as db:
        set_status(db, agent.device_id, "revoked", reason="stolen", now=START, actor="test")
        db.commit()
    for client in (one, two):
        response = agent.post(client, agent.body([agent.receipt("R2")]))
        assert (response.status_code, response.get_data()) == (401, EXPECTED)
