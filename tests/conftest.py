"""Fixtures shared by every test package: the samples folder and throwaway PostgreSQL databases.

A test that needs PostgreSQL or ``../shared/samples`` skips when they are absent on a developer's
machine, and fails instead when ``CI`` is set, so CI can never pass by skipping.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from tools.databases import POSTGRES_ADMIN_URL, postgres_problem, temporary_postgres_database
from tools.filesystems import SmallFilesystem, mount_problem, small_filesystem

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO.parent / "shared" / "samples"

__all__ = ["POSTGRES_ADMIN_URL", "fresh_postgres_database", "postgres_reachable", "unavailable"]


def unavailable(why: str) -> None:
    """Skip on a developer machine, fail under CI."""
    if os.environ.get("CI"):
        pytest.fail(f"{why} (CI is set, so this is a failure, not a skip)")
    pytest.skip(why)


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    if not SAMPLES.is_dir():
        unavailable(f"device samples not found at {SAMPLES}")
    return SAMPLES


def postgres_reachable() -> str | None:
    """None if PostgreSQL answers at the admin URL, else the reason it does not."""
    return postgres_problem()


@contextmanager
def fresh_postgres_database(prefix: str = "cdp_test") -> Iterator[str]:
    """Create an empty PostgreSQL database, yield its SQLAlchemy URL, drop it afterwards."""
    problem = postgres_problem()
    if problem:
        unavailable(problem)
    with temporary_postgres_database(prefix) as url:
        yield url


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Callable[[Path, int], SmallFilesystem]]:
    """``small_fs(path, size)`` mounts a tmpfs of ``size`` bytes at ``path`` for a disk-full test.

    Mounting needs root: without it the test skips on a developer machine and fails under CI.
    """
    problem = mount_problem(tmp_path)
    if problem:
        unavailable(problem)
    with ExitStack() as stack:
        yield lambda path, size: stack.enter_context(small_filesystem(path, size))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """End-to-end tests first, as one xdist group: on ``-n 2`` (``./dev test``) one worker runs them
    in turn from the start while the other takes the rest, so no two of them compete for the CPU and
    the run does not end waiting on a long one that started last."""
    items.sort(key=lambda item: not item.nodeid.startswith("tests/e2e/"))
    for item in items:
        if item.nodeid.startswith("tests/e2e/"):
            item.add_marker(pytest.mark.xdist_group("e2e"))


@pytest.fixture(autouse=True)
def _root_logger_kept() -> Iterator[None]:
    """Put the root logger back after each test: a test that runs ``central.cli.main`` in-process
    configures it for a process (a handler on the stderr pytest captured for that test), and a
    server thread of a later test would log into that closed stream."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers[:]:
        # pytest's own capture handlers come and go with each phase; only the test's are removed.
        if handler not in handlers and not type(handler).__module__.startswith("_pytest"):
            root.removeHandler(handler)
    root.setLevel(level)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--storm",
        type=int,
        default=30,
        help="SIGKILLs in the agent's kill-storm test (tests/e2e/test_kill_storm.py); 1000 for the long run",
    )
    parser.addoption(
        "--storm-reading",
        action="store_true",
        help="in the kill storm, start each random delay once the restarted agent reads the port, so every "
        "kill lands during capture (on a loaded machine most would otherwise land while the agent starts)",
    )
    parser.addoption(
        "--outage",
        type=float,
        default=8.0,
        help="seconds central stays down in tests/e2e/test_pipeline.py's outage test; 3600 for the long run",
    )
    parser.addoption(
        "--card-receipts",
        type=int,
        default=500,
        help="generated receipts with card numbers, track data and CVVs fed through the agent's ESC/POS capture "
        "path (tests/edge_agent/test_card_data_never_lands.py); 10000 for the acceptance run",
    )
    parser.addoption(
        "--till-receipts",
        type=int,
        default=37,
        help="generated receipts a till prints through the agent to central in tests/e2e/test_escpos_pipeline.py "
        "(beyond 100, all but the last with card numbers, track data and CVVs); 10000 for the acceptance run",
    )
    parser.addoption(
        "--chain-people",
        type=int,
        default=300,
        help="people in the chain the resolution-quality test scores (tests/central/test_identity_score.py); "
        "100000 for the acceptance run",
    )
    parser.addoption(
        "--erase-kills",
        type=int,
        default=2,
        help="SIGKILLs of customer erase in tests/central/test_privacy_kill.py, spread over its run (each one"
        " a fresh database copy and a rerun); 10 for a thorough run",
    )
    parser.addoption(
        "--stats-chain-customers",
        type=int,
        default=120,
        help="customers in the generated chain of tests/central/test_customer_statistics.py; 100000 for the"
        " acceptance run",
    )
    parser.addoption(
        "--stats-chain-sales",
        type=int,
        default=900,
        help="sales in the generated chain of tests/central/test_customer_statistics.py (each delivered once,"
        " a fifth of them twice, in random order); 1000000 for the acceptance run",
    )
