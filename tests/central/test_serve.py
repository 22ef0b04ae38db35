"""``central-server serve`` as a real process: enroll and deliver a signed batch over HTTP, then stop."""

from __future__ import annotations

import gzip
import signal
import socket
import subprocess
import time
from datetime import UTC, datetime

import pytest
import requests

from shared.crypto import b64
from tests.central.cli_runner import Cli, clean_environment, command, write_config
from tests.central.support import BATCHES, Agent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(base: str, server: subprocess.Popen[str], deadline: float = 30) -> None:
    stop = time.monotonic() + deadline
    while time.monotonic() < stop:
        if server.poll() is not None:
            pytest.fail(f"central-server exited with {server.returncode}: {server.communicate()[1]}")
        try:
            if requests.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            time.sleep(0.1)
    pytest.fail("central-server did not answer /healthz in time")


@pytest.mark.e2e
def test_serve_enroll_and_ingest_over_http(backend, tmp_path):
    port = free_port()
    config = write_config(
        tmp_path / "central.toml", tmp_path / "data", backend.url, server=f"port = {port}\nthreads = 4\n"
    )
    token = Cli(config).run("enroll-token", "--store", "S001").stdout.strip()

    server = subprocess.Popen(
        [*command(), "serve", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_environment(),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base, server)
        agent = Agent(clock=lambda: datetime.now(UTC))
        enrolled = requests.post(
            f"{base}/api/v1/enroll",
            json={"token": token, "public_key": b64(agent.public_key), "hostname": "till-1"},
            timeout=10,
        )
        assert enrolled.status_code == 201, enrolled.text
        agent.device_id = enrolled.json()["device_id"]

        events = [agent.receipt("R1", "9.90", phone="13812345678"), agent.event("scan.member", {"code": "m"})]
        body = gzip.compress(agent.body(events))
        reply = requests.post(f"{base}{BATCHES}", data=body, headers=agent.signed_headers(body), timeout=10)
        assert reply.status_code == 200, reply.text
        answer = reply.json()
        answer.pop("downlink_version", None)  # present once central has published any store document
        assert answer == {"accepted": [e.event_id for e in events], "duplicate": [], "rejected": []}
        again = requests.post(f"{base}{BATCHES}", data=body, headers=agent.signed_headers(body), timeout=10)
        assert again.json()["duplicate"] == [e.event_id for e in events]

        unsigned = requests.post(f"{base}{BATCHES}", data=body, timeout=10)
        assert unsigned.status_code == 401
        assert unsigned.json() == {"error": {"code": "unauthorized", "message": "authentication failed"}}
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            _, stderr = server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            raise
    assert server.returncode == 0, stderr
    assert f"listening on http://127.0.0.1:{port}" in stderr
    assert "Traceback" not in stderr


def test_a_port_in_use_stops_serve_before_the_database_is_touched(tmp_path):
    database = tmp_path / "central.db"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(
            tmp_path / "central.toml", tmp_path / "data", f"sqlite:///{database}", server=f"port = {port}"
        )
        done = Cli(config).run("serve", timeout=60)
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == f"central-server: cannot listen on 127.0.0.1:{port}: Address already in use"
    assert "database" not in done.stderr  # neither named nor created, let alone migrated
    assert not database.exists()
