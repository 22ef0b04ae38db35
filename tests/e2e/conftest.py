"""End-to-end fixtures: a central per test on SQLite or PostgreSQL."""

from __future__ import annotations

import pytest

from tests.conftest import fresh_postgres_database
from tools.processes import Central


@pytest.fixture(params=["sqlite", "postgresql"])
def central(request, tmp_path):
    """Central under waitress in a process of its own. Its commands (enroll tokens, devices, the
    downlink) run in this process, through the same ``central.cli.main``: the console script as a
    process is tested in tests/central/test_cli.py."""
    if request.param == "sqlite":
        server = Central(tmp_path, f"sqlite:///{tmp_path / 'central.db'}", cli_in_process=True)
        server.start()
        yield server
        server.close()
        return
    with fresh_postgres_database("cdp_e2e") as url:
        server = Central(tmp_path, url, cli_in_process=True)
        server.start()
        yield server
        server.close()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The kill storm's time limit grows with ``--storm``: about 10 s a kill under load, beyond the
    default limit for anything longer than the CI run."""
    kills = config.getoption("--storm")
    for item in items:
        if item.nodeid.startswith("tests/e2e/test_kill_storm.py"):
            item.add_marker(pytest.mark.timeout(max(300, 10 * kills)))


@pytest.fixture
def cleanup():
    """Things with a close() or stop() to call after the test, whatever happened in it: a failed
    test must not leave an agent running that would read the next test's pty."""
    items: list = []
    yield items
    for item in reversed(items):
        (getattr(item, "stop", None) or item.close)()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the processes' logs to a failing end-to-end test's report."""
    report = yield
    if report.failed and call.when == "call":
        for name in ("central", "agent"):
            log = item.funcargs.get("tmp_path")
            if log is not None and (log / f"{name}.log").exists():
                tail = "\n".join((log / f"{name}.log").read_text(errors="replace").splitlines()[-60:])
                report.sections.append((f"{name} log", tail))
    return report
