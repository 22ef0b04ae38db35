"""A whole agent in-process: systemd hears READY=1, heartbeats carry `health`, `edge-agent status` reads it."""

from __future__ import annotations

import json
import os
import socket
import tty

from edge_agent.agent import Agent
from edge_agent.config import load_config
from edge_agent.credentials import Credentials
from edge_agent.notify import SystemdNotifier
from edge_agent.status import read_status
from shared.crypto import new_signing_key
from tests.edge_agent.test_cli import run
from tests.edge_agent.test_sync import StandInCentral
from tools.processes import wait_until


def test_running_agent_reports_health_to_systemd_central_and_the_technician(tmp_path):
    data = tmp_path / "agent"
    config_file = tmp_path / "agent.toml"
    config_file.write_text(
        f'[agent]\ndata_dir = "{data}"\nheartbeat_interval = 1\n[pos]\nport = "loop://"\n'
        "[sync]\ninterval = 0.1\n[health]\ninterval = 0.5\n"
    )
    config = load_config(config_file, environ={})
    private, public = new_signing_key()
    Credentials("dev_test", "S001", "http://127.0.0.1:9", private).save(data / "credentials.json")
    central = StandInCentral(public)
    systemd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    systemd.bind(str(tmp_path / "notify"))
    systemd.settimeout(5)
    agent = Agent(config, transport=central, notifier=SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "notify")}))
    try:
        agent.start()
        assert systemd.recv(4096).startswith(b"READY=1\nSTATUS=capturing from loop://")
        assert config.status_path.exists()
        # The first heartbeat may leave before the source has opened its port ("starting").
        wait_until(
            lambda: any(p.get("health", {}).get("sources") == {"pos": "reading"} for p in central.events.values()),
            10,
            "a heartbeat at central saying the POS source is reading",
        )
        beat = next(p for p in central.events.values() if "health" in p)
        assert set(beat["health"]["sources"]) == {"pos"}
        assert {"queue_depth", "last_sync_at", "dead_lettered", "clock_offset_s", "downlink_version"} <= set(
            beat["health"]
        )
        status = run("status", "--config", str(config_file))
        assert status.returncode == 0, status.stdout + status.stderr
        assert status.stdout.startswith("state          ok")
        as_json = json.loads(run("status", "--json", "--config", str(config_file)).stdout)
        assert as_json["running"] is True and as_json["health"]["state"] == "ok"
    finally:
        agent.stop()
        systemd.close()
    stopped = run("status", "--config", str(config_file))
    assert stopped.returncode == 3
    assert stopped.stdout.startswith("state          NOT RUNNING")


def test_status_without_an_agent_ever_run_says_so(tmp_path):
    result = run("status", env_extra={"EDGE_AGENT_DATA_DIR": str(tmp_path)})
    assert result.returncode == 3
    assert f"no status at {tmp_path / 'status.json'}: the agent has not run" in result.stderr


def test_a_scanner_that_goes_away_is_in_the_health_and_degrades_the_status(tmp_path):
    master, slave = os.openpty()
    tty.setraw(slave)
    link = tmp_path / "ttyACM0"  # as udev names a USB-CDC scanner
    link.symlink_to(os.ttyname(slave))
    data = tmp_path / "agent"
    config_file = tmp_path / "agent.toml"
    config_file.write_text(
        f'[agent]\ndata_dir = "{data}"\nheartbeat_interval = 1\n[pos]\nport = "loop://"\n'
        f'[scanner]\nport = "{link}"\n[sync]\ninterval = 0.1\n[health]\ninterval = 0.5\n'
    )
    config = load_config(config_file, environ={})
    private, public = new_signing_key()
    Credentials("dev_test", "S001", "http://127.0.0.1:9", private).save(data / "credentials.json")
    central = StandInCentral(public)
    agent = Agent(config, transport=central)
    try:
        agent.start()
        wait_until(
            lambda: read_status(config.status_path)["health"]["sources"] == {"pos": "reading", "scanner": "up"},
            10,
            "the status to show the scanner up",
        )
        assert run("status", "--config", str(config_file)).returncode == 0
        # The scanner's USB cable is pulled: its tty goes away.
        link.unlink()
        os.close(master)
        os.close(slave)
        wait_until(
            lambda: read_status(config.status_path)["health"]["state"] == "degraded",
            10,
            "the status to say degraded",
        )
        health = read_status(config.status_path)["health"]
        assert health["sources"]["scanner"] == "down"
        assert health["problem"].startswith(f"barcode scanner down: cannot read {link}: ")
        status = run("status", "--config", str(config_file))
        assert status.returncode == 1
        assert status.stdout.startswith(f"state          DEGRADED: barcode scanner down: cannot read {link}")
        assert "scanner: down" in status.stdout
        wait_until(
            lambda: any(
                p.get("health", {}).get("sources", {}).get("scanner") == "down" for p in central.events.values()
            ),
            10,
            "a heartbeat telling central the scanner is down",
        )
        beat = next(
            p for p in central.events.values() if p.get("health", {}).get("sources", {}).get("scanner") == "down"
        )
        assert beat["health"]["state"] == "degraded"
    finally:
        agent.stop()
