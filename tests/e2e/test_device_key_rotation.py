"""A device-key rotation whose reply was lost: central holds the new key, the PC still signs with the old.

`edge-agent rotate-device-key` keeps the new key in ``credentials.json.next`` when it cannot tell
whether central registered it. Central then refuses the old key with 401, which doctor and the
running agent used to report as a revoked or re-enrolled device to be enrolled again. Now doctor and
status name the interrupted rotation, and the agent finishes it with the pending key (decision 0078).
"""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from edge_agent.device_key import ROTATE_PATH
from shared.crypto import b64, public_key_of, unb64
from tools.certs import issue, make_authority
from tools.faultproxy import Fault, FaultProxy
from tools.processes import Agent, wait_until

pytestmark = pytest.mark.e2e


def _interrupted_rotation(central, tmp_path, cleanup) -> tuple[Agent, str, dict]:
    """An agent that ran once, then a rotate-device-key whose reply the proxy dropped after central committed."""
    proxy = FaultProxy(central.url, only_path=ROTATE_PATH).start()
    cleanup.append(proxy)
    agent = Agent(tmp_path, "loop://", heartbeat_interval=1)
    cleanup.append(agent)
    agent.enroll(proxy.url, central.enroll_token("S001"))
    agent.start()
    wait_until(lambda: agent.command("status").returncode == 0, 30, "the agent to report itself ok")
    agent.stop()
    before = json.loads((agent.data_dir / "credentials.json").read_text())
    proxy.script(Fault.DROP)  # central registers the new key; its answer never arrives
    rotated = agent.command("rotate-device-key")
    assert rotated.returncode == 1, rotated.stdout + rotated.stderr
    assert "cannot reach central" in rotated.stderr
    assert (agent.data_dir / "credentials.json.next").exists()
    assert json.loads((agent.data_dir / "credentials.json").read_text()) == before
    return agent, before["device_id"], before


@pytest.mark.parametrize("central", ["sqlite"], indirect=True)
def test_an_interrupted_device_key_rotation_is_named_and_the_agent_finishes_it(central, tmp_path, cleanup):
    agent, device, before = _interrupted_rotation(central, tmp_path, cleanup)
    pending = agent.data_dir / "credentials.json.next"

    doctor = agent.command("doctor")
    assert doctor.returncode == 1
    assert (
        f"FAIL  central refuses the signature of device {device} (401) but accepts the new key in {pending}: a"
        " device-key rotation was interrupted after central registered the new key; run `edge-agent"
        " rotate-device-key` again to finish it (or start the agent: it finishes the rotation itself)"
    ) in doctor.stdout, doctor.stdout
    assert "enrolled again" not in doctor.stdout
    status = agent.command("status")
    assert status.returncode == 3
    assert (
        f"device key     a rotation did not finish: {pending} holds the new key; run `edge-agent"
        " rotate-device-key` again with the agent stopped (the agent finishes it by itself once central has"
        " registered that key)"
    ) in status.stdout, status.stdout

    agent.start()
    wait_until(lambda: not pending.exists(), 30, "the agent to finish the rotation")
    after = json.loads((agent.data_dir / "credentials.json").read_text())
    assert after["private_key"] != before["private_key"] and after["device_id"] == device
    delivered = central.scalar("SELECT COUNT(*) FROM events")
    wait_until(lambda: central.scalar("SELECT COUNT(*) FROM events") > delivered, 30, "deliveries with the new key")
    status = agent.command("status")
    assert status.returncode == 0, status.stdout
    assert "device key" not in status.stdout
    assert "device-key rotation finished" in agent.process.tail(200)
    doctor = agent.command("doctor")
    assert f"ok    central accepts the signature of device {device}" in doctor.stdout, doctor.stdout


@pytest.mark.parametrize("central", ["sqlite"], indirect=True)
def test_a_device_revoked_after_an_interrupted_rotation_is_told_apart(central, tmp_path, cleanup):
    agent, device, before = _interrupted_rotation(central, tmp_path, cleanup)
    pending = agent.data_dir / "credentials.json.next"
    central.cli("revoke-device", device, "--reason", "stolen till PC")

    doctor = agent.command("doctor")
    assert (
        f"FAIL  central refuses the signature of device {device} (401), and the new key in {pending} too:"
        " revoked, retired or re-enrolled at HQ?"
    ) in doctor.stdout, doctor.stdout

    agent.start()
    wait_until(lambda: "too" in agent.command("status").stdout, 30, "status to say both keys are refused")
    status = agent.command("status")
    assert status.returncode == 1
    assert status.stdout.startswith("state          DEGRADED: central has refused this device's signature (401) for ")
    assert f"and the new key in {pending} too: revoked, retired or re-enrolled at HQ?" in status.stdout
    assert pending.exists()
    assert json.loads((agent.data_dir / "credentials.json").read_text()) == before


def _devices_with_key(central, public_key: str) -> list[str]:
    """The devices central holds ``public_key`` for."""
    with central.engine.connect() as conn:
        query = sa.text("SELECT device_id FROM devices WHERE public_key = :key ORDER BY device_id")
        return list(conn.execute(query, {"key": public_key}).scalars())


@pytest.mark.parametrize("central", ["sqlite"], indirect=True)
def test_rotate_device_key_trusts_central_s_certificate_as_sync_does(central, tmp_path, cleanup):
    """A self-signed certificate at HQ, pinned by sync.tls_fingerprint: sync and rotate-device-key both accept it."""
    certificate = issue(make_authority("HQ's own self-signed certificate"))
    tls = FaultProxy(central.url, tls=certificate.context()).start()
    cleanup.append(tls)
    agent = Agent(tmp_path, "loop://", sync_settings=f'tls_fingerprint = "{certificate.fingerprint}"')
    agent.enroll(tls.url, central.enroll_token("S001"))
    before = json.loads((agent.data_dir / "credentials.json").read_text())

    rotated = agent.command("rotate-device-key")
    assert rotated.returncode == 0, rotated.stdout + rotated.stderr
    after = json.loads((agent.data_dir / "credentials.json").read_text())
    assert after["device_id"] == before["device_id"] and after["private_key"] != before["private_key"]
    assert not (agent.data_dir / "credentials.json.next").exists()
    new_public = b64(public_key_of(unb64(after["private_key"])))
    assert _devices_with_key(central, new_public) == [after["device_id"]]
    assert all(e.fault is Fault.PASS for e in tls.log)  # through the pinned TLS proxy, nothing around it


@pytest.mark.parametrize("central", ["sqlite"], indirect=True)
def test_enrolling_again_removes_the_rotation_left_by_the_previous_identity(central, tmp_path, cleanup):
    """The PC is enrolled again (credentials removed, a new token) with an interrupted rotation of its old
    identity waiting: that key must never become the new device's key."""
    agent, old_device, _ = _interrupted_rotation(central, tmp_path, cleanup)
    pending = agent.data_dir / "credentials.json.next"
    stale_key = unb64(pending.read_text().strip())
    (agent.data_dir / "credentials.json").unlink()

    enrolled = agent.enroll(central.url, central.enroll_token("S001"))
    assert not pending.exists()
    assert f"removed {pending}: a device-key rotation of the previous enrollment" in enrolled.stderr
    new = json.loads((agent.data_dir / "credentials.json").read_text())
    assert new["device_id"] != old_device

    status = agent.command("status")
    assert "device key" not in status.stdout
    rotated = agent.command("rotate-device-key")
    assert rotated.returncode == 0, rotated.stdout + rotated.stderr
    after = json.loads((agent.data_dir / "credentials.json").read_text())
    assert after["device_id"] == new["device_id"]
    assert unb64(after["private_key"]) not in (stale_key, unb64(new["private_key"]))  # a key made for this device
    stale_public = b64(public_key_of(stale_key))
    assert _devices_with_key(central, stale_public) == [old_device]  # the old identity's, registered before
