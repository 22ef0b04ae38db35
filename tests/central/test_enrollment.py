"""Enrollment: a single-use token and a public key become an active device of the token's store."""

from __future__ import annotations

import re
import threading
from datetime import timedelta

import pytest

from central.fleet.models import Device, EnrollToken
from central.models import AuditLog
from shared.crypto import b64, new_signing_key, token_digest, unb64
from tests.central.support import Agent, row_counts, table_rows, token_for

REJECTED = {"error": {"code": "enroll_rejected", "message": "enrollment token is invalid, expired or already used"}}


def test_enrollment_creates_an_active_device(app, client, clock):
    agent = Agent(store_id="S042")
    token = token_for(app, "S042")
    response = agent.enroll(client, token)
    assert response.status_code == 201
    body = response.get_json()
    assert re.fullmatch(r"dev_[0-9a-f]{16}", body["device_id"])
    assert body == {"device_id": body["device_id"], "store_id": "S042", "central_key": body["central_key"]}
    assert len(unb64(body["central_key"])) == 32
    (device,) = table_rows(app, Device)
    assert (device.device_id, device.store_id, device.status) == (body["device_id"], "S042", "active")
    assert (device.public_key, device.hostname, device.agent_version) == (b64(agent.public_key), "pos-1", "0.1.0")
    assert device.enrolled_at == clock.now
    (stored,) = table_rows(app, EnrollToken)
    assert stored.token_digest == token_digest(token) and token not in tuple(map(str, stored))
    assert (stored.used_at, stored.device_id) == (clock.now, body["device_id"])
    assert [(a.actor, a.action, a.subject) for a in table_rows(app, AuditLog)] == [
        (f"device:{body['device_id']}", "device.enroll", body["device_id"])
    ]


def test_a_token_works_once(app, client):
    token = token_for(app)
    assert Agent().enroll(client, token).status_code == 201
    again = Agent().enroll(client, token)
    assert again.status_code == 401
    assert again.get_json() == REJECTED
    assert row_counts(app)["devices"] == 1


def test_an_expired_token_is_rejected(app, client, clock):
    token = token_for(app, ttl_hours=1)
    clock.advance(hours=1, seconds=1)
    response = Agent().enroll(client, token)
    assert (response.status_code, response.get_json()) == (401, REJECTED)
    assert row_counts(app)["devices"] == 0


def test_an_unknown_token_is_rejected(client):
    response = Agent().enroll(client, "not-a-token")
    assert (response.status_code, response.get_json()) == (401, REJECTED)


def test_a_token_issued_in_the_past_still_counts_its_lifetime(app, client, clock):
    token = token_for(app, ttl_hours=2, now=clock.now - timedelta(hours=1))
    assert Agent().enroll(client, token).status_code == 201


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        {"public_key": "AAAA"},
        {"token": "", "public_key": b64(bytes(32))},
        {"token": "t", "public_key": "not base64!"},
        {"token": "t", "public_key": b64(bytes(31))},
        {"token": "t", "public_key": b64(bytes(32)), "hostname": "h" * 256},
        {"token": "t", "public_key": b64(bytes(32)), "agent_version": 7},
    ],
)
def test_malformed_requests_are_400(app, client, body):
    token = token_for(app)
    if isinstance(body, dict) and body.get("token") == "t":
        body = {**body, "token": token}
    response = (
        client.post("/api/v1/enroll", json=body)
        if body is not None
        else client.post("/api/v1/enroll", data="{", content_type="application/json")
    )
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_request"
    assert row_counts(app)["devices"] == 0


def test_concurrent_use_of_one_token_enrolls_one_device(app):
    token = token_for(app)
    start = threading.Barrier(6)
    statuses: list[int] = []

    def enroll() -> None:
        client = app.test_client()
        _, public = new_signing_key()
        start.wait()
        response = client.post("/api/v1/enroll", json={"token": token, "public_key": b64(public)})
        statuses.append(response.status_code)

    threads = [threading.Thread(target=enroll) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [201, 401, 401, 401, 401, 401]
    assert row_counts(app)["devices"] == 1


def test_tokens_never_look_like_command_line_options(app):
    tokens = {token_for(app, "S001") for _ in range(100)}
    assert len(tokens) == 100
    assert all(t.startswith("cdpet_") for t in tokens)
