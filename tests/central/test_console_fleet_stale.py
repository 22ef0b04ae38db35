"""The fleet pages' health figures as people read them: disk free in GB, as ``edge-agent status`` shows it."""

from __future__ import annotations

import re

import pytest

from tests.central.support import create_user, login

SQLITE = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # no database behaviour involved
# A store PC's heartbeat as the agent sends it: the POS port being read, the till's scanner up, all well.
HEARTBEAT = {
    "agent_version": "0.4.2",
    "outbox": {"pending": 0},
    "sources": {"pos": {"state": "reading"}, "till": {"scanner": {"state": "up"}, "scans": {}}},
    "health": {
        "state": "ok",
        "queue_depth": 0,
        "writer_ok": True,
        "sync_ok": True,
        "last_sync_age_s": 11.3,
        "disk_free_bytes": 81_116_291_072,
    },
}


def _as(app, role, stores=()):
    create_user(app, role, role=role, stores=stores)
    client = app.test_client()
    assert login(client, role).status_code == 302
    return client


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


def _row(html: str, attribute: str, value: str) -> str:
    match = re.search(rf'<tr[^>]*{attribute}="{re.escape(value)}"[^>]*>(.*?)</tr>', html, re.S)
    assert match, (attribute, value)
    return _text(match.group(1))


@SQLITE
def test_disk_free_reads_in_gb_as_the_agents_status_does_with_the_bytes_in_its_title(app, client, agent):
    agent.send(client, [agent.event("agent.heartbeat", HEARTBEAT)])
    html = _as(app, "admin").get(f"/console/fleet/devices/{agent.device_id}").get_data(as_text=True)
    assert _row(html, "data-key", "disk_free_bytes") == "磁盘剩余 81.1 GB"
    assert '<span title="81116291072 字节">81.1 GB</span>' in html
