"""Signed device requests: every way of failing answers the same 401, byte for byte."""

from __future__ import annotations

import gzip

from sqlalchemy import update

from central import db as central_db
from central.fleet.models import Device
from shared.crypto import HEADER_DEVICE, HEADER_SIGNATURE, HEADER_TIMESTAMP, RequestSigner, new_signing_key
from tests.central.support import BATCHES, START, Agent, row_counts

EXPECTED = b'{"error":{"code":"unauthorized","message":"authentication failed"}}\n'


def _post(client, body, headers):
    return client.post(BATCHES, data=body, headers=headers)


def test_every_failure_looks_the_same(app, client, agent):
    body = gzip.compress(agent.body([agent.receipt("R1")]))
    good = agent.signed_headers(body)
    assert _post(client, body, good).status_code == 200

    other_key, _ = new_signing_key()
    forged = RequestSigner(agent.device_id, other_key).headers("POST", BATCHES, "t", body)
    stranger = Agent()
    stranger.device_id = "dev_00000000000000ff"
    failures = {
        "missing headers": _post(client, body, {"Content-Encoding": "gzip"}),
        "missing signature": _post(client, body, {k: v for k, v in good.items() if k != HEADER_SIGNATURE}),
        "missing device": _post(client, body, {k: v for k, v in good.items() if k != HEADER_DEVICE}),
        "missing timestamp": _post(client, body, {k: v for k, v in good.items() if k != HEADER_TIMESTAMP}),
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
