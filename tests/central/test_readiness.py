"""``/healthz`` says whether central can take writes, and a database that cannot is a 503 with a reason.

Real conditions: a SQLite database on a small tmpfs that fills up, a PostgreSQL database whose
tablespace is on a small tmpfs that fills up, and a PostgreSQL database of its own switched
read-only the way a failover to a standby leaves it.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy.engine import make_url

from central import db as central_db
from central import errors
from central.app import create_app
from central.config_loader import load_config
from central.migrate import upgrade
from tests.central.support import Agent, token_for
from tests.conftest import fresh_postgres_database, postgres_reachable, unavailable
from tools.databases import POSTGRES_ADMIN_URL
from tools.filesystems import mount_problem, small_filesystem

MiB = 1024 * 1024


def database_log(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


def enrolled(app: Flask) -> Agent:
    agent = Agent()
    assert agent.enroll(app.test_client(), token_for(app)).status_code == 201
    return agent


@pytest.fixture
def sqlite_on_small_disk(small_fs, sqlite_template, tmp_path, clock) -> Iterator[tuple[Flask, object]]:
    fs = small_fs(tmp_path / "disk", 32 * MiB)
    shutil.copyfile(sqlite_template, fs.path / "central.db")
    config = load_config(
        None,
        environ={},
        overrides={"server.data_dir": str(tmp_path / "data"), "database.url": f"sqlite:///{fs.path / 'central.db'}"},
    )
    app = create_app(config, test_config={"TESTING": True, "CLOCK": clock})
    yield app, fs
    central_db.engine_for(app).dispose()


def test_a_full_sqlite_disk_makes_healthz_and_batches_a_503_saying_so(sqlite_on_small_disk, caplog):
    app, fs = sqlite_on_small_disk
    client = app.test_client()
    agent = enrolled(app)
    assert client.get("/healthz").status_code == 200
    fs.fill()
    health = client.get("/healthz")
    assert (health.status_code, health.get_json()) == (503, {"status": "unavailable", "database": "full"})
    assert health.headers["Retry-After"] == "30"
    caplog.clear()
    response = agent.post(client, agent.body([agent.receipt("R1")]))
    assert response.status_code == 503
    assert response.get_json() == {
        "error": {"code": "database_full", "message": "the database's disk is full; retry later"}
    }
    assert response.headers["Retry-After"] == "30"
    (line,) = database_log(caplog)
    assert line.exc_info is None
    assert line.getMessage() == "database disk full on POST /api/v1/batches: database or disk is full"
    fs.free()
    assert client.get("/healthz").status_code == 200
    assert agent.post(client, agent.body([agent.receipt("R1")])).status_code == 200


@pytest.fixture
def postgres_on_small_disk(clock) -> Iterator[tuple[Flask, object]]:
    """A database whose tablespace (its catalogue and every table) is a 64 MiB tmpfs the server writes to."""
    if problem := postgres_reachable():
        unavailable(problem)
    # Not under pytest's temporary directory: the server runs as its own user and must reach the mount.
    with tempfile.TemporaryDirectory(prefix="cdp-pg-disk-") as where:
        mount = Path(where) / "space"
        if problem := mount_problem(Path(where)):
            unavailable(problem)
        with small_filesystem(mount, 64 * MiB) as fs:
            Path(where).chmod(0o755)
            subprocess.run(["chown", "postgres:postgres", str(mount)], check=True)
            space = f"cdp_small_{mount.parent.name.rsplit('-', 1)[-1].lower()}"
            admin = make_url(POSTGRES_ADMIN_URL).set(drivername="postgresql").render_as_string(hide_password=False)
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f"CREATE TABLESPACE {space} LOCATION '{mount}'")
            try:
                with fresh_postgres_database("cdp_full") as url:
                    name = make_url(url).database
                    with psycopg.connect(admin, autocommit=True) as conn:
                        conn.execute(f'ALTER DATABASE "{name}" SET TABLESPACE {space}')
                    upgrade(url)
                    config = load_config(
                        None, environ={}, overrides={"server.data_dir": f"{where}/data", "database.url": url}
                    )
                    app = create_app(config, test_config={"TESTING": True, "CLOCK": clock})
                    try:
                        yield app, fs
                    finally:
                        central_db.engine_for(app).dispose()
            finally:
                fs.free()
                with psycopg.connect(admin, autocommit=True) as conn:
                    conn.execute(f"DROP TABLESPACE IF EXISTS {space}")


def test_a_full_postgresql_disk_makes_healthz_a_503_once_a_write_was_refused(postgres_on_small_disk, clock, caplog):
    """PostgreSQL reads from a full disk as before, so only a refused write can tell: healthz said ok meanwhile."""
    app, fs = postgres_on_small_disk
    client = app.test_client()
    agent = enrolled(app)
    assert client.get("/healthz").status_code == 200
    fs.fill()
    caplog.clear()
    receipts = [agent.receipt(f"R{n}", total="12.50") for n in range(400)]
    response = agent.post(client, agent.body(receipts))
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "database_full"
    (line,) = database_log(caplog)
    assert line.getMessage().startswith("database disk full on POST /api/v1/batches: ")
    health = client.get("/healthz")
    assert (health.status_code, health.get_json()) == (503, {"status": "unavailable", "database": "full"})
    assert health.headers["Retry-After"] == "30"
    clock.advance(seconds=59)
    assert client.get("/healthz").status_code == 503
    fs.free()
    # Nothing tells central the disk has room again but a write: a minute after the last refusal it
    # answers ok, and the next refusal, if any, makes it full again.
    clock.advance(seconds=2)
    assert client.get("/healthz").status_code == 200
    assert agent.post(client, agent.body(receipts)).status_code == 200


@pytest.fixture
def read_only_postgres(clock, tmp_path) -> Iterator[tuple[Flask, str]]:
    if problem := postgres_reachable():
        unavailable(problem)
    with fresh_postgres_database("cdp_readonly") as url:
        upgrade(url)
        config = load_config(
            None, environ={}, overrides={"server.data_dir": str(tmp_path / "data"), "database.url": url}
        )
        app = create_app(config, test_config={"TESTING": True, "CLOCK": clock})
        try:
            yield app, url
        finally:
            central_db.engine_for(app).dispose()


def set_read_only(app: Flask, url: str) -> None:
    """What a failover to a standby leaves: every new session of the database is read-only."""
    name = make_url(url).database
    admin = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    central_db.engine_for(app).dispose()  # the old primary's connections went with it


def test_a_read_only_postgresql_makes_healthz_and_batches_a_503_saying_so(read_only_postgres, caplog):
    app, url = read_only_postgres
    client = app.test_client()
    agent = enrolled(app)
    assert client.get("/healthz").status_code == 200
    set_read_only(app, url)
    health = client.get("/healthz")
    assert (health.status_code, health.get_json()) == (503, {"status": "unavailable", "database": "read_only"})
    assert health.headers["Retry-After"] == "30"
    caplog.clear()
    response = agent.post(client, agent.body([agent.receipt("R1")]))
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "database_read_only"
    assert response.headers["Retry-After"] == "30"
    (line,) = database_log(caplog)
    assert line.exc_info is None
    assert line.getMessage().startswith("database read-only on POST /api/v1/batches: cannot execute ")


def test_an_unreachable_database_asks_to_retry_after(tmp_path):
    (tmp_path / "not-a-file").mkdir()
    config = load_config(
        None,
        environ={},
        overrides={"server.data_dir": str(tmp_path / "data"), "database.url": f"sqlite:///{tmp_path / 'not-a-file'}"},
    )
    client = create_app(config, test_config={"TESTING": True}).test_client()
    health = client.get("/healthz")
    assert (health.status_code, health.headers["Retry-After"]) == (503, "30")
    assert health.get_json() == {"status": "unavailable", "database": "unreachable"}


def test_a_write_kept_waiting_past_the_busy_timeout_is_database_busy_not_unavailable(tmp_path):
    """Another write held SQLite's lock (a recompute, a backup): the batch was told the database was unavailable."""
    path = tmp_path / "central.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")
    engine = sa.create_engine(f"sqlite:///{path}", connect_args={"timeout": 0})
    try:
        with pytest.raises(sa.exc.OperationalError) as waited, engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO t VALUES (1)"))
    finally:
        engine.dispose()
        holder.rollback()
        holder.close()
    assert errors.database_condition(waited.value) == "busy"
    assert errors.DATABASE_CONDITIONS["busy"][0] == "database_busy"
