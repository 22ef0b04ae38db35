"""The agent's settings table: every number has a sensible range, enforced at load."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from edge_agent.config import AgentConfig, load_config
from shared.settings import ConfigError, specs
from tests.edge_agent.test_cli import run


def test_every_numeric_setting_has_a_range_that_holds_its_default():
    for spec in specs(AgentConfig):
        if spec.type in (int, float):
            assert spec.minimum is not None and spec.maximum is not None, f"{spec.name} has no range"
            assert spec.minimum <= spec.default <= spec.maximum, spec.name


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("pos.baudrate", "99999999", "must be from 50 to 4000000; got 99999999"),
        ("sync.batch_size", "100000", "must be from 1 to 5000; got 100000"),
        ("sync.timeout", "0", "must be from 0.1 to 600; got 0.0"),
        ("agent.heartbeat_interval", "1e9", "must be from 1 to 86400"),
    ],
)
def test_out_of_range_values_are_refused_naming_the_range(key, value, message):
    env = {"EDGE_POS_PORT": "loop://", "EDGE_" + key.upper().replace(".", "_"): value}
    with pytest.raises(ConfigError, match=message.replace("+", r"\+")):
        load_config(None, environ=env)


# Each of these was "config ok" to check-config and doctor, while `run` refused it (exit 2), crashed
# with a traceback (sync.interval = nan reached APScheduler) or ran and quarantined every line.
REFUSED = [
    ('[sync]\ntls_fingerprint = "zz"', "sync.tls_fingerprint 'zz' is not a SHA-256 fingerprint"),
    ('[sync]\nca_file = "/nonexistent/ca.pem"', "sync.ca_file /nonexistent/ca.pem does not exist"),
    ('[presence]\nzones = "entrance"', "presence.zones: item 1 ('entrance') is not `anchor=zone`"),
    ('[presence]\ntimezone = "Mars/Base"', "presence.timezone: 'Mars/Base' is not an IANA time zone"),
    ("[presence]\nexit_dbm = -60.0", "presence.exit_dbm must not be above presence.enter_dbm"),
    ('[pos]\nprofiles_dir = "/nonexistent/profiles"', "pos.profiles_dir: receipt profile error: /nonexistent"),
    ("[sync]\ninterval = nan", "sync.interval: must be a finite number; got nan"),
    ("[health]\nstall_minutes = inf", "health.stall_minutes: must be a finite number; got inf"),
    ('[pos]\nencoding = "gbkk"', "pos.encoding: 'gbkk' is not a text encoding Python knows"),
    ('[pos]\nport = ""', "pos.port: required setting is empty (or set EDGE_POS_PORT)"),
    ('[pos]\nport = "  "', "pos.port: required setting is empty (or set EDGE_POS_PORT)"),
    # Each of these ran with one warning and lost the staging's crash safety, or made the folder on disk.
    ('[capture]\nstaging_dir = "/etc/passwd"', "capture.staging_dir /etc/passwd is not a directory"),
    ('[capture]\nstaging_dir = "/nonexistent/run"', "capture.staging_dir /nonexistent/run does not exist"),
]


@pytest.mark.parametrize(("text", "expected"), REFUSED, ids=[t.split("\n")[1] for t, _ in REFUSED])
def test_check_config_doctor_and_run_refuse_what_run_cannot_use_alike(tmp_path, text, expected):
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    path = tmp_path / "agent.toml"
    port = "" if "port =" in text else 'port = "loop://"\n'
    text = text.replace("[pos]\n", f"[pos]\n{port}") if "[pos]" in text else f"{text}\n[pos]\n{port}"
    path.write_text(f'[agent]\ndata_dir = "{data}"\n{text}\n')
    lines = {}
    for command in ("check-config", "run"):
        result = run(command, "--config", str(path))
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        lines[command] = result.stderr.strip().splitlines()
        assert len(lines[command]) == 1
        assert re.fullmatch(rf"edge-agent: config error in {re.escape(str(path))}(:\d+)?: .+", lines[command][0])
        assert expected in lines[command][0], lines[command]
        assert lines[command][0].count(expected.split(" ")[0].split(":")[0]) == 1  # named once
    assert lines["check-config"] == lines["run"]
    doctor = run("doctor", "--config", str(path))
    assert "is valid" not in doctor.stdout
    setting = expected.split(" ")[0].split(":")[0]
    if doctor.returncode == 2:  # a value no command can load: the same line as check-config's
        assert doctor.stderr.strip().splitlines() == lines["check-config"]
    else:  # doctor goes on past a missing value or a file it cannot use, reporting it first
        assert doctor.returncode == 1
        first = doctor.stdout.splitlines()[0]
        assert first.startswith("FAIL  ") and setting in first, doctor.stdout


def test_a_text_encoding_python_knows_is_accepted_in_any_spelling():
    for name in ("auto", "utf-8", "GB18030", "gbk", "big5", "cp936"):
        assert load_config(None, environ={"EDGE_POS_PORT": "loop://", "EDGE_POS_ENCODING": name}).pos_encoding == name
    with pytest.raises(ConfigError, match="'base64' is not a text encoding"):
        load_config(None, environ={"EDGE_POS_PORT": "loop://", "EDGE_POS_ENCODING": "base64"})


def test_a_number_central_sends_that_is_not_finite_is_ignored_with_its_reason_not_fatal():
    from edge_agent.central_settings import effective_config

    effective = effective_config(
        None, {"sync.interval": float("nan"), "sync.batch_size": 100}, {"EDGE_POS_PORT": "loop://"}
    )
    assert effective.applied == {"sync.batch_size": 100}
    assert "must be a finite number" in effective.ignored["sync.interval"]


def test_hq_cannot_move_the_cashier_panel_onto_the_shop_network():
    """Who on the shop network may see the panel's customer cards is decided at the PC, not by a
    settings document from central."""
    from edge_agent.central_settings import effective_config

    sent = {"panel.host": "0.0.0.0", "panel.screen_address": "192.0.2.7", "sync.batch_size": 100}  # noqa: S104
    effective = effective_config(None, sent, {"EDGE_POS_PORT": "loop://"})
    assert effective.applied == {"sync.batch_size": 100}
    assert set(effective.ignored) == {"panel.host", "panel.screen_address"}


@pytest.mark.parametrize("staging", ["/etc/passwd", "missing/run"])
def test_a_staging_directory_from_the_environment_is_refused_alike_and_never_created(tmp_path, staging):
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    staging = staging if staging.startswith("/") else str(tmp_path / staging)
    env = {"EDGE_POS_PORT": "loop://", "EDGE_AGENT_DATA_DIR": str(data), "EDGE_CAPTURE_STAGING_DIR": staging}
    problem = "is not a directory" if staging == "/etc/passwd" else "does not exist"
    expected = f"edge-agent: config error in environment: EDGE_CAPTURE_STAGING_DIR: capture.staging_dir {staging} "
    for command in ("check-config", "run"):
        result = run(command, env_extra=env)
        assert result.returncode == 2, (command, result.stderr)
        [line] = result.stderr.strip().splitlines()
        assert line.startswith(expected + problem), line
    doctor = run("doctor", env_extra=env)
    assert doctor.returncode == 1
    assert f"FAIL  config error in environment: EDGE_CAPTURE_STAGING_DIR: capture.staging_dir {staging} " in (
        doctor.stdout
    )
    assert not (tmp_path / "missing").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into any directory")
def test_a_staging_directory_the_agent_cannot_write_is_refused(tmp_path):
    staging = tmp_path / "run"
    staging.mkdir(mode=0o500)
    env = {"EDGE_POS_PORT": "loop://", "EDGE_AGENT_DATA_DIR": str(tmp_path), "EDGE_CAPTURE_STAGING_DIR": str(staging)}
    result = run("check-config", env_extra=env)
    assert result.returncode == 2
    assert f"capture.staging_dir {staging} cannot be written by this user" in result.stderr


def test_doctor_says_whether_the_staging_directory_is_in_memory(tmp_path):
    """Bytes just read, card numbers in clear included, wait there: on a disk they would reach it."""
    on_disk = tmp_path / "run"
    on_disk.mkdir()
    disk_type = subprocess.run(["stat", "-f", "-c", "%T", str(on_disk)], capture_output=True, text=True).stdout
    if disk_type.strip() in ("tmpfs", "ramfs"):
        pytest.skip(f"{tmp_path} is in memory here")
    env = {"EDGE_POS_PORT": "loop://", "EDGE_AGENT_DATA_DIR": str(tmp_path)}
    lines = run("doctor", env_extra=env | {"EDGE_CAPTURE_STAGING_DIR": str(on_disk)}).stdout.splitlines()
    staging = [line for line in lines if "staging directory" in line]
    assert len(staging) == 1 and staging[0].startswith(f"warn  capture staging directory {on_disk} is on "), lines
    assert "not in memory" in staging[0]
    lines = run("doctor", env_extra=env | {"EDGE_CAPTURE_STAGING_DIR": "/dev/shm"}).stdout.splitlines()
    assert "ok    capture staging directory /dev/shm is in memory (tmpfs)" in lines, lines
