"""`edge-agent rotate-device-key` beside a running agent: refused, as `rotate-key` and `reparse` are; and
it reaches central with the sync's settings (the pinned certificate is tested in tests/e2e)."""

from __future__ import annotations

import contextlib
import os
import socket
import time

from edge_agent.agent import lock_data_dir
from edge_agent.config import load_config
from edge_agent.credentials import Credentials
from shared.crypto import new_signing_key
from tests.edge_agent.servers import json_app, waitress_on_loopback
from tests.edge_agent.test_cli import run


def test_rotate_device_key_refuses_while_the_agent_runs_and_asks_central_nothing(tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    app = json_app()
    calls: list[str] = []

    def recording(environ, start_response):
        calls.append(environ["PATH_INFO"])
        return app(environ, start_response)

    key = new_signing_key()[0]
    with waitress_on_loopback(recording) as url:
        Credentials("dev_0123456789abcdef", "S001", url, key).save(data / "credentials.json")
        lock = lock_data_dir(load_config(None, {"EDGE_AGENT_DATA_DIR": str(data)}, check_required=False))
        try:
            result = run("rotate-device-key", env_extra={"EDGE_AGENT_DATA_DIR": str(data)})
        finally:
            os.close(lock)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.strip() == (
        f"edge-agent: another edge-agent (pid {os.getpid()}) is running on {data}; stop it first"
        " (systemctl stop edge-agent)"
    )
    assert calls == []
    assert not (data / "credentials.json.next").exists()
    assert Credentials.load(data / "credentials.json").private_key == key


@contextlib.contextmanager
def unanswered_port():
    """A loopback port whose queue of connections is full: a new connection is never accepted (SYNs dropped),
    as with a firewall that drops packets."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = server.getsockname()[1]
        queued = []
        try:
            for _ in range(3):
                client = socket.socket()
                client.setblocking(False)
                client.connect_ex(("127.0.0.1", port))
                queued.append(client)
            time.sleep(0.2)
            yield f"http://127.0.0.1:{port}"
        finally:
            for client in queued:
                client.close()


def test_rotate_device_key_waits_for_a_connection_as_long_as_sync_does(tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    key = new_signing_key()[0]
    with unanswered_port() as url:
        Credentials("dev_0123456789abcdef", "S001", url, key).save(data / "credentials.json")
        started = time.monotonic()
        result = run(
            "rotate-device-key",
            env_extra={"EDGE_AGENT_DATA_DIR": str(data), "EDGE_SYNC_CONNECT_TIMEOUT": "0.5"},
        )
        took = time.monotonic() - started
    assert result.returncode == 1, result.stdout + result.stderr
    host = url.removeprefix("http://")
    assert result.stderr.strip() == (
        f"edge-agent: key rotation failed: cannot reach central at {url}: no answer from {host} within 0.5 s"
        " (wrong address, central down, or a firewall dropping the connection)"
    )
    assert took < 4  # sync.connect_timeout, not the 5 s default
    assert (data / "credentials.json.next").exists()  # kept for a rerun
    assert Credentials.load(data / "credentials.json").private_key == key
