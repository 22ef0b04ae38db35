"""`edge-agent doctor` on a store PC that is not set up yet: each problem is one FAIL line, exit 1."""

from __future__ import annotations

import os
import re

from edge_agent.config import load_config
from edge_agent.doctor import run_checks
from edge_agent.status import size_words
from tests.edge_agent.test_cli import run


def test_unenrolled_agent_fails_with_the_next_step(tmp_path):
    config = load_config(None, environ={"EDGE_AGENT_DATA_DIR": str(tmp_path / "missing"), "EDGE_POS_PORT": "loop://"})
    checks = run_checks(config)
    assert checks[0] == (True, "configuration from defaults and environment (no settings file) is valid")
    assert checks[-1][0] is False
    assert "run `edge-agent enroll` first" in checks[-1][1]


def test_missing_port_and_open_data_dir_are_reported(tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    config = load_config(None, environ={"EDGE_AGENT_DATA_DIR": str(data), "EDGE_POS_PORT": str(tmp_path / "ttyUSB9")})
    checks = dict((line, ok) for ok, line in run_checks(config))
    assert checks[f"data directory {data} mode 0755"] is False
    assert any("not enrolled yet" in line and not ok for line, ok in checks.items())
    assert checks[f"POS port {tmp_path / 'ttyUSB9'} does not exist (cable unplugged? wrong path?)"] is False


def test_a_missing_required_setting_is_one_failed_configuration_line_not_a_valid_one(tmp_path):
    path = tmp_path / "agent.toml"
    path.write_text(f'[agent]\ndata_dir = "{tmp_path / "data"}"\n')
    result = run("doctor", "--config", str(path))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0] == f"FAIL  configuration {path}: required setting missing: pos.port (or EDGE_POS_PORT)"
    assert not any("is valid" in line for line in lines)
    assert sum("pos.port" in line for line in lines) == 1


def test_lines_lost_to_a_full_disk_fail_the_doctor_even_from_a_stopped_agents_status(tmp_path):
    from edge_agent.doctor import status_checks
    from edge_agent.status import write_status

    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    config = load_config(None, environ={"EDGE_AGENT_DATA_DIR": str(data), "EDGE_POS_PORT": "loop://"})
    health = {"state": "ok", "queue_depth": 0, "dead_lettered": 0, "last_sync_age_s": 1, "lost_lines": 7}
    write_status(config.status_path, health, written_at=1_800_000_000.0, interval=10)
    checks = status_checks(config, now=1_800_000_000.0 + 3600)
    assert checks[0][1].startswith("the agent is not running")
    assert checks[1] == (
        False,
        "7 POS lines were lost: read while the data disk stayed full, past what memory may hold"
        " (central has them counted in an agent.gap); keep free space on that disk",
    )


def test_free_disk_space_reads_as_status_reads_it(tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    config = load_config(None, environ={"EDGE_AGENT_DATA_DIR": str(data), "EDGE_POS_PORT": str(tmp_path / "tty")})
    (line,) = [line for _, line in run_checks(config) if line.startswith(f"disk of {data}")]
    # In the same decimal units as `edge-agent status` (other processes may change the figure meanwhile).
    assert re.fullmatch(rf"disk of {re.escape(str(data))}: [0-9]+\.[0-9] (GB|MB|kB) free", line), line
    assert size_words(82_041_000_000) == "82.0 GB" and size_words(512) == "512 bytes"


def test_a_configured_scanner_that_is_not_there_fails_the_doctor(tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    environ = {
        "EDGE_AGENT_DATA_DIR": str(data),
        "EDGE_POS_PORT": "loop://",
        "EDGE_SCANNER_PORT": "/dev/ttyACM9",
        "EDGE_SCANNER_EVDEV_DEVICE": "/dev/input/event99",
    }
    checks = dict((line, ok) for ok, line in run_checks(load_config(None, environ=environ)))
    assert checks["scanner port /dev/ttyACM9 does not exist (scanner unplugged? wrong path?)"] is False
    assert (
        checks[
            "scanner input device /dev/input/event99 does not exist (scanner unplugged? wrong path?"
            " see `ls -l /dev/input/by-id/`)"
        ]
        is False
    )
    master, slave = os.openpty()
    try:
        environ["EDGE_SCANNER_PORT"] = os.ttyname(slave)
        environ["EDGE_SCANNER_EVDEV_DEVICE"] = "/dev/null"  # a character device, as an input device is
        checks = dict((line, ok) for ok, line in run_checks(load_config(None, environ=environ)))
    finally:
        os.close(master)
        os.close(slave)
    assert checks[f"scanner port {environ['EDGE_SCANNER_PORT']} is a character device"] is True
    assert checks["scanner input device /dev/null is a character device"] is True
