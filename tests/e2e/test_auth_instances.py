"""Authentication across two `central-server serve` processes on one database.

A captured request replayed to the other instance is refused; a device revoked or retired with the
CLI (a third process) is refused by both instances within a second of the command returning; every
refusal has the same status and body.
"""

from __future__ import annotations

import gzip
import shutil
import time
from datetime import UTC, datetime

import pytest
import requests

from shared.crypto import b64
from tests.central.support import BATCHES, Agent
from tools.processes import Central

pytestmark = pytest.mark.e2e

UNAUTHORIZED = b'{"error":{"code":"unauthorized","message":"authentication failed"}}\n'


def enrolled(central: Central, store: str) -> Agent:
    agent = Agent(store_id=store, clock=lambda: datetime.now(UTC))
    response = requests.post(
        f"{central.url}/api/v1/enroll",
        json={"token": central.enroll_token(store), "public_key": b64(agent.public_key)},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    agent.device_id = response.json()["device_id"]
    return agent


def post(central: Central, agent: Agent, receipt_no: str) -> requests.Response:
    body = gzip.compress(agent.body([agent.receipt(receipt_no)]))
    return requests.post(f"{central.url}{BATCHES}", data=body, headers=agent.signed_headers(body), timeout=10)


@pytest.mark.parametrize("central", ["postgresql"], indirect=True)  # how a chain runs several instances
def test_a_replay_a_revocation_and_a_retirement_hold_on_both_instances(central, tmp_path, cleanup):
    (tmp_path / "second").mkdir()
    second = Central(tmp_path / "second", central.database_url, cli_in_process=True)
    # Every instance serves the database with the secret.key it was set up with (decision 0092).
    shutil.copy2(central.workdir / "secret.key", second.workdir / "secret.key")
    cleanup.append(second)
    second.start()
    agent, other = enrolled(central, "S001"), enrolled(second, "S002")

    body = gzip.compress(agent.body([agent.receipt("R1")]))
    headers = agent.signed_headers(body)
    assert requests.post(f"{central.url}{BATCHES}", data=body, headers=headers, timeout=10).status_code == 200
    time.sleep(1.0)
    refusals = {
        "replayed a second later to the other instance": requests.post(
            f"{second.url}{BATCHES}", data=body, headers=headers, timeout=10
        )
    }
    assert post(second, agent, "R2").status_code == 200 and post(central, other, "R3").status_code == 200

    central.cli("revoke-device", agent.device_id, "--reason", "stolen till PC")
    revoked_at = time.monotonic()
    refusals["revoked, first instance"] = post(central, agent, "R4")
    refusals["revoked, second instance"] = post(second, agent, "R5")
    assert time.monotonic() - revoked_at < 1.0

    second.cli("retire-device", other.device_id)
    retired_at = time.monotonic()
    refusals["retired, first instance"] = post(central, other, "R6")
    refusals["retired, second instance"] = post(second, other, "R7")
    assert time.monotonic() - retired_at < 1.0

    for name, response in refusals.items():
        assert (response.status_code, response.content) == (401, UNAUTHORIZED), name
    assert central.scalar("SELECT COUNT(*) FROM events") == 3
