"""The installers' systemd units name the directories the installer was given, and uninstall finds them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import unavailable

ROOT = Path(__file__).resolve().parent.parent
COMMON = ROOT / "installers" / "common.sh"


def bash(script: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", f"set -euo pipefail; PROG=test; . {COMMON}; {script}"],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], **env},
        check=False,
    )


@pytest.mark.parametrize("name", ["edge-agent", "central-server"])
def test_with_the_default_directories_the_unit_is_the_one_in_the_repository(name):
    done = bash(f"render_unit {name}")
    assert done.returncode == 0, done.stderr
    assert done.stdout == (ROOT / "systemd" / f"{name}.service").read_text(encoding="utf-8")


def test_the_unit_names_the_prefix_settings_and_data_directories_given():
    done = bash(
        "common_option --prefix /srv/cdp/; common_option --etc-dir /srv/etc/agent;"
        " common_option --state-dir /srv/state/agent; render_unit edge-agent"
    )
    assert done.returncode == 0, done.stderr
    unit = done.stdout
    assert "Environment=EDGE_CONFIG=/srv/etc/agent/agent.toml\n" in unit
    assert "ExecStart=/srv/cdp/venv/bin/edge-agent run\n" in unit
    assert "ReadWritePaths=/srv/state/agent\n" in unit
    # systemd's StateDirectory is always under /var/lib: a data directory elsewhere is not one.
    assert "StateDirectory" not in unit and "/var/lib/edge-agent" not in unit and "/etc/edge-agent" not in unit
    assert "RuntimeDirectory=edge-agent\n" in unit  # the staging directory in memory stays


@pytest.mark.parametrize("path", ["srv/state", "/srv/my state", "/srv/a#b", "/srv/100%", ""])
def test_a_directory_a_unit_cannot_name_stops_the_installer(path):
    done = bash(f"common_option --state-dir '{path}'; echo went on")
    assert done.returncode == 1 and "went on" not in done.stdout
    assert done.stderr.startswith("test: error: --state-dir ")


def _as_root(why: str) -> None:
    """Skip as another user on a developer machine; under CI, where the suite runs as root, fail instead."""
    if os.geteuid() != 0:
        unavailable(why)


def test_uninstall_purges_the_directories_the_installed_unit_names(tmp_path):
    _as_root("the uninstaller runs as root")
    etc, state, units = tmp_path / "etc" / "agent", tmp_path / "state" / "agent", tmp_path / "units"
    for folder in (etc, state, units):
        folder.mkdir(parents=True)
    (etc / "agent.toml").write_text("[pos]\n", encoding="utf-8")
    (state / "outbox.db").write_bytes(b"x")
    script = f"common_option --etc-dir {etc}; common_option --state-dir {state}; render_unit edge-agent"
    (units / "edge-agent.service").write_text(bash(script).stdout, encoding="utf-8")
    done = subprocess.run(
        ["bash", str(ROOT / "installers" / "uninstall.sh"), "agent", "--purge"],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], "UNIT_DIR": str(units)},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert f"purged {etc} and {state}" in done.stdout
    assert not etc.exists() and not state.exists()


def test_rerunning_install_central_with_its_admin_keeps_the_admin_and_finishes(tmp_path):
    _as_root("the installer runs as root")
    prefix, etc, state = tmp_path / "prefix", tmp_path / "etc", tmp_path / "state"
    prefix.mkdir()
    (prefix / "venv").symlink_to(sys.prefix)  # this environment, no pip
    command = [
        "bash", str(ROOT / "installers" / "install-central.sh"), "--admin", "admin", "--user", "root",
        "--prefix", str(prefix), "--etc-dir", str(etc), "--state-dir", str(state), "--no-pip", "--no-systemd",
    ]  # fmt: skip
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)}

    def install() -> subprocess.CompletedProcess[str]:
        return subprocess.run(command, capture_output=True, text=True, env=env, check=False, timeout=300)

    first = install()
    assert first.returncode == 0, first.stderr
    assert "created admin user 'admin'" in first.stderr
    (password,) = [line for line in first.stdout.splitlines() if not line.startswith(("install-central:", "database "))]
    again = install()
    assert again.returncode == 0, again.stderr
    assert "install-central: admin user admin already exists; keeping its password" in again.stdout
    assert "install-central: done." in again.stdout
    assert password not in again.stdout  # no password printed, the first one still holds
