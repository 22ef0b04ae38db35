"""Central's fixtures: every database test runs on SQLite and on PostgreSQL, schema from migrations.

SQLite: the production migrations build one template file per session; each test gets a copy.
PostgreSQL: one throwaway database per session (``fresh_postgres_database``), migrated once, and
emptied with TRUNCATE before each test.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from central import db as central_db
from central.app import create_app
from central.config import CentralConfig
from central.config_loader import load_config
from central.migrate import upgrade
from central.schema import Base
from tests.central.support import Agent, FakeClock, create_user, login, token_for
from tests.conftest import fresh_postgres_database


@dataclass(frozen=True)
class Backend:
    """A database for one test: its kind and SQLAlchemy URL."""

    name: str
    url: str


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "central.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with fresh_postgres_database("cdp_central") as url:
        upgrade(url)
        yield url


# Each test starts from empty tables with ids from 1. TRUNCATE makes new files for a table and each
# of its indexes, about 170 ms for all of them a test, so only the tables a test wrote are emptied
# (found by one probe each, in one statement) and every sequence is set back with setval.
_WRITTEN = " UNION ALL ".join(f"SELECT '{t}' WHERE EXISTS (SELECT 1 FROM {t})" for t in Base.metadata.tables)  # noqa: S608 - our own table names
_RESTART = (
    "SELECT setval(c.oid, 1, false) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE c.relkind = 'S' AND n.nspname = current_schema()"
)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        target = tmp_path / "data" / "central.db"
        target.parent.mkdir()
        shutil.copyfile(request.getfixturevalue("sqlite_template"), target)
        return Backend("sqlite", f"sqlite:///{target}")
    url = request.getfixturevalue("postgres_url")
    engine = create_engine(url, poolclass=NullPool)
    with engine.begin() as conn:
        written = conn.execute(text(_WRITTEN)).scalars().all()
        if written:
            conn.execute(text(f"TRUNCATE {', '.join(written)} CASCADE"))
        conn.execute(text(_RESTART))
    engine.dispose()
    return Backend("postgresql", url)


@pytest.fixture
def make_config(backend: Backend, tmp_path: Path) -> Callable[..., CentralConfig]:
    """Settings for this test's database and data directory, plus any ``overrides``."""

    def make(**overrides: Any) -> CentralConfig:
        # Two-step sign-in is required of admins by default; tests of other things log in with a password
        # alone, and tests/central/test_two_step.py asks for it.
        values = {"server.data_dir": str(tmp_path / "data"), "database.url": backend.url, "console.two_step_roles": ""}
        values.update({k.replace("__", "."): v for k, v in overrides.items()})
        return load_config(None, environ={}, overrides=values)

    return make


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_app(make_config: Callable[..., CentralConfig], clock: FakeClock) -> Iterator[Callable[..., Flask]]:
    """Build apps (with setting overrides such as ``ingest__max_events=2``); engines closed after."""
    apps: list[Flask] = []

    def make(**overrides: Any) -> Flask:
        app = create_app(make_config(**overrides), test_config={"TESTING": True, "CLOCK": clock})
        apps.append(app)
        return app

    yield make
    for app in apps:
        central_db.engine_for(app).dispose()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def agent(app: Flask, client: FlaskClient) -> Agent:
    """An agent enrolled in store S001."""
    enrolled = Agent()
    response = enrolled.enroll(client, token_for(app))
    assert response.status_code == 201, response.get_data(as_text=True)
    return enrolled


@pytest.fixture
def user_client(app: Flask) -> FlaskClient:
    """A test client logged in to the console as admin user alice."""
    create_user(app)
    logged_in = app.test_client()
    assert login(logged_in).status_code == 302
    return logged_in
