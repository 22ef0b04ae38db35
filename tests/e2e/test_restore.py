"""Central restored from a backup: the agents send again what the backup lost, and nothing twice.

Real processes on loopback: a till's pty -> edge-agent -> central under waitress. Central's
database is backed up while the agent delivers (SQLite's online backup; ``pg_dump``) and, later,
restored (copied back; ``pg_restore`` into a new database central is then pointed at).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import fresh_postgres_database
from tools.processes import Agent, Central, Till, wait_until

pytestmark = pytest.mark.e2e


def sell(till: Till, first: int, count: int) -> None:
    """Ring up receipts R-<first> ... at the till."""
    for n in range(first, first + count):
        line = json.dumps({"receipt_no": f"R-{n:05d}", "total": f"{n % 50}.50"}).encode() + b"\n"
        view = memoryview(line)
        while view:
            view = view[os.write(till.master, view) :]


def delivered_receipts(agent: Agent) -> int:
    """Receipts the agent's outbox counts as delivered (central acknowledged them)."""
    path = agent.data_dir / "outbox.db"
    if not path.exists():
        return 0
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        try:
            row = conn.execute("SELECT COUNT(*) FROM events WHERE kind = 'pos.receipt' AND state = 1").fetchone()
        except sqlite3.OperationalError:  # the agent has not created its tables yet
            return 0
    return int(row[0])


class Restorable:
    """Central on a database that can be backed up while it runs and restored while it is stopped."""

    def __init__(self, central: Central, spare_url: str | None = None) -> None:
        self.central = central
        self.spare_url = spare_url  # PostgreSQL: the new database the backup is restored into
        self.backup_file = central.workdir / "central.backup"

    def backup(self) -> None:
        url = self.central.database_url
        if url.startswith("sqlite"):
            with sqlite3.connect(url.removeprefix("sqlite:///")) as live, sqlite3.connect(self.backup_file) as copy:
                live.backup(copy)
        else:
            subprocess.run(["pg_dump", "-Fc", "-f", str(self.backup_file), _libpq(url)], check=True, timeout=120)

    def restore(self) -> None:
        """Stop central and restore the backup (the caller starts central again)."""
        central = self.central
        central.stop()
        central.engine.dispose()
        if self.spare_url is None:
            database = Path(central.database_url.removeprefix("sqlite:///"))
            for old in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
                old.unlink(missing_ok=True)
            with sqlite3.connect(self.backup_file) as copy, sqlite3.connect(database) as restored:
                copy.backup(restored)
            return
        subprocess.run(
            ["pg_restore", "--no-owner", "-d", _libpq(self.spare_url), str(self.backup_file)], check=True, timeout=120
        )
        central.config.write_text(central.config.read_text().replace(central.database_url, self.spare_url))
        central.database_url = self.spare_url
        central.engine = sa.create_engine(self.spare_url)


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@pytest.fixture(params=["sqlite", "postgresql"])
def restorable(request, tmp_path) -> Iterator[Restorable]:
    with ExitStack() as stack:
        if request.param == "sqlite":
            server = Restorable(Central(tmp_path, f"sqlite:///{tmp_path / 'central.db'}", cli_in_process=True))
        else:
            first = stack.enter_context(fresh_postgres_database("cdp_e2e"))
            spare = stack.enter_context(fresh_postgres_database("cdp_e2e_restored"))
            server = Restorable(Central(tmp_path, first, cli_in_process=True), spare)
        yield server
        server.central.close()


def agent_documents(agent: Agent) -> dict:
    """The downlink documents the agent runs, by name."""
    path = agent.data_dir / "downlink.json"
    return (
        {name: doc["body"] for name, doc in json.loads(path.read_text())["documents"].items()} if path.exists() else {}
    )


def _store_selling_to(central: Central, tmp_path, cleanup) -> tuple[Till, Agent]:
    """Central started, and a store whose agent is enrolled with it and running beside its till."""
    till = Till([], rate=1)
    agent = Agent(tmp_path, till.path, heartbeat_interval=1)
    cleanup += [till, agent]
    central.start()
    agent.enroll(central.url, central.enroll_token("S001"))
    agent.start()
    return till, agent


def test_documents_published_after_a_restore_reach_the_agents_whatever_their_versions(restorable, tmp_path, cleanup):
    central = restorable.central
    till, agent = _store_selling_to(central, tmp_path, cleanup)
    sell(till, 0, 10)
    wait_until(lambda: delivered_receipts(agent) == 10, 60, "the first receipts delivered")
    restorable.backup()

    document = tmp_path / "document.json"
    document.write_text('{"text": "published after the backup"}')
    ran = int(central.cli("downlink", "set", "--store", "S001", "--name", "notice", str(document)))
    wait_until(
        lambda: "notice" in agent_documents(agent), 30, "the agent to run the document published after the backup"
    )
    restorable.restore()
    # Published before the agents hear from the restored central, under versions up to past the one they run.
    published = {}
    while not published or max(published.values()) <= ran:
        name = f"slot{len(published)}"
        published[name] = int(central.cli("downlink", "set", "--store", "S001", "--name", name, str(document)))
    central.start()

    wait_until(
        lambda: set(published) <= set(agent_documents(agent)) and "notice" not in agent_documents(agent),
        30,
        "the agent to run the restored central's documents",
    )


def test_events_delivered_after_the_backup_reach_a_restored_central_exactly_once(restorable, tmp_path, cleanup):
    central = restorable.central
    till, agent = _store_selling_to(central, tmp_path, cleanup)

    sell(till, 0, 300)
    wait_until(lambda: delivered_receipts(agent) == 300, 60, "the first 300 receipts delivered")
    restorable.backup()
    held_at_backup = central.scalar("SELECT MAX(seq) FROM events")

    sell(till, 300, 200)  # delivered, acknowledged, then lost with the restore
    wait_until(lambda: delivered_receipts(agent) == 500, 60, "500 receipts delivered")

    restorable.restore()
    assert central.scalar("SELECT COUNT(*) FROM events WHERE kind = 'pos.receipt'") == 300
    central.start()

    sell(till, 500, 100)
    wait_until(
        lambda: central.scalar("SELECT COUNT(*) FROM events WHERE kind = 'pos.receipt'") >= 600,
        90,
        "every receipt at the restored central",
    )
    numbers = central.receipt_numbers()
    assert sorted(numbers) == [f"R-{n:05d}" for n in range(600)]  # each exactly once
    # Every seq the agent ever used is at central, the heartbeats as well as the sales.
    top = central.scalar("SELECT MAX(seq) FROM events")
    assert top > held_at_backup
    assert central.scalar("SELECT COUNT(DISTINCT seq) FROM events") == top
    assert central.scalar("SELECT COUNT(*) FROM events") == top

    def reported() -> dict:
        result = agent.command("status", "--json")
        return json.loads(result.stdout)["health"]

    wait_until(lambda: reported().get("resent", 0) > 0, 30, "the resend reported in the agent's status")
    health = reported()
    assert health["resend_missing"] == 0
    assert health["resent"] >= 200
    # HQ sees it too, from the agent's heartbeats.
    wait_until(lambda: "resent on central's request" in central.cli("devices"), 30, "the resend in `devices`")
    assert "no longer held by the agent: 0" in central.cli("devices")
