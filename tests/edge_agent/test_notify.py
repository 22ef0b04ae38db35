"""sd_notify against a real unix datagram socket, as systemd listens on one."""

from __future__ import annotations

import logging
import os
import socket

import pytest

from edge_agent.notify import SystemdNotifier


@pytest.fixture
def systemd_socket(tmp_path):
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    yield str(path), sock
    sock.close()


def test_ready_watchdog_status_and_stopping_arrive_as_datagrams(systemd_socket):
    path, sock = systemd_socket
    notifier = SystemdNotifier({"NOTIFY_SOCKET": path})
    assert notifier.enabled
    assert notifier.ready("capturing from /dev/ttyUSB0")
    assert sock.recv(4096) == b"READY=1\nSTATUS=capturing from /dev/ttyUSB0"
    assert notifier.watchdog()
    assert sock.recv(4096) == b"WATCHDOG=1"
    assert notifier.status("ok, backlog 0")
    assert sock.recv(4096) == b"STATUS=ok, backlog 0"
    assert notifier.stopping()
    assert sock.recv(4096) == b"STOPPING=1"


def test_an_abstract_socket_is_written_with_a_leading_at():
    name = f"edge-agent-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        assert SystemdNotifier({"NOTIFY_SOCKET": "@" + name}).watchdog()
        assert sock.recv(4096) == b"WATCHDOG=1"


def test_outside_systemd_nothing_is_sent():
    notifier = SystemdNotifier({})
    assert not notifier.enabled
    assert notifier.ready() is False
    assert notifier.watchdog_interval is None


def test_a_vanished_socket_is_reported_once_and_does_not_raise(tmp_path, caplog):
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    with caplog.at_level(logging.WARNING):
        assert notifier.watchdog() is False
        assert notifier.watchdog() is False
    assert len([r for r in caplog.records if "cannot notify systemd" in r.message]) == 1


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"WATCHDOG_USEC": "120000000"}, 120.0),
        ({"WATCHDOG_USEC": "120000000", "WATCHDOG_PID": "4242"}, 120.0),
        ({"WATCHDOG_USEC": "120000000", "WATCHDOG_PID": "1"}, None),  # meant for another process
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_the_watchdog_interval_comes_from_systemd(environ, expected):
    assert SystemdNotifier(environ, pid=4242).watchdog_interval == expected


def test_the_unit_waits_for_ready_and_restarts_an_agent_that_stops_pinging():
    from pathlib import Path

    from edge_agent.config import AgentConfig

    unit = (Path(__file__).resolve().parents[2] / "systemd" / "edge-agent.service").read_text()
    settings = dict(line.split("=", 1) for line in unit.splitlines() if "=" in line and not line.startswith("#"))
    assert settings["Type"] == "notify"
    assert settings["NotifyAccess"] == "main"
    # The agent pings every health.interval seconds; the watchdog must allow several missed pings.
    assert int(settings["WatchdogSec"]) >= 4 * AgentConfig().health_interval
