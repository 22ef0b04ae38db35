"""A device revoked at HQ is degraded at once in `edge-agent status`, and doctor fails its central check.

Central answers every signed request of a revoked device with 401; the agent used to call itself
healthy until its backlog counted as stalled (``health.stall_minutes``, 15 min), and doctor, which
only asked ``/healthz``, passed.
"""

from __future__ import annotations

import json

import pytest

from tools.processes import Agent, wait_until

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("central", ["sqlite"], indirect=True)
def test_a_revoked_device_is_degraded_at_once_and_fails_the_doctor(central, tmp_path, cleanup):
    agent = Agent(tmp_path, "loop://", heartbeat_interval=1)
    agent.enroll(central.url, central.enroll_token("S001"))
    device = json.loads((agent.data_dir / "credentials.json").read_text())["device_id"]
    cleanup.append(agent)
    agent.start()
    wait_until(lambda: agent.command("status").returncode == 0, 30, "the agent to report itself ok")
    doctor = agent.command("doctor")
    assert f"ok    central accepts the signature of device {device}" in doctor.stdout, doctor.stdout

    central.cli("revoke-device", device, "--reason", "stolen till PC")
    # Heartbeats every second keep the sync job asking central; the status is rewritten every second.
    wait_until(lambda: agent.command("status").returncode == 1, 15, "status to say degraded")
    status = agent.command("status")
    assert status.stdout.startswith(
        "state          DEGRADED: central has refused this device's signature (401) for "
    ), status.stdout
    assert "revoked, retired or re-enrolled at HQ?" in status.stdout

    doctor = agent.command("doctor")
    assert doctor.returncode == 1
    assert (
        f"FAIL  central refuses the signature of device {device} (401): revoked, retired or re-enrolled at HQ?"
        in doctor.stdout
    ), doctor.stdout
    assert "FAIL  the agent is degraded: central has refused this device's signature (401)" in doctor.stdout
