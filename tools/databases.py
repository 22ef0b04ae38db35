"""Throwaway PostgreSQL databases for tests and benchmarks, on the server at $CDP_TEST_POSTGRES_URL."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

POSTGRES_ADMIN_URL = os.environ.get("CDP_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def _dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def postgres_problem() -> str | None:
    """None if PostgreSQL answers at the admin URL, else why not."""
    import psycopg

    try:
        with psycopg.connect(_dsn(POSTGRES_ADMIN_URL), connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}: {str(exc).strip()}"


@contextmanager
def temporary_postgres_database(prefix: str = "cdp_test") -> Iterator[str]:
    """Create an empty database, yield its SQLAlchemy URL, drop it afterwards."""
    import psycopg

    problem = postgres_problem()
    if problem:
        raise RuntimeError(problem)
    name = f"{prefix}_{secrets.token_hex(6)}"
    admin = _dsn(POSTGRES_ADMIN_URL)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{POSTGRES_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
