"""The fleet pages once a store PC goes quiet: its last heartbeat reads as the last one, not as its state now.

Also the health figures as people read them (disk free in GB), what the empty fleet page asks of whom, and a
store manager's note in the sales page's words.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from tests.central.support import post_form
from tests.central.test_console_operations import _as, _row  # a logged-in user of a role; a table row's text

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


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


def _section(html: str, table_id: str) -> str:
    """The <section> holding the table ``table_id``, tags and all."""
    start = html.rindex("<section", 0, html.index(f'id="{table_id}"'))
    return html[start : html.index("</section>", start)]


@SQLITE
def test_an_offline_pcs_page_shows_its_last_heartbeat_as_of_then_not_as_now(app, client, agent, clock):
    agent.send(client, [agent.event("agent.heartbeat", HEARTBEAT)])
    admin = _as(app, "admin")
    page = f"/console/fleet/devices/{agent.device_id}"
    live = admin.get(page).get_data(as_text=True)
    assert "设备现已" not in live and 'class="stale"' not in live
    assert "pos: 读取中" in _row(admin.get("/console/fleet").get_data(as_text=True), "data-device", agent.device_id)

    heard = clock()
    clock.advance(seconds=app.config["CENTRAL"].fleet_offline_after + 1)
    quiet = admin.get(page).get_data(as_text=True)
    local = heard + timedelta(hours=8)  # the test chain's local time is UTC+08:00
    as_of = f"最后一次心跳时（{local:%Y-%m-%d %H:%M:%S} UTC+08:00）的状态，设备现已离线。"
    for table in ("sources", "health"):
        section = _section(quiet, table)
        assert section.startswith('<section class="stale">'), section[:80]
        assert as_of in re.sub(r"<[^>]+>", "", section), section
    assert _row(quiet, "data-key", "sync_ok") == "同步正常 是"  # the value it reported, marked as of then

    row = _row(admin.get("/console/fleet").get_data(as_text=True), "data-device", agent.device_id)
    assert "离线" in row and "最后上报： pos: 读取中 , till/scanner: 正常" in row, row

    admin.set_cookie("cdp-lang", "en")
    english = _text(_section(admin.get(page).get_data(as_text=True), "health"))
    assert "As of the last heartbeat (" in english and "UTC+08:00 ); the device is now offline." in english


@SQLITE
def test_a_retired_pcs_last_heartbeat_reads_as_of_then(app, client, agent):
    agent.send(client, [agent.event("agent.heartbeat", HEARTBEAT)])
    admin = _as(app, "admin")
    page = f"/console/fleet/devices/{agent.device_id}"
    assert post_form(admin, f"{page}/retire", {"confirm": "yes"}, page).status_code == 303
    html = admin.get(page).get_data(as_text=True)
    assert "设备现已退役。" in _text(_section(html, "health"))


@SQLITE
def test_disk_free_reads_in_gb_as_the_agents_status_does_with_the_bytes_in_its_title(app, client, agent):
    agent.send(client, [agent.event("agent.heartbeat", HEARTBEAT)])
    html = _as(app, "admin").get(f"/console/fleet/devices/{agent.device_id}").get_data(as_text=True)
    assert _row(html, "data-key", "disk_free_bytes") == "磁盘剩余 81.1 GB"
    assert '<span title="81116291072 字节">81.1 GB</span>' in html


@SQLITE
def test_the_empty_fleet_asks_a_store_manager_for_no_command(app):
    manager = _text(_as(app, "store_manager", stores=("S002",)).get("/console/fleet").get_data(as_text=True))
    assert "enroll-token" not in manager and "S001" not in manager
    assert "门店电脑由总部 IT 或技术员登记。" in manager
    technician = _text(_as(app, "technician").get("/console/fleet").get_data(as_text=True))
    assert "central-server enroll-token --store 门店编号。" in technician and "S001" not in technician


@SQLITE
def test_a_store_manager_reads_the_sales_pages_words_for_their_stores(app):
    manager = _text(_as(app, "store_manager", stores=("S002",)).get("/console/fleet").get_data(as_text=True))
    assert "只显示你的门店：S002。" in manager and "负责的门店" not in manager
