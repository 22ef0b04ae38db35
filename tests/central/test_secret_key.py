"""Every instance serves the database with the secret.key it was set up with (decision 0092)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa

from central import secret_key
from central.config import CentralConfig
from shared.crypto import KEY_BYTES, replace_secret_file, write_secret_file
from tests.central.cli_runner import Cli, InProcessCli, command, write_config
from tools.processes import Central


def _recorded(url: str) -> str | None:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return secret_key.recorded(conn)
    finally:
        engine.dispose()


def _fingerprint(path: Path) -> str:
    return secret_key.fingerprint(path.read_bytes())


@pytest.mark.e2e
def test_a_second_instance_with_its_own_key_is_refused_until_given_the_first_ones(backend, tmp_path):
    first_dir, second_dir = tmp_path / "hq-1", tmp_path / "hq-2"
    first_dir.mkdir()
    second_dir.mkdir()
    first, second = Central(first_dir, backend.url), Central(second_dir, backend.url)
    # The second host was installed on its own and made its own key.
    write_secret_file(second_dir / "secret.key", os.urandom(KEY_BYTES))
    own = (second_dir / "secret.key").read_bytes()
    try:
        first.start()
        held = _fingerprint(first_dir / "secret.key")
        assert _recorded(backend.url) == held

        refused = subprocess.run(
            [*command(), "serve"], env=second.env, capture_output=True, text=True, timeout=60, check=False
        )
        assert refused.returncode == 2
        lines = refused.stderr.strip().splitlines()
        assert lines[-1].startswith(f"central-server: {second_dir / 'secret.key'} (fingerprint ")
        assert f"was set up with another secret.key (fingerprint {held[:16]}…)" in lines[-1]
        copy = "copy secret.key from an instance that serves it (or from the backup taken with the database)"
        assert f"{copy} to {second_dir}" in lines[-1]
        assert "Traceback" not in refused.stderr
        assert (second_dir / "secret.key").read_bytes() == own  # never replaced

        replace_secret_file(second_dir / "secret.key", (first_dir / "secret.key").read_bytes())
        second.start()
        assert first.healthy() and second.healthy()
        # Both now hand agents the same downlink key at enrollment.
        from central.fleet.downlink import public_key

        assert public_key((first_dir / "secret.key").read_bytes()) == public_key(
            (second_dir / "secret.key").read_bytes()
        )
        assert _recorded(backend.url) == held
    finally:
        first.stop()
        second.stop()
        first.engine.dispose()
        second.engine.dispose()


def test_a_fresh_database_makes_the_key_and_records_it(make_config, backend):
    config: CentralConfig = make_config()
    assert not config.secret_key_path.exists()
    assert _recorded(backend.url) is None
    result = InProcessCli(
        write_config(config.server_data_dir.parent / "c.toml", config.server_data_dir, backend.url)
    ).run("check-config")
    assert result.returncode == 0, result.stderr
    assert "first instance to start creates it" in result.stdout

    from central.app import create_app
    from central.db import engine_for

    app = create_app(config)
    engine_for(app).dispose()
    assert config.secret_key_path.stat().st_mode & 0o777 == 0o600
    assert app.config["SECRET_KEY"] == config.secret_key_path.read_bytes()
    assert _recorded(backend.url) == _fingerprint(config.secret_key_path)


def test_a_database_from_before_fingerprints_adopts_the_key_of_the_first_instance(make_app, make_config, backend):
    config: CentralConfig = make_config()
    write_secret_file(config.secret_key_path, b"k" * KEY_BYTES)
    app = make_app()
    assert app.config["SECRET_KEY"] == b"k" * KEY_BYTES
    assert _recorded(backend.url) == secret_key.fingerprint(b"k" * KEY_BYTES)


def test_a_restore_without_the_key_is_refused_and_makes_no_key(make_app, backend, tmp_path):
    make_app()  # the database was set up with tmp_path/data/secret.key
    held = _recorded(backend.url)
    assert held is not None
    restored = tmp_path / "new-host"
    cli = InProcessCli(write_config(tmp_path / "new-host.toml", restored, backend.url))
    for args in (("serve",), ("coupons", "list"), ("member-revoke", "M1")):
        result = cli.run(*args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith(f"central-server: no {restored / 'secret.key'}, but database ")
        assert f"was set up with a secret.key (fingerprint {held[:16]}…)" in last
        assert not (restored / "secret.key").exists()
    # A scheduled job run by hand fails as a job does, its run recording why.
    job = cli.run("run-job", "member_cards")
    assert job.returncode == 1
    assert f"was set up with a secret.key (fingerprint {held[:16]}…)" in job.stderr
    assert not (restored / "secret.key").exists()
    checked = cli.run("check-config")
    assert checked.returncode == 2
    assert f"no {restored / 'secret.key'}, but database" in checked.stderr

    # The key from the backup, copied in: served again.
    restored.mkdir(exist_ok=True)
    shutil.copy2(tmp_path / "data" / "secret.key", restored / "secret.key")
    checked = cli.run("check-config")
    assert checked.returncode == 0, checked.stderr
    assert f"is the one database {_label(backend.url)} was set up with (fingerprint {held[:16]}…)" in checked.stdout
    assert cli.run("coupons", "list").returncode == 0


def test_a_restore_with_another_key_is_refused_by_commands_that_sign(make_app, backend, tmp_path):
    make_app()
    other = tmp_path / "other"
    write_secret_file(other / "secret.key", os.urandom(KEY_BYTES))
    cli = Cli(write_config(tmp_path / "other.toml", other, backend.url))
    result = cli.run("coupons", "list")
    assert result.returncode == 2
    assert "was set up with another secret.key" in result.stderr
    assert "Traceback" not in result.stderr


def _label(url: str) -> str:
    return sa.engine.make_url(url).render_as_string(hide_password=True)
