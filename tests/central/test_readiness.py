"""``/healthz`` says whether central can take writes, and a database that cannot is a 503 with a reason.

Real conditions: a SQLite database on a small tmpfs that fills up, and a PostgreSQL database of its
own switched read-only the way a failover to a standby leaves it.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
from collections.abc import Iterator

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
