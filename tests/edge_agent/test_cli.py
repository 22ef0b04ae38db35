"""`edge-agent` as a technician runs it: configuration errors, check-config, unenrolled starts."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent / "edge-agent"


def run(*args, env_extra=None, cwd=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    env.update(env_extra or {})
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, env=env, timeout=60, cwd=cwd)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[pos]\nport = "/dev/ttyUSB0"\nbaud = 9600\n', "pos.baud: unknown key (did you mean 'pos.baudrate'?)"),
        ('[pos]\nport = "/dev/ttyUSB0"\nbaudrate = "fast"\n', "pos.baudrate: expected an integer, got 'fast'"),
        ('[agent]\ndata_dir = "/tmp/x"\n', "pos.port: required setting is missing (or set EDGE_POS_PORT)"),
        ("[pos\n", "invalid TOML"),
        (
            '[pos]\nport = "/dev/ttyUSB0"\n[sync]\ncentral_url = "cdp.example.com"\n',
            "sync.central_url: central's URL 'cdp.example.com' lacks http:// or https://",
        ),
        (
            '[pos]\nport = "/dev/ttyUSB0"\n[sync]\ncentral_url = "https://hq:s3cret@cdp.example.com"\n',
            "sync.central_url: central's URL must not carry a user name or password",
        ),
    ],
)
def test_bad_config_file_exits_2_with_one_line_naming_key_and_file(tmp_path, text, expected):
    path = tmp_path / "agent.toml"
    path.write_text(text)
    for command in ("check-config", "run"):
        result = run(command, "--config", str(path))
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith(f"edge-agent: config error in {path}")
        assert expected in lines[0]
        assert "s3cret" not in result.stderr + result.stdout


def test_every_config_problem_is_reported_at_once_one_line_each(tmp_path):
    path = tmp_path / "agent.toml"
    path.write_text('[pos]\nport = "/dev/ttyUSB0"\nbaud = 9600\n[sync]\ninterval = -1\n')
    result = run("check-config", "--config", str(path))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"edge-agent: config error in {path}:3: pos.baud: unknown key (did you mean 'pos.baudrate'?)",
        f"edge-agent: config error in {path}:5: sync.interval: must be from 0.05 to 3600; got -1.0",
    ]


def test_bad_environment_variable_exits_2(tmp_path):
    result = run("check-config", env_extra={"EDGE_POS_PORT": "loop://", "EDGE_SYNC_INTERVAL": "soon"})
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "edge-agent: config error in environment: EDGE_SYNC_INTERVAL: expected a number, got 'soon'"
    )


def test_check_config_prints_the_effective_settings(tmp_path):
    path = tmp_path / "agent.toml"
    path.write_text(f'[agent]\ndata_dir = "{tmp_path}"\n[pos]\nport = "loop://"\n')
    result = run("check-config", env_extra={"EDGE_CONFIG": str(path), "EDGE_SYNC_BATCH_SIZE": "100"})
    assert result.returncode == 0, result.stderr
    assert f"config ok: {path}" in result.stdout
    assert "sync.batch_size = 100" in result.stdout
    assert "pos.port = loop://" in result.stdout


def test_run_before_enrollment_says_what_to_do(tmp_path):
    result = run("run", env_extra={"EDGE_POS_PORT": "loop://", "EDGE_AGENT_DATA_DIR": str(tmp_path)})
    assert result.returncode == 1
    assert "not enrolled yet; run `edge-agent enroll --central URL --token TOKEN`" in result.stderr
    assert "Traceback" not in result.stderr


def test_enroll_against_nothing_fails_cleanly(tmp_path):
    result = run(
        "enroll",
        "--central",
        "http://127.0.0.1:9",
        "--token",
        "t",
        env_extra={"EDGE_AGENT_DATA_DIR": str(tmp_path)},
    )
    assert result.returncode == 1
    assert result.stderr.startswith("edge-agent: enrollment failed: cannot reach central at http://127.0.0.1:9")
    assert not (tmp_path / "credentials.json").exists()


def test_config_is_accepted_before_and_after_the_command(tmp_path):
    path = tmp_path / "agent.toml"
    path.write_text(f'[agent]\ndata_dir = "{tmp_path}"\n[pos]\nport = "loop://"\n')
    before = run("--config", str(path), "check-config")
    after = run("check-config", "--config", str(path))
    assert before.returncode == after.returncode == 0, before.stderr + after.stderr
    assert before.stdout == after.stdout
    assert f"config ok: {path}" in before.stdout


def test_check_config_without_a_file_says_where_it_looked(tmp_path):
    result = run("check-config", env_extra={"EDGE_POS_PORT": "loop://"})
    assert result.returncode == 0, result.stderr
    assert "no settings file" in result.stdout and "/etc/edge-agent/agent.toml" in result.stdout
    assert "$EDGE_CONFIG unset" in result.stdout
    missing = run("check-config")
    assert missing.returncode == 2
    assert "pos.port: required setting is missing" in missing.stderr
    assert "/etc/edge-agent/agent.toml does not exist" in missing.stderr


def test_enroll_with_a_url_lacking_its_scheme_says_how_to_write_it(tmp_path):
    result = run(
        "enroll", "--central", "cdp.example.com", "--token", "t", env_extra={"EDGE_AGENT_DATA_DIR": str(tmp_path)}
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "edge-agent: enrollment failed: central's URL 'cdp.example.com' lacks http:// or https:// "
        "(for example https://cdp.example.com)"
    )


def test_enroll_over_https_to_a_plain_http_central_fails_fast_and_says_what_to_do(tmp_path):
    from tests.edge_agent.servers import json_app, waitress_on_loopback

    with waitress_on_loopback(json_app()) as url:
        host = url.removeprefix("http://")
        started = time.monotonic()
        result = run(
            "enroll", "--central", f"https://{host}", "--token", "t", env_extra={"EDGE_AGENT_DATA_DIR": str(tmp_path)}
        )
        elapsed = time.monotonic() - started
    assert result.returncode == 1
    assert elapsed < 12, f"took {elapsed:.1f} s"
    assert f"cannot reach central at https://{host}: central at {host} speaks plain HTTP, not TLS" in result.stderr
    assert f"use http://{host}" in result.stderr
    assert "Traceback" not in result.stderr and "requests" not in result.stderr


def test_a_bad_central_url_in_the_environment_names_the_variable(tmp_path):
    path = tmp_path / "agent.toml"
    path.write_text('[pos]\nport = "/dev/ttyUSB0"\n')
    result = run("check-config", "--config", str(path), env_extra={"EDGE_SYNC_CENTRAL_URL": "ftp://cdp.example.com"})
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "edge-agent: config error in environment: EDGE_SYNC_CENTRAL_URL: central's URL 'ftp://cdp.example.com'"
        " must start with http:// or https://, not ftp://"
    )


def test_a_directory_given_as_the_settings_file_is_one_line_not_a_traceback(tmp_path):
    for command in ("check-config", "status", "doctor"):
        result = run("--config", str(tmp_path), command)
        assert result.returncode == 2
        assert result.stderr.strip() == (
            f"edge-agent: config error in {tmp_path}: is a directory, not a settings file (give the TOML file's path)"
        )


def test_a_reader_that_closes_the_output_early_ends_the_command_quietly(tmp_path):
    from edge_agent.status import write_status

    health = {"state": "ok", "problem": "", "agent_version": "1", "queue_depth": 0, "captured": 0, "delivered": 0}
    health |= {"dead_lettered": 0, "quarantined": 0}
    write_status(tmp_path / "status.json", health, written_at=time.time(), interval=10)
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")} | {"EDGE_AGENT_DATA_DIR": str(tmp_path)}
    for command in (["status"], ["status", "--json"], ["check-config"]):
        reader, writer = os.pipe()
        os.close(reader)  # as `edge-agent status | head -1` once head has its line and exits
        try:
            result = subprocess.run(
                [str(BIN), *command],
                stdout=writer,
                stderr=subprocess.PIPE,
                env=env | {"EDGE_POS_PORT": "loop://"},
                timeout=60,
            )
        finally:
            os.close(writer)
        assert result.stderr == b"", result.stderr.decode()
        assert result.returncode == 141


def test_enrolling_at_a_page_of_central_instead_of_its_base_address_says_to_check_the_url(tmp_path):
    from tests.edge_agent.servers import raw_app, waitress_on_loopback
    from tests.edge_agent.test_transport import CONSOLE_PAGE, HTML

    with waitress_on_loopback(raw_app("400 BAD REQUEST", CONSOLE_PAGE, HTML)) as url:
        result = run(
            "enroll", "--central", f"{url}/console/", "--token", "t", env_extra={"EDGE_AGENT_DATA_DIR": str(tmp_path)}
        )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"edge-agent: enrollment failed: central at {url}/console answered 400 to enrollment: not central's API but"
        " a text/html answer ('<!doctype html>'); check central's URL: it must be central's base address, e.g."
        " https://cdp.example.com, with no path such as /console/"
    )
    assert not (tmp_path / "credentials.json").exists()


def test_relative_paths_in_the_settings_file_are_taken_from_its_folder_not_the_working_directory(tmp_path):
    """Under systemd the working directory is /: a relative path must mean the same from anywhere."""
    folder = tmp_path / "cfg"
    (folder / "reldata").mkdir(parents=True, mode=0o700)
    (folder / "profiles").mkdir()
    shipped = Path(__file__).resolve().parents[2] / "edge_agent" / "profiles" / "cn-convenience.toml"
    (folder / "profiles" / "my-till.toml").write_bytes(shipped.read_bytes())
    path = folder / "agent.toml"
    path.write_text(
        '[agent]\ndata_dir = "reldata"\n[pos]\nport = "loop://"\nprofiles_dir = "profiles"\n'
        '[capture]\nstaging_dir = "."\n'
    )
    outputs = []
    for cwd in (folder, "/"):
        result = run("check-config", "--config", str(path), cwd=cwd)
        assert result.returncode == 0, result.stderr
        assert f"  agent.data_dir = {folder / 'reldata'}\n" in result.stdout
        assert f"  pos.profiles_dir = {folder / 'profiles'}\n" in result.stdout
        assert f"  capture.staging_dir = {folder}\n" in result.stdout
        outputs.append(result.stdout)
        doctor = run("doctor", "--config", str(path), cwd=cwd)
        assert f"ok    data directory {folder / 'reldata'} mode 0700" in doctor.stdout, doctor.stdout
    assert outputs[0] == outputs[1]


def test_a_relative_path_in_the_environment_is_refused_naming_the_variable(tmp_path):
    for command in ("check-config", "run", "doctor"):
        result = run(command, env_extra={"EDGE_POS_PORT": "loop://", "EDGE_AGENT_DATA_DIR": "reldata"}, cwd=tmp_path)
        assert result.returncode == 2
        assert result.stderr.strip() == (
            "edge-agent: config error in environment: EDGE_AGENT_DATA_DIR: must be an absolute path, got 'reldata'"
            " (only a settings file's relative paths are resolved, against the file's folder)"
        )
    assert not (tmp_path / "reldata").exists()
