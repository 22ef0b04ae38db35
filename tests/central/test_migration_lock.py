"""Instances started together on one database migrate it one at a time, with real processes."""

from __future__ import annotations

import subprocess
from contextlib import nullcontext

import pytest
from sqlalchemy import text

from central.db import make_engine
from central.migrate import current_revision, head_revision
from tests.central.cli_runner import clean_environment, command, write_config
from tests.conftest import fresh_postgres_database

INSTANCES = 3


def migrate_at_once(configs) -> list[subprocess.CompletedProcess[str]]:
    processes = [
        subprocess.Popen(
            [*command(), "migrate", "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_environment(),
        )
        for config in configs
    ]
    done = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        done.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return done


@pytest.mark.parametrize("database", ["postgresql", "sqlite"])
def test_instances_migrating_a_fresh_database_at_once_all_succeed(database, tmp_path):
    sqlite_url = f"sqlite:///{tmp_path / 'central.db'}"
    with fresh_postgres_database("cdp_migrate_lock") if database == "postgresql" else nullcontext(sqlite_url) as url:
        configs = [write_config(tmp_path / f"c{i}.toml", tmp_path / f"data{i}", url) for i in range(INSTANCES)]
        done = migrate_at_once(configs)
        for result in done:
            assert result.returncode == 0, result.stderr
            assert result.stdout == f"database is at revision {head_revision()}\n"
            assert "Traceback" not in result.stderr
        migrated = [r for r in done if "database migrated from revision None" in r.stderr]
        assert len(migrated) == 1, [r.stderr for r in done]  # the others found it current
        engine = make_engine(url)
        try:
            assert current_revision(engine) == head_revision()
        finally:
            engine.dispose()


def test_a_migration_state_alembic_refuses_is_one_line(tmp_path):
    url = f"sqlite:///{tmp_path / 'central.db'}"
    config = write_config(tmp_path / "c.toml", tmp_path / "data", url)
    assert migrate_at_once([config])[0].returncode == 0
    engine = make_engine(url)
    try:
        with engine.begin() as conn:  # two heads recorded, as a half-finished manual repair can leave it
            conn.execute(
                text("INSERT INTO alembic_version (version_num) SELECT version_num || 'x' FROM alembic_version")
            )
    finally:
        engine.dispose()
    (done,) = migrate_at_once([config])
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    (line,) = [line for line in done.stderr.splitlines() if "database sqlite" not in line]
    assert line.startswith("central-server: ")
