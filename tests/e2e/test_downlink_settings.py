"""HQ changes a setting at central; every agent of the store fetches it and puts it in force.

Real processes: central under waitress, two enrolled `edge-agent run` processes of one store and one
of another store, each reading its own pty. The settings document goes out through
`central-server downlink set`; the agents learn the new version from their next batch reply, fetch
it with a signed request, verify it, apply the live settings at once and report the version.
"""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from edge_agent.status import read_status
from tools.processes import Agent, Till, wait_until

pytestmark = pytest.mark.e2e


def _status(agent: Agent) -> dict:
    try:
        return read_status(agent.data_dir / "status.json")
    except Exception:  # not written yet
        return {}


def _downlink_version(agent: Agent) -> int | None:
    return _status(agent).get("health", {}).get("downlink_version")


def test_a_setting_changed_at_central_is_applied_by_every_agent_of_the_store(central, tmp_path, cleanup):
    agents = []
    for n, store in enumerate(("S021", "S021", "S022")):
        till = Till([b"receipt_no=DL-%d total=1.00\n" % n], rate=10)
        (tmp_path / f"pc{n}").mkdir()
        # A heartbeat a second (the least allowed): each is a batch whose reply names the downlink
        # version, so the agents hear of a new one within a second instead of five.
        agent = Agent(tmp_path / f"pc{n}", till.path, heartbeat_interval=1)
        cleanup += [till, agent]
        agent.enroll(central.url, central.enroll_token(store))
        agent.start()
        till.start()
        agents.append(agent)
    wait_until(lambda: all(_status(a) for a in agents), 60, "every agent's first status")

    document = tmp_path / "settings.json"
    document.write_text(json.dumps({"agent.heartbeat_interval": 2, "sync.interval": 0.5}))
    # Central may have published other documents already (the member-beacon job runs at start-up).
    version = int(central.cli("downlink", "set", "--store", "S021", "--name", "settings", str(document)))

    wait_until(
        lambda: all((_downlink_version(a) or 0) >= version for a in agents[:2]),
        60,
        "both agents of store S021 to run the new downlink version",
    )
    for agent in agents[:2]:
        log = agent.process.log.read_text()
        assert "settings from central" in log and "agent.heartbeat_interval" in log, log[-2000:]
        # Central published only what the agents apply (it refuses the rest: test_fleet_cli).
        assert "is not applied" not in log
    # The other store's agent got no settings to apply.
    assert "settings from central" not in agents[2].process.log.read_text()
    # Heartbeats carry the version to central's fleet view.
    wait_until(
        lambda: _reported_versions(central, "S021") == [version, version],
        30,
        f"heartbeats reporting downlink version {version}",
    )


def _reported_versions(central, store: str) -> list:
    with central.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT last_heartbeat FROM devices WHERE store_id = :s"), {"s": store}).scalars()
        beats = [row if isinstance(row, dict) or row is None else json.loads(row) for row in rows]
    return sorted(((b or {}).get("health") or {}).get("downlink_version") or 0 for b in beats)


def test_settings_an_agent_ignores_reach_hq_by_name_and_reason_never_by_value(central, tmp_path, cleanup):
    """A settings document central's own check would refuse (written by an older central, or by hand) and a
    setting the technician overrides on the PC: the agent applies the rest, and says which it ignores and
    why in its status and its heartbeats, which central's fleet view shows."""
    till = Till([b"receipt_no=IGN-1 total=1.00\n"], rate=10)
    agent = Agent(tmp_path, till.path, heartbeat_interval=1)
    agent.env["EDGE_SYNC_MAX_BACKOFF"] = "2"  # the technician's own value on this PC
    cleanup += [till, agent]
    agent.enroll(central.url, central.enroll_token("S031"))
    agent.start()
    till.start()
    wait_until(lambda: _status(agent), 60, "the agent's first status")

    document = {
        "sync.interval": 0.5,
        "sync.max_backoff": 5,
        "sync.tls_fingerprint": "ab" * 32,
        "sync.intervall": 5,
        "sync.batch_size": "13800138000",
    }
    with central.engine.begin() as conn:
        version = conn.execute(sa.text("SELECT COALESCE(MAX(version), 0) + 1 FROM downlink_documents")).scalar_one()
        conn.execute(
            sa.text(
                "INSERT INTO downlink_documents (store_id, name, version, body, updated_at, updated_by)"
                " VALUES ('S031', 'settings', :version, :body, CURRENT_TIMESTAMP, 'an older central')"
            ),
            {"version": version, "body": json.dumps(document)},
        )
    expected = {
        "sync.batch_size": "invalid_value",
        "sync.intervall": "unknown_setting",
        "sync.max_backoff": "set_on_pc",
        "sync.tls_fingerprint": "local_only",
    }
    wait_until(lambda: _status(agent).get("health", {}).get("settings_ignored") == expected, 60, "status.json")
    status = agent.command("status")
    assert (
        "not applied    4 of central's settings: sync.batch_size (invalid_value), sync.intervall (unknown_setting),"
        " sync.max_backoff (set_on_pc), sync.tls_fingerprint (local_only) (the agent's log says why)"
    ) in status.stdout, status.stdout
    assert status.returncode == 0, status.stdout  # the agent runs; HQ's document is what needs fixing
    assert "settings from central" in agent.process.log.read_text()  # sync.interval was applied

    def fleet_row() -> dict:
        (row,) = [d for d in json.loads(central.cli("devices", "--json"))["devices"] if d["store_id"] == "S031"]
        return row

    wait_until(lambda: fleet_row()["settings_ignored"] == expected, 30, "a heartbeat naming the ignored settings")
    table = central.cli("devices")
    assert (
        "  settings not applied: sync.batch_size (invalid_value), sync.intervall (unknown_setting),"
        " sync.max_backoff (set_on_pc), sync.tls_fingerprint (local_only)"
    ) in table, table
    # The value sent (here a phone number where a number was due) stays out of everything that leaves the PC.
    assert "13800138000" not in json.dumps(fleet_row())
    assert "13800138000" not in (agent.data_dir / "status.json").read_text()
    assert "13800138000" not in agent.command("status", "--json").stdout
