"""`edge-agent doctor` on a store PC that is not set up yet: each problem is one FAIL line, exit 1."""

from __future__ import annotations

from edge_agent.config import load_config
from edge_agent.doctor import run_checks


def test_unenrolled_agent_fails_with_the_next_step(tmp_path):
    config = load_config(None, environ={"EDGE_AGENT_DATA_DIR": str(tmp_path / "missing"), "EDGE_POS_PORT": "x"})
    checks = run_checks(config)
    assert checks[0] == (True, "configuration is valid")
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
