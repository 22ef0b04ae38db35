"""`edge-agent rotate-device-key` beside a running agent: refused, as `rotate-key` and `reparse` are."""

from __future__ import annotations

import os

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
