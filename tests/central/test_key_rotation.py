"""Device key rotation: ``edge-agent rotate-device-key``'s module against central served by waitress."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from central.clock import system_clock
from central.fleet.models import Device
from central.models import AuditLog
from edge_agent.credentials import Credentials
from edge_agent.device_key import RotationError, pending_path, rotate_device_key
from edge_agent.transport import HttpTransport
from shared.crypto import (
    HEADER_NEW_KEY_PROOF,
    HEADER_NONCE,
    HEADER_TIMESTAMP,
    b64,
    key_rotation_message,
    new_signing_key,
    sign,
)
from tests.central.live import serving
from tests.central.support import Agent, table_rows, token_for

ROTATE = "/api/v1/devices/rotate-key"
UNAUTHORIZED = b'{"error":{"code":"unauthorized","message":"authentication failed"}}\n'


@pytest.fixture
def live(app):
    app.config["CLOCK"] = system_clock
    with serving(app) as base:
        yield base


@pytest.fixture
def enrolled(app, live, tmp_path) -> tuple[Agent, Credentials]:
    agent = Agent(clock=lambda: datetime.now(UTC))
    response = agent.enroll(app.test_client(), token_for(app, now=system_clock()))
    assert response.status_code == 201
    creds = Credentials(agent.device_id, "S001", live, agent.private_key)
    creds.save(tmp_path / "credentials.json")
    return agent, creds


def _deliver(app, agent: Agent, key: bytes) -> int:
    signer = Agent(device_id=agent.device_id, private_key=key, clock=agent.clock)
    return signer.post(app.test_client(), signer.body([signer.receipt(f"R{key[:2].hex()}")])).status_code


def test_rotation_switches_central_and_the_credentials_file(app, live, enrolled, tmp_path):
    agent, creds = enrolled
    path = tmp_path / "credentials.json"
    rotated = rotate_device_key(path, HttpTransport(live))
    assert rotated.private_key != creds.private_key
    assert Credentials.load(path) == rotated
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert not pending_path(path).exists()
    assert _deliver(app, agent, creds.private_key) == 401
    assert _deliver(app, agent, rotated.private_key) == 200
    (device,) = table_rows(app, Device)
    assert device.key_rotated_at is not None
    assert "device.rotate_key" in [a.action for a in table_rows(app, AuditLog)]


def test_an_interrupted_rotation_finishes_on_the_next_run(app, live, enrolled, tmp_path):
    agent, creds = enrolled
    path = tmp_path / "credentials.json"
    new_key, _ = new_signing_key()

    class CutAfterCentralAnswers(HttpTransport):
        def post(self, *args, **kwargs):
            super().post(*args, **kwargs)
            raise SystemExit("power cut")  # central has the new key; the agent never learns it

    with pytest.raises(SystemExit):
        rotate_device_key(path, CutAfterCentralAnswers(live), generate=lambda: (new_key, b""))
    assert Credentials.load(path).private_key == creds.private_key  # still the old key on disk
    assert _deliver(app, agent, creds.private_key) == 401  # which central now refuses

    rotated = rotate_device_key(path, HttpTransport(live))
    assert rotated.private_key == new_key
    assert Credentials.load(path).private_key == new_key
    assert _deliver(app, agent, new_key) == 200


def _rotation_request(agent: Agent, signer_key: bytes, new_key: bytes, proof_key: bytes):
    new_public = b64(new_signing_key_public(new_key))
    body = json.dumps({"public_key": new_public}).encode()
    headers = (
        Agent(device_id=agent.device_id, private_key=signer_key, clock=agent.clock)
        .signer()
        .headers("POST", ROTATE, agent.clock().strftime("%Y-%m-%dT%H:%M:%S.000Z"), body)
    )
    message = key_rotation_message(agent.device_id, new_public, headers[HEADER_TIMESTAMP], headers[HEADER_NONCE])
    headers[HEADER_NEW_KEY_PROOF] = b64(sign(proof_key, message))
    return body, headers


def new_signing_key_public(private: bytes) -> bytes:
    from shared.crypto import public_key_of

    return public_key_of(private)


def test_a_rotation_needs_both_the_current_key_and_the_new_one(app, enrolled):
    agent, creds = enrolled
    client = app.test_client()
    new_key, _ = new_signing_key()
    stranger, _ = new_signing_key()
    attempts = {
        "signed by a stranger": _rotation_request(agent, stranger, new_key, new_key),
        "no proof of the new key": _rotation_request(agent, creds.private_key, new_key, stranger),
    }
    for name, (body, headers) in attempts.items():
        response = client.post(ROTATE, data=body, headers=headers)
        assert (response.status_code, response.get_data()) == (401, UNAUTHORIZED), name
    body, headers = _rotation_request(agent, creds.private_key, new_key, new_key)
    assert client.post(ROTATE, data=body, headers=headers).status_code == 200
    replayed = client.post(ROTATE, data=body, headers=headers)
    assert (replayed.status_code, replayed.get_data()) == (401, UNAUTHORIZED)
    (device,) = table_rows(app, Device)
    assert device.public_key == b64(new_signing_key_public(new_key))


def test_a_revoked_device_cannot_rotate(app, live, enrolled, tmp_path):
    from central import db as central_db
    from central.fleet.devices import set_status

    agent, creds = enrolled
    with central_db.session_factory(app)() as db:
        set_status(db, agent.device_id, "revoked", reason="", now=system_clock(), actor="test")
        db.commit()
    path = tmp_path / "credentials.json"
    with pytest.raises(RotationError, match="may be revoked or retired"):
        rotate_device_key(path, HttpTransport(live))
    assert Credentials.load(path).private_key == creds.private_key
    assert pending_path(path).exists()


def test_the_edge_agent_command(app, live, enrolled, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    agent, creds = enrolled
    data = tmp_path / "agent-data"
    data.mkdir(mode=0o700)
    Credentials(agent.device_id, "S001", live, creds.private_key).save(data / "credentials.json")
    config = tmp_path / "agent.toml"
    config.write_text(f'[agent]\ndata_dir = "{data}"\n', encoding="utf-8")
    script = Path(sys.executable).with_name("edge-agent")
    env = {"PATH": "/usr/bin:/bin"} | {k: v for k, v in os.environ.items() if k == "PYTHONPATH"}
    argv = [str(script), "rotate-device-key", "--config", str(config)]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    assert "new signing key registered" in done.stdout and "start the agent again" in done.stdout
    assert _deliver(app, agent, Credentials.load(data / "credentials.json").private_key) == 200
