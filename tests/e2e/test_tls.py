"""The whole path over TLS on loopback: a till -> edge-agent -> TLS proxy (as nginx at HQ) -> central.

The test makes its own CA and server certificate; the proxy terminates TLS with Python's ssl and
forwards plain HTTP to central under waitress, as nginx does in front of waitress at HQ.
"""

from __future__ import annotations

import json

import pytest

from tests.e2e.test_pipeline import receipt_lines
from tools.certs import issue, make_authority
from tools.faultproxy import Fault, FaultProxy
from tools.processes import Agent, Central, Till, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture
def sqlite_central(tmp_path):
    server = Central(tmp_path, f"sqlite:///{tmp_path / 'central.db'}", cli_in_process=True)
    server.start()
    yield server
    server.close()


def test_enroll_and_sync_over_tls_with_hqs_ca(sqlite_central, tmp_path, cleanup):
    central = sqlite_central
    authority = make_authority()
    ca_file = authority.write(tmp_path / "ca.pem")
    tls = FaultProxy(central.url, tls=issue(authority).context()).start()
    lines, numbers = receipt_lines(200, prefix="TLS")
    till = Till(lines, rate=200)
    agent = Agent(tmp_path, till.path, sync_settings=f'ca_file = "{ca_file}"')
    cleanup += [tls, till, agent]

    agent.enroll(tls.url, central.enroll_token("S001"))
    agent.start()
    till.start()
    till.join(60)
    wait_until(
        lambda: central.scalar("SELECT COUNT(*) FROM events WHERE kind = 'pos.receipt'") >= 200,
        60,
        "200 receipts at central over TLS",
    )
    assert set(central.receipt_numbers()) == numbers
    assert tls.log and all(e.fault is Fault.PASS for e in tls.log)  # every request came through the TLS proxy

    wait_until(lambda: json.loads(agent.command("status", "--json").stdout)["health"]["queue_depth"] == 0, 30, "")
    status = agent.command("status")
    assert status.returncode == 0, status.stdout + status.stderr
    doctor = agent.command("doctor")
    assert f"ok    central {tls.url}/healthz answered 200" in doctor.stdout
    assert f"ok    central's TLS certificate verified: certificates signed by the CA in {ca_file}" in doctor.stdout
    assert "ok    clock: this PC is in step with central" in doctor.stdout

    # HQ's proxy now presents a certificate from another CA (a man in the middle, or a botched
    # renewal): the agent refuses it, keeps its events, and says why in `edge-agent status`.
    agent.stop()
    impostor = FaultProxy(central.url, tls=issue(make_authority("impostor")).context()).start()
    cleanup.append(impostor)
    agent.config.write_text(agent.config.read_text().replace("[sync]\n", f'[sync]\ncentral_url = "{impostor.url}"\n'))
    agent.start()
    host = impostor.url.removeprefix("https://")
    expected = f"central's certificate at {host} is not signed by the CA in {ca_file}"
    wait_until(lambda: expected in agent.command("status").stdout, 30, "the refusal in `edge-agent status`")
    assert any(e.fault is Fault.TLS_REFUSED for e in impostor.log)
    assert not any(e.fault is Fault.PASS for e in impostor.log)  # nothing was sent to the impostor


def test_enroll_refuses_a_wrong_certificate_with_a_readable_error(sqlite_central, tmp_path):
    central = sqlite_central
    ca_file = make_authority().write(tmp_path / "ca.pem")
    impostor = FaultProxy(central.url, tls=issue(make_authority("impostor")).context()).start()
    try:
        agent = Agent(tmp_path, "loop://", sync_settings=f'ca_file = "{ca_file}"')
        result = agent.enroll(impostor.url, central.enroll_token("S001"), check=False)
        assert result.returncode == 1
        host = impostor.url.removeprefix("https://")
        assert result.stderr.strip() == (
            f"edge-agent: enrollment failed: cannot reach central at {impostor.url}: "
            f"central's certificate at {host} is not signed by the CA in {ca_file}"
        )

        (tmp_path / "pinned").mkdir()
        pinned = Agent(tmp_path / "pinned", "loop://", sync_settings=f'tls_fingerprint = "{"00" * 32}"')
        result = pinned.enroll(impostor.url, central.enroll_token("S001"), check=False)
        assert result.returncode == 1
        assert "does not match sync.tls_fingerprint (fingerprint mismatch)" in result.stderr
        assert not (tmp_path / "agent" / "credentials.json").exists()
    finally:
        impostor.close()
