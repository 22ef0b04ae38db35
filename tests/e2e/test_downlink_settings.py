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
