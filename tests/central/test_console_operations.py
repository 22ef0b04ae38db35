"""The operations pages: fleet (states, tokens, devices, source keys), campaign results, imports and jobs."""

from __future__ import annotations

import inspect
import re
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from central import db as central_db
from central.accounts.roles import ROLES
from central.console import fleet as console_fleet
from central.console.navigation import JOB_LABELS
from central.fleet import devices, enrollment, health
from central.fleet.models import Device, EnrollToken
from central.identity.models import Identifier
from central.identity.resolve import resolve
from central.jobs import last_runs
from central.models import AuditLog
from central.scheduler import JOBS, run_now
from central.sources.import_file import ImportOptions, plan_import
from central.sources.import_runs import start_run
from central.sources.member_import import run_import
from central.sources.models import ImportRun, SourceKey
from tests.central.operations_support import (
    coupon_campaign,
    declare_trigger,
    import_members,
    redeem,
    tag_tier,
)
from tests.central.sources_support import default_registry, new_key, post_events, source_event
from tests.central.support import Agent, create_user, csrf_from, login, post_form, table_rows, token_for
from tests.central.test_console_roles import STATE_CHANGING

SQLITE = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # no database behaviour involved
CONFIRMED = {"confirm": "yes"}  # what the page asking to confirm an action that cannot be undone sends
HEARTBEAT = {
    "agent_version": "0.4.2",
    "outbox": {"pending": 7},
    "sources": {"pos": {"state": "connected", "events": 12}, "till": {"scanner1": {"state": "open"}, "scans": {}}},
    "health": {
        "state": "ok",
        "queue_depth": 7,
        "oldest_unsent_age_s": 42.4,
        "clock_offset_s": -1.5,
        "downlink_version": 3,
    },
}


def _as(app, role, stores=()):
    create_user(app, role, role=role, stores=stores)
    client = app.test_client()
    assert login(client, role).status_code == 302
    return client


def _post(client, path, form=None, page="/console/fleet"):
    return post_form(client, path, form, page)


def _row(html, attribute, value):
    match = re.search(rf'<tr[^>]*{attribute}="{re.escape(str(value))}"[^>]*>(.*?)</tr>', html, re.S)
    assert match, (attribute, value)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", match.group(1))).strip()


def test_fleet_states_and_heartbeat_readings_of_a_real_agent(app, client, agent, clock):
    agent.send(client, [agent.event("agent.heartbeat", HEARTBEAT)])
    admin = _as(app, "admin")
    row = _row(admin.get("/console/fleet").get_data(as_text=True), "data-device", agent.device_id)
    assert "正常" in row and "0.4.2" in row and "S001" in row
    assert " 7 " in f" {row} " and "42 s" in row and "-1.5 s" in row
    assert "pos: connected" in row and "till/scanner1: open" in row and row.endswith("3")
    detail = admin.get(f"/console/fleet/devices/{agent.device_id}").get_data(as_text=True)
    assert "最早未发送（秒）" in detail and "till/scanner1" in detail

    degraded = {**HEARTBEAT, "health": {**HEARTBEAT["health"], "state": "degraded", "problem": "disk"}}
    agent.send(client, [agent.event("agent.heartbeat", degraded)])
    assert "降级" in _row(admin.get("/console/fleet").get_data(as_text=True), "data-device", agent.device_id)
    clock.advance(seconds=app.config["CENTRAL"].fleet_offline_after + 1)
    assert "离线" in _row(admin.get("/console/fleet").get_data(as_text=True), "data-device", agent.device_id)


def test_the_agents_source_states_are_named_in_the_pages_language(app, client, agent):
    sources = {"pos": {"state": "reading"}, "ble": {"state": "scanning (active)"}, "wifi": {"state": "interface_lost"}}
    agent.send(client, [agent.event("agent.heartbeat", {**HEARTBEAT, "sources": sources})])
    admin = _as(app, "admin")
    row = _row(admin.get("/console/fleet").get_data(as_text=True), "data-device", agent.device_id)
    assert "pos: 读取中" in row and "ble: 扫描中 (active)" in row and "wifi: 网卡已断开" in row, row
    admin.set_cookie("cdp-lang", "en")
    detail = admin.get(f"/console/fleet/devices/{agent.device_id}").get_data(as_text=True)
    assert "<td>ble</td><td>scanning (active)</td>" in detail and "<td>wifi</td><td>interface lost</td>" in detail
    english = admin.get("/console/fleet").get_data(as_text=True)
    headers = re.findall(r"<th[^>]*>([^<]+)</th>", english)
    assert headers[0] == "Device" and headers.count("Device") == 2 and "Fleet" not in headers, headers


def test_the_health_snapshots_times_read_in_local_time_as_on_every_page(app, client, agent):
    synced = {**HEARTBEAT, "health": {**HEARTBEAT["health"], "last_sync_at": "2026-11-23T01:59:30.250Z"}}
    agent.send(client, [agent.event("agent.heartbeat", synced)])  # the agent writes times as the wire does
    detail = _as(app, "admin").get(f"/console/fleet/devices/{agent.device_id}").get_data(as_text=True)
    snapshot = detail.split('id="health"', 1)[1].split("</table>", 1)[0]
    assert '<time datetime="2026-11-23T01:59:30Z">2026-11-23 09:59:30 UTC+08:00</time>' in snapshot, snapshot
    assert "01:59:30.250Z" not in detail


def test_central_settings_a_device_ignores_read_in_the_pages_language(app, client, agent):
    ignored = {"sync.tls_fingerprint": "local_only", "sync.batch_size": "invalid_value"}
    health = {**HEARTBEAT["health"], "settings_ignored": ignored}
    agent.send(client, [agent.event("agent.heartbeat", {**HEARTBEAT, "health": health})])
    admin = _as(app, "admin")
    detail = admin.get(f"/console/fleet/devices/{agent.device_id}").get_data(as_text=True)
    row = _row(detail, "data-key", "settings_ignored")
    assert row.startswith("未生效的总部设置 ") and "sync.batch_size（值无效）" in row, row
    assert "sync.tls_fingerprint（只能在门店电脑上设置）" in row and "local_only" not in row
    admin.set_cookie("cdp-lang", "en")
    english = admin.get(f"/console/fleet/devices/{agent.device_id}").get_data(as_text=True)
    row = _row(english, "data-key", "settings_ignored")
    assert row.startswith("Central settings not applied ") and "sync.batch_size (invalid value)" in row, row


def test_the_health_snapshot_reads_in_the_pages_language(app, client, agent):
    snapshot = {**HEARTBEAT["health"], "sync_ok": True, "writer_ok": False, "disk_free_bytes": 52_428_800}
    agent.send(client, [agent.event("agent.heartbeat", {**HEARTBEAT, "health": snapshot})])
    admin = _as(app, "admin")
    page = f"/console/fleet/devices/{agent.device_id}"
    chinese = {"queue_depth": "待发送 7", "sync_ok": "同步正常 是", "writer_ok": "写入正常 否", "state": "状态 正常"}
    english = {
        "queue_depth": "Queued 7",
        "sync_ok": "Sync OK Yes",
        "writer_ok": "Writer OK No",
        "state": "State Healthy",
    }
    for lang, rows in (("zh", chinese), ("en", english)):
        admin.set_cookie("cdp-lang", lang)
        table = admin.get(page).get_data(as_text=True).split('id="health"', 1)[1].split("</table>", 1)[0]
        for key, shown in rows.items():
            assert _row(table, "data-key", key) == shown, (lang, key, _row(table, "data-key", key))
        text = re.sub(r"<[^>]+>", " ", table)
        assert "_" not in text and "True" not in text and "ok" not in text.split(), (lang, text)
        assert _row(table, "data-key", "disk_free_bytes").endswith("52.4 MB")  # bytes in its title


def test_the_fleet_is_paged_by_keyset_and_a_store_manager_sees_only_their_stores(app, client, agent):
    others = [Agent(store_id=store) for store in ("S002", "S002", "S003")]
    for other in others:
        assert other.enroll(client, token_for(app, other.store_id)).status_code == 201
    admin = _as(app, "admin")
    with central_db.session_factory(app)() as db:
        first = health.page_devices(db, app.config["CLOCK"](), 300.0, limit=3)
        rest = health.page_devices(db, app.config["CLOCK"](), 300.0, after=first.next_after, limit=3)
    assert len(first.devices) == 3 and first.next_after is not None
    listed = [d.device_id for d in first.devices + rest.devices]
    assert sorted(listed) == sorted([agent.device_id] + [o.device_id for o in others]) and rest.next_after is None
    page = admin.get("/console/fleet").get_data(as_text=True)
    assert 'rel="next"' not in page and len(re.findall(r"data-device=", page)) == 4  # one page of 50
    manager = _as(app, "store_manager", stores=("S002",))
    html = manager.get("/console/fleet").get_data(as_text=True)
    assert others[0].device_id in html and agent.device_id not in html and others[2].device_id not in html
    assert manager.get(f"/console/fleet/devices/{agent.device_id}").status_code == 404
    assert manager.get(f"/console/fleet/devices/{others[1].device_id}").status_code == 200
    assert _post(manager, f"/console/fleet/devices/{others[1].device_id}/retire").status_code == 403
    assert _post(manager, "/console/fleet/tokens", {"store": "S002"}).status_code == 403


@SQLITE
def test_a_technician_creates_a_token_shown_once_that_enrolls_and_revokes_another(app, client):
    technician = _as(app, "technician")
    shown = _post(technician, "/console/fleet/tokens", {"store": "S009", "ttl_hours": "2"})
    assert shown.status_code == 200
    token = re.search(r"--token (cdpet_[\w-]+)", shown.get_data(as_text=True)).group(1)
    listing = technician.get("/console/fleet").get_data(as_text=True)
    assert token not in listing and "S009" in listing
    second = _post(technician, "/console/fleet/tokens", {"store": "S009"})
    other = re.search(r"--token (cdpet_[\w-]+)", second.get_data(as_text=True)).group(1)
    from shared.crypto import token_digest

    other_id = token_digest(other)[:12]
    assert "未使用" in _row(technician.get("/console/fleet").get_data(as_text=True), "data-token", other_id)
    assert _post(technician, f"/console/fleet/tokens/{other_id}/revoke").status_code == 303
    assert "已吊销" in _row(technician.get("/console/fleet").get_data(as_text=True), "data-token", other_id)
    assert Agent(store_id="S009").enroll(client, token).status_code == 201
    assert Agent(store_id="S009").enroll(client, other).status_code == 401
    used = _post(technician, f"/console/fleet/tokens/{token_digest(token)[:12]}/revoke")
    problem = used.get_data(as_text=True).split('id="problem">', 1)[1].split("</p>", 1)[0]
    device = table_rows(app, Device)[0].device_id
    assert used.status_code == 409 and f"这个令牌已被设备 {device} 用于登记，不能再吊销" in problem, problem
    assert "already used" not in problem and "原因代码 <code>token_used</code>" in problem  # the code, for support
    assert _post(technician, "/console/fleet/tokens", {"store": "bad store!"}).status_code == 400
    actions = [(a.actor, a.action) for a in table_rows(app, AuditLog)]
    assert (
        actions.count(("technician", "enroll_token.create")) == 2 and ("technician", "enroll_token.revoke") in actions
    )


@SQLITE
def test_retire_and_revoke_a_device_from_its_page(app, client, agent):
    technician = _as(app, "technician")
    page = f"/console/fleet/devices/{agent.device_id}"
    assert _post(technician, f"{page}/revoke", {"reason": "stolen", **CONFIRMED}, page).status_code == 403
    assert _post(technician, f"{page}/retire", {"reason": "replaced", **CONFIRMED}, page).status_code == 303
    assert "已退役" in technician.get(page).get_data(as_text=True)
    assert agent.post(client, agent.body([agent.receipt("R9")])).status_code == 401
    admin = _as(app, "admin")
    assert _post(admin, f"{page}/revoke", {"reason": "stolen", **CONFIRMED}, page).status_code == 303
    assert "已吊销" in _row(admin.get("/console/fleet").get_data(as_text=True), "data-device", agent.device_id)
    again = _post(admin, f"{page}/retire", CONFIRMED, page)
    problem = again.get_data(as_text=True).split('id="problem">', 1)[1].split("</p>", 1)[0]
    assert again.status_code == 409 and "这台设备已吊销，不能改为已退役。" in problem, problem
    assert "cannot become retired" not in problem and "原因代码 <code>bad_transition</code>" in problem
    assert not re.search("[A-Za-z]", re.sub(r"<[^>]+>", "", problem.split('<span class="reason">', 1)[0]))
    admin.set_cookie("cdp-lang", "en")
    again = _post(admin, f"{page}/retire", CONFIRMED, page)
    problem = again.get_data(as_text=True).split('id="problem">', 1)[1].split("</p>", 1)[0]
    assert "This device is in state Revoked" in problem and "cannot become retired" in problem, problem
    assert "Reason code <code>bad_transition</code>" in problem
    admin.set_cookie("cdp-lang", "zh")
    actions = [(a.actor, a.action, a.subject) for a in table_rows(app, AuditLog)]
    assert ("technician", "device.retire", agent.device_id) in actions
    assert ("admin", "device.revoke", agent.device_id) in actions


@SQLITE
def test_retire_and_revoke_change_nothing_until_confirmed(app, client, agent):
    page = f"/console/fleet/devices/{agent.device_id}"
    admin = _as(app, "admin")
    for action, done in (("retire", "已退役"), ("revoke", "已吊销")):
        asked = _post(admin, f"{page}/{action}", {"reason": "replaced by PC-2"}, page)
        html = asked.get_data(as_text=True)
        assert asked.status_code == 200 and "这个操作无法撤销。" in html and agent.device_id in html, action
        assert [d.status for d in table_rows(app, Device)] == ["active" if action == "retire" else "retired"]
        form = html.split('id="confirm"', 1)[1].split("</form>", 1)[0]
        assert f'action="{page}/{action}"' in form
        fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', form))
        assert fields["reason"] == "replaced by PC-2" and fields["confirm"] == "yes"
        assert f'href="{page}"' in html  # cancel: back to the device
        assert admin.post(f"{page}/{action}", data=fields).status_code == 303
        assert done in admin.get(page).get_data(as_text=True)
    admin.set_cookie("cdp-lang", "en")
    english = _post(admin, f"{page}/revoke", {}, page).get_data(as_text=True)
    assert "This cannot be undone." in english
    audited = table_rows(app, AuditLog)
    changes = [(a.action, a.detail["reason"]) for a in audited if a.action in ("device.retire", "device.revoke")]
    assert changes == [("device.retire", "replaced by PC-2"), ("device.revoke", "replaced by PC-2")]


@SQLITE
def test_source_keys_are_created_once_shown_and_revoked_by_an_admin_only(app, client):
    admin = _as(app, "admin")
    technician = _as(app, "technician")
    keys = "/console/fleet/source-keys"
    assert _post(technician, keys, {"source": "app"}, keys).status_code == 403
    shown = _post(admin, keys, {"source": "miniprogram"}, keys)
    key = re.search(r'<pre id="secret">(cdpsk_[\w-]+)</pre>', shown.get_data(as_text=True)).group(1)
    events = [source_event("k1", "member.signup", identifiers={"member_id": "M77"})]
    assert post_events(client, key, events).status_code == 200
    listing = technician.get(keys).get_data(as_text=True)
    assert key not in listing and key[:12] in listing and "miniprogram" in listing
    key_id = int(re.search(r'data-key="(\d+)"', listing).group(1))
    assert _post(technician, f"{keys}/{key_id}/revoke", {}, keys).status_code == 403
    assert _post(admin, f"{keys}/{key_id}/revoke", {}, keys).status_code == 303
    assert "已吊销" in _row(admin.get(keys).get_data(as_text=True), "data-key", key_id)
    assert post_events(client, key, [source_event("k2", "member.login")]).status_code == 401
    assert _post(admin, keys, {"source": "Bad Name"}, keys).status_code == 400


def _customer_of(app, member_id):
    with central_db.session_factory(app)() as db:
        return db.scalar(
            select(Identifier.customer_id).where(Identifier.kind == "member_id", Identifier.value == member_id)
        )


def test_campaign_figures_by_tier_and_store_match_a_hand_count(app, client, agent):
    members = ["M1", "M2", "M3", "M4"]
    signups = [source_event(f"s{m}", "member.signup", identifiers={"member_id": m}) for m in members]
    assert post_events(client, new_key(app), signups).status_code == 200
    for member, tier in (("M1", "loyal"), ("M2", "loyal"), ("M3", "dormant")):  # M4 has no tier yet
        tag_tier(app, _customer_of(app, member), tier)
    campaign = coupon_campaign(app, members, anonymous=2)
    codes = campaign.member_codes
    other = Agent(store_id="S002")
    assert other.enroll(client, token_for(app, "S002")).status_code == 201
    agent.send(client, [redeem(agent, codes[m], campaign.id) for m in ("M1", "M2")])
    agent.send(client, [redeem(agent, campaign.anonymous[0], campaign.id)])
    other.send(client, [redeem(other, codes["M3"], campaign.id), redeem(other, codes["M1"], campaign.id)])
    trigger = declare_trigger(app, acted=3, control=1)

    finance = _as(app, "finance")
    html = finance.get("/console/campaigns").get_data(as_text=True)
    # 6 issued (4 members, 2 anonymous); 4 redeemed; M1 again at S002 refused: 1 conflict; 4/6 = 66.7 %
    cells = _row(html, "data-campaign", "double-11")
    assert cells.endswith("6 4 66.7 % 1 1"), cells
    assert _row(html, "data-trigger", "birthday-coupon").startswith("birthday-coupon 生日 加入导出名单 是 4 1 25.0 %")
    finance.set_cookie("cdp-lang", "en")
    english = _row(finance.get("/console/campaigns").get_data(as_text=True), "data-trigger", "birthday-coupon")
    assert english.startswith("birthday-coupon Birthday Add to the export list"), english
    finance.set_cookie("cdp-lang", "zh")
    detail = finance.get(f"/console/campaigns/coupons/{campaign.id}").get_data(as_text=True)
    # By tier reads every code: the page shows the reports job's snapshot, none before its first run.
    assert 'data-tier="' not in detail and "还没有计算过" in detail and 'id="refresh-tiers"' not in detail
    clock = app.config["CLOCK"]
    assert run_now(central_db.session_factory(app), app.config["CENTRAL"], "reports", clock) == "ok"
    detail = finance.get(f"/console/campaigns/coupons/{campaign.id}").get_data(as_text=True)
    beijing = clock() + timedelta(hours=8)  # shown in the chain's local time (UTC+8 in the tests)
    assert (
        f'按 <time datetime="{clock():%Y-%m-%dT%H:%M:%SZ}">{beijing:%Y-%m-%d %H:%M:%S} UTC+08:00</time> 的会员层级计算'
        in detail
    )
    assert _row(detail, "data-tier", "loyal") == "忠诚 2 2 100.0 % 1"
    assert _row(detail, "data-tier", "dormant") == "沉睡 1 1 100.0 % 0"
    assert _row(detail, "data-tier", "untiered") == "未分层 1 0 0.0 % 0"
    assert _row(detail, "data-tier", "anonymous") == "未领取（匿名券） 2 1 50.0 % 0"
    assert _row(detail, "data-store", "S001") == "S001 3 50.0 % 0"
    assert _row(detail, "data-store", "S002") == "S002 1 16.7 % 1"
    page = finance.get(f"/console/campaigns/triggers/{trigger}").get_data(as_text=True)
    # The effect report reads every occasion's window: a snapshot too, refreshed by the same job.
    assert 'id="effect"' in page and "执行组" in page and "对照组" in page and 'id="effect-at"' in page
    assert 'id="refresh-effect"' not in page  # finance reads, and refreshes nothing
    finance.set_cookie("cdp-lang", "en")
    english_page = finance.get(f"/console/campaigns/triggers/{trigger}").get_data(as_text=True)
    assert "<th>Coupons issued</th>" in english_page.split('id="effect"', 1)[1]  # a count, not the action
    finance.set_cookie("cdp-lang", "zh")
    for role in ("technician", "customer_service", "store_manager"):
        assert _as(app, role).get(f"/console/campaigns/coupons/{campaign.id}").status_code == 403


@SQLITE
def test_imports_show_their_runs_progress_and_report_and_jobs_their_last_run(app, tmp_path):
    import_id = import_members(app, tmp_path)
    admin = _as(app, "admin")
    html = admin.get("/console/imports").get_data(as_text=True)
    row = _row(html, "data-import", import_id)
    assert "legacy.csv" in row and "ops-test" in row and "4 / 4 (100 %)" in row and "已完成" in row
    detail = admin.get(f"/console/imports/{import_id}").get_data(as_text=True)
    assert _row(detail, "data-outcome", "rows") == "行数 4"
    assert _row(detail, "data-outcome", "rejected") == "被拒绝 1"
    assert _row(detail, "data-outcome", "new") == "新客户 2" and _row(detail, "data-outcome", "merged") == "合并 1"
    assert "<code>no_identifier</code>" in detail
    assert _row(detail, "data-reason", "no_identifier").startswith("没有可用的标识")  # in words, the code beside
    report = admin.get(f"/api/v1/imports/{import_id}/report.csv")  # the page links to it
    assert f'href="/api/v1/imports/{import_id}/report.csv"' in detail and report.status_code == 200
    assert report.get_data(as_text=True).splitlines()[3].endswith(",rejected,no_identifier")
    (run,) = table_rows(app, ImportRun)
    assert (run.status, run.rows_done, run.rows_total, run.rows_skipped) == ("completed", 4, 4, 0)
    assert "已完成" in _row(detail, "data-run", run.id)

    with central_db.session_factory(app)() as db:  # a run killed part-way, then a new one
        first = start_run(db, import_id, total=10, skipped=4, operator="cli", now=app.config["CLOCK"]())
        start_run(db, import_id, total=10, skipped=6, operator="cli", now=app.config["CLOCK"]())
        db.commit()
    detail = admin.get(f"/console/imports/{import_id}").get_data(as_text=True)
    assert "已中断" in _row(detail, "data-run", first) and "6 / 10" in detail

    config = app.config["CENTRAL"]
    assert run_now(central_db.session_factory(app), config, "webhooks", app.config["CLOCK"]) == "ok"
    jobs = admin.get("/console/imports").get_data(as_text=True)
    webhooks = _row(jobs, "data-job", "webhooks")
    next_at = app.config["CLOCK"]() + timedelta(seconds=config.scheduler_webhooks_interval)
    assert "成功" in webhooks and (next_at + timedelta(hours=8)).strftime("%Y-%m-%d %H:%M:%S UTC+08:00") in webhooks
    assert "尚未运行" in _row(jobs, "data-job", "triggers")
    assert set(JOB_LABELS) == set(JOBS)  # every job is named in Chinese, and in English below
    assert "投递到期的 Webhook 回调" in webhooks and "deliver due webhook calls" not in webhooks
    admin.set_cookie("cdp-lang", "en")
    english = admin.get("/console/imports").get_data(as_text=True)
    assert "deliver due webhook calls" in _row(english, "data-job", "webhooks")
    for role in ("technician", "marketing", "finance"):
        assert _as(app, role).get(f"/console/imports/{import_id}").status_code == 403


@SQLITE
def test_every_jobs_counts_read_in_the_pages_language(app, client, agent):
    declare_trigger(app)
    coupon_campaign(app, ["M1"])
    sessions, config = central_db.session_factory(app), app.config["CENTRAL"]
    for name in JOBS:
        assert run_now(sessions, config, name, app.config["CLOCK"]) == "ok", name
    admin = _as(app, "admin")
    with sessions() as db:
        counts = {name: runs[0].counts for name, runs in last_runs(db, list(JOBS)).items()}
    for lang, words in (("zh", {"name_pinyin": "生成拼音的姓名 0", "segments": "进入 0"}), ("en", {})):
        admin.set_cookie("cdp-lang", lang)
        page = admin.get("/console/imports").get_data(as_text=True)
        for name in JOBS:
            cell = re.search(r'<td class="counts">(.*?)</td>', page.split(f'data-job="{name}"', 1)[1], re.S).group(1)
            assert counts[name], name  # every job reports what it did
            shown = cell.strip().split(", ")
            for key, value in counts[name].items():
                assert f"{key} {value}" not in shown, (lang, name, cell)  # a word for each count, not its key
            assert words.get(name, "") in cell, (name, cell)
    assert "Names spelled 0" in page and "Entered 0, Left 0" in page


@SQLITE
def test_an_import_that_fails_part_way_shows_as_failed_with_the_rows_it_committed(app, tmp_path):
    path = tmp_path / "broken.csv"
    path.write_text("name,phone\n王芳,13800139001\n李雷,13800139002\n韩梅梅,13800139003\n", encoding="utf-8")
    calls = []

    def failing_on_the_second_chunk(db, facts, now, **options):
        calls.append(len(facts))
        if len(calls) > 1:
            raise ValueError("the identity step gave up")
        return resolve(db, facts, now, **options)

    registry = default_registry()
    options = ImportOptions(chunk_size=2)
    plan = plan_import(path, options, registry)
    with central_db.session_factory(app)() as db, pytest.raises(ValueError, match="gave up"):
        run_import(
            db,
            plan,
            options,
            registry=registry,
            clock=app.config["CLOCK"],
            today=date(2026, 11, 23),
            resolver=failing_on_the_second_chunk,
        )
    (run,) = table_rows(app, ImportRun)
    assert (run.status, run.rows_done, run.rows_total, run.error) == (
        "failed",
        2,
        3,
        "ValueError: the identity step gave up",
    )
    html = _as(app, "admin").get("/console/imports").get_data(as_text=True)
    assert "2 / 3 (67 %)" in _row(html, "data-import", run.import_id) and "失败" in html


# Who may send each state-changing operations route; every other role gets 403 with a valid token.
POST_ROLES = {
    "/console/fleet/tokens": {"admin", "technician"},
    "/console/fleet/tokens/{token_id}/revoke": {"admin", "technician"},
    "/console/fleet/devices/{device_id}/retire": {"admin", "technician"},
    "/console/fleet/devices/{device_id}/revoke": {"admin"},
    "/console/fleet/source-keys": {"admin"},
    "/console/fleet/source-keys/{key_id}/revoke": {"admin"},
}


@SQLITE
def test_every_operations_action_refuses_the_roles_it_does_not_name(app, agent):
    assert set(POST_ROLES) <= set(STATE_CHANGING)
    ids = {"token_id": "0123456789ab", "device_id": agent.device_id, "key_id": 1}
    for role in ROLES:
        client = _as(app, role, stores=("S001",) if role == "store_manager" else ())
        token = csrf_from(client.get("/console/").get_data(as_text=True))
        for route, allowed in POST_ROLES.items():
            if role not in allowed:
                response = client.post(route.format(**ids), data={"csrf_token": token, "store": "S001"})
                assert response.status_code == 403, (role, route)
    assert [d.status for d in table_rows(app, Device)] == ["active"]
    assert len(table_rows(app, EnrollToken)) == 1 and table_rows(app, SourceKey) == []  # the fixture's token only


def test_every_reason_a_device_or_token_change_is_refused_for_has_words_in_the_console():
    reasons = set()
    for module in (devices, enrollment):
        source = inspect.getsource(module)
        reasons |= set(re.findall(r'(?:DeviceError|TokenError)\(\s*(?:f?"(?:[^"\\]|\\.)*"\s*)+,\s*"([a-z_]+)"', source))
    assert {"bad_transition", "token_used", "unknown_token"} <= reasons
    assert reasons - set(console_fleet.REFUSALS) == set()
