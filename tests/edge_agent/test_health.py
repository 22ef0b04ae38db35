"""Health means progress: the monitor over a real outbox, writer and sync job, with injected clocks."""

from __future__ import annotations

import json
import logging
import socket
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from edge_agent.health import WRITER_STALL, HealthMonitor
from edge_agent.notify import SystemdNotifier
from edge_agent.outbox import Capture
from edge_agent.status import EXIT_DEGRADED, EXIT_NOT_RUNNING, EXIT_OK, read_status, render
from edge_agent.sync import SyncJob
from edge_agent.writer import OutboxWriter
from shared.crypto import RequestSigner, new_signing_key
from tests.edge_agent.test_sync import StandInCentral


class Clocks:
    def __init__(self):
        self.wall = 1_800_000_000.0
        self.mono = 1000.0

    def advance(self, seconds):
        self.wall += seconds
        self.mono += seconds


@pytest.fixture
def systemd(tmp_path):
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    yield SystemdNotifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "20000000"}), sock
    sock.close()


def received(sock):
    out = []
    while True:
        try:
            out.append(sock.recv(4096).decode())
        except BlockingIOError:
            return out


@pytest.fixture
def parts(tmp_path, outbox, systemd):
    clocks = Clocks()
    private, public = new_signing_key()
    central = StandInCentral(public)
    sync = SyncJob(
        outbox,
        central,
        RequestSigner("dev_test", private),
        clock=lambda: clocks.wall,
        monotonic=lambda: clocks.mono,
        rng=lambda: 1.0,
    )
    writer = OutboxWriter(outbox, commit_interval=0.0)  # never started: these tests append to the outbox directly
    source_state = {"pos": "reading"}
    monitor = HealthMonitor(
        outbox=outbox,
        writer=writer,
        sync=sync,
        sources={"pos": lambda: source_state["pos"]},
        status_path=tmp_path / "status.json",
        interval=10,
        stall_seconds=15 * 60,
        summary_interval=60,
        sync_stall_seconds=120,
        notifier=systemd[0],
        clock=lambda: clocks.wall,
        monotonic=lambda: clocks.mono,
    )
    return clocks, central, sync, writer, monitor, systemd[1], source_state


def receipts(count, prefix="R"):
    return [
        Capture.of("pos.receipt", {"receipt_no": f"{prefix}{n}", "total": "1.00"}, "2026-11-23T02:00:00Z")
        for n in range(count)
    ]


def test_the_snapshot_is_flat_apart_from_two_maps_and_holds_what_hq_asked_for(parts, outbox):
    monitor = parts[4]
    outbox.append(receipts(5))
    health = monitor.snapshot()
    for key, value in health.items():
        if key == "sources":
            assert value == {"pos": "reading"}
        elif key == "settings_ignored":  # central's settings not applied: {name: reason code}
            assert value == {}
        else:
            assert value is None or isinstance(value, int | float | str | bool), key
    assert health["queue_depth"] == 5
    assert health["oldest_unsent_age_s"] is not None
    assert health["downlink_version"] is None and health["last_sync_at"] is None
    assert health["dead_lettered"] == 0 and health["quarantined"] == 0
    assert health["disk_free_bytes"] > 0
    assert health["state"] == "ok"
    json.dumps(health)


def test_a_backlog_with_no_delivery_for_the_stall_time_is_degraded_until_delivery_resumes(parts, outbox, caplog):
    clocks, central, sync, _writer, monitor, _, _ = parts
    outbox.append(receipts(30))
    central.down = True
    sync.run()
    clocks.advance(14 * 60)
    sync.run()  # the job keeps running (and failing) every few seconds
    assert monitor.check()["state"] == "ok"
    clocks.advance(2 * 60)
    sync.run()  # still failing, still running
    with caplog.at_level(logging.INFO):
        health = monitor.check()
    assert health["state"] == "degraded"
    assert health["problem"].startswith("nothing delivered for 16 min 0 s with 30 events waiting")
    assert "connection refused" in health["problem"]
    assert health["sync_ok"] and health["writer_ok"]  # degraded, but nothing a restart would fix
    assert any("health: degraded" in r.message for r in caplog.records)
    central.down = False
    clocks.advance(300)
    sync.run()
    with caplog.at_level(logging.INFO):
        health = monitor.check()
    assert health["state"] == "ok" and health["queue_depth"] == 0 and health["delivered"] == 30
    assert health["last_sync_at"] is not None
    assert any("health: ok again" in r.message for r in caplog.records)


def test_ages_and_stalls_are_measured_in_elapsed_time_whatever_the_wall_clock_does(parts, outbox):
    clocks, central, sync, _writer, monitor, _, _ = parts
    outbox.append(receipts(3))
    sync.run()
    clocks.advance(30)
    clocks.wall -= 3600  # NTP steps the PC's clock back an hour
    assert monitor.snapshot()["last_sync_age_s"] == 30.0
    outbox.append(receipts(3, prefix="S"))
    central.down = True
    sync.run()
    clocks.advance(16 * 60)
    sync.run()
    health = monitor.check()
    assert health["state"] == "degraded" and health["problem"].startswith("nothing delivered for 16 min 30 s"), health


def test_an_idle_agent_with_central_down_is_not_degraded(parts):
    clocks, central, sync, _writer, monitor, _, _ = parts
    central.down = True
    for _ in range(10):
        clocks.advance(300)
        sync.run()
    assert monitor.check()["state"] == "ok"


def test_the_watchdog_is_fed_only_while_sync_and_writer_make_progress(parts, outbox, caplog):
    clocks, _central, sync, _writer, monitor, sock, _ = parts
    sync.run()
    monitor.check()
    assert any(m.startswith("WATCHDOG=1") for m in received(sock))
    clocks.advance(121)  # the sync job stopped running (a wedged scheduler)
    with caplog.at_level(logging.ERROR):
        health = monitor.check()
    assert not health["sync_ok"] and health["state"] == "degraded"
    assert health["problem"] == "the sync job has not run for 2 min 1 s"
    messages = received(sock)
    assert messages and not any("WATCHDOG=1" in m for m in messages)
    assert any("not telling systemd's watchdog" in r.message for r in caplog.records)
    sync.run()
    monitor.check()
    assert any(m.startswith("WATCHDOG=1") for m in received(sock))


def test_a_writer_that_commits_nothing_it_was_given_stops_the_watchdog(parts):
    clocks, _central, sync, writer, monitor, sock, _ = parts
    for record in receipts(3):
        writer.put(record)  # never started: nothing gets committed
    sync.run()
    assert monitor.check()["writer_ok"]
    clocks.advance(WRITER_STALL + 1)
    sync.run()
    health = monitor.check()
    assert not health["writer_ok"]
    assert health["problem"].startswith("the outbox writer has committed nothing for 1 min")
    assert health["writer_backlog"] == 3
    assert not any("WATCHDOG=1" in m for m in received(sock)[1:])


def test_status_file_is_written_and_rendered_for_the_technician(parts, outbox, tmp_path):
    clocks, central, sync, _writer, monitor, _, source_state = parts
    central.reject_kinds = {"scan.coupon"}
    outbox.append(receipts(4))
    outbox.append([Capture.of("scan.coupon", {"code": "X"}, "2026-11-23T02:00:00Z")])
    sync.run()
    source_state["pos"] = "waiting"
    monitor.check()
    doc = read_status(tmp_path / "status.json")
    assert doc["health"]["dead_lettered"] == 1 and doc["health"]["sources"] == {"pos": "waiting"}
    beijing = timezone(timedelta(hours=8))
    lines, code = render(doc, now=clocks.wall + 3, running=True, dead_letters=outbox.rejected(10), zone=beijing)
    text = "\n".join(lines)
    assert code == EXIT_OK
    assert "state          ok (status written 3 s ago)" in text
    # In the store's own time, not UTC: the technician compares it with the clock on the wall.
    synced = datetime.fromisoformat(doc["health"]["last_sync_at"]).astimezone(beijing)
    assert f"last sync      {synced:%Y-%m-%d %H:%M:%S} +08:00 (" in text and "Z (" not in text
    assert "dead letters   1 (rejected by central; listed below)" in text
    assert "scan.coupon" in text and "unknown_kind" in text
    assert "sources        pos: waiting" in text
    assert render(doc, now=clocks.wall, running=False, dead_letters=[])[1] == EXIT_NOT_RUNNING
    # Without the lock to ask, an old file means a stopped agent.
    assert render(doc, now=clocks.wall + 3600, running=None, dead_letters=[])[1] == EXIT_NOT_RUNNING
    doc["health"]["state"], doc["health"]["problem"] = "degraded", "nothing delivered for 20 min"
    lines, code = render(doc, now=clocks.wall, running=True, dead_letters=[])
    assert code == EXIT_DEGRADED and lines[0] == "state          DEGRADED: nothing delivered for 20 min"


def test_a_summary_line_is_logged_periodically_without_personal_data(parts, outbox, caplog):
    clocks, _central, sync, _writer, monitor, _, _ = parts
    outbox.append(
        [
            Capture.of(
                "pos.receipt",
                {"receipt_no": "SECRET-7", "member": {"phone": "13912345678"}, "total": "1"},
                "2026-11-23T02:00:00Z",
            )
        ]
    )
    sync.run()
    with caplog.at_level(logging.INFO):
        monitor.check()
        clocks.advance(61)
        monitor.check()
        clocks.advance(10)
        monitor.check()
    summaries = [r.message for r in caplog.records if r.message.startswith("summary:")]
    assert len(summaries) == 1
    assert "delivered 1 (+1), backlog 0" in summaries[0]
    assert "last error: none" in summaries[0]
    for record in caplog.records:
        assert "13912345678" not in record.message and "SECRET-7" not in record.message


def test_a_clock_offset_is_reported_and_logged_once(parts, outbox, caplog):
    clocks, central, sync, _writer, monitor, _, _ = parts
    central.clock = lambda: clocks.wall + 7200
    outbox.append(receipts(1))
    sync.run()
    with caplog.at_level(logging.INFO):
        first = monitor.check()
        monitor.check()
    assert first["clock_offset_s"] == pytest.approx(7200, abs=1)
    logged = [r.message for r in caplog.records if r.message.startswith("clock:")]
    assert logged == ["clock: this PC is 2 h 0 min behind central (requests are signed with central's time)"]


def test_payloads_refused_by_their_schema_are_counted_in_the_status(parts, outbox, tmp_path):
    clocks, _central, _sync, writer, monitor, _, _ = parts
    writer.put(Capture.of("pos.receipt", {"receipt_no": "R1", "total": "1,00"}, "2026-11-23T02:00:00Z", "pos", 5))
    writer.put(receipts(1)[0])
    writer.start()
    writer.stop()
    monitor.check()
    doc = read_status(tmp_path / "status.json")
    assert doc["health"]["refused_payloads"] == 1 and doc["health"]["quarantined"] == 1
    lines, _ = render(doc, now=clocks.wall, running=True, dead_letters=[])
    assert "quarantined    1 (see `edge-agent quarantine`), 1 refused by the payload schema" in lines


def test_a_resend_central_asked_for_and_what_was_no_longer_held_are_in_the_status(parts, outbox, tmp_path):
    clocks, _central, _sync, _writer, monitor, _, _ = parts
    outbox.append(receipts(5))
    outbox.settle([1, 2, 3, 4, 5], [])
    outbox.purge_delivered(-1.0)  # every delivered row purged, as after 72 h
    outbox.append(receipts(3))
    outbox.settle([6, 7, 8], [])
    assert outbox.resend(3, 9) == (3, 3)
    monitor.check()
    doc = read_status(tmp_path / "status.json")
    assert (doc["health"]["resent"], doc["health"]["resend_missing"]) == (3, 3)
    lines, _ = render(doc, now=clocks.wall, running=True, dead_letters=[])
    assert any(
        line.startswith("resent         3 delivered events sent again") and "3 of the seqs" in line for line in lines
    )


def test_a_full_data_disk_is_reported_by_status_even_from_a_stale_file(parts, outbox, tmp_path):
    from edge_agent.diskspace import DiskFacts

    clocks, _central, _sync, _writer, monitor, _, _ = parts
    monitor.check()
    doc = read_status(tmp_path / "status.json")
    full = DiskFacts(True, None, 1, 0, 0, 2 * 1024 * 1024, None)
    lines, code = render(doc, now=clocks.wall + 4, running=True, dead_letters=[], disk=full)
    assert code == EXIT_DEGRADED
    assert lines[0].startswith("state          DEGRADED: the data disk is full (0 bytes free, reserve file released)")
    assert "disk free      0 bytes" in lines
    lines, code = render(doc, now=clocks.wall + 4, running=True, dead_letters=[], disk=replace(full, full=False))
    assert code == EXIT_OK


def test_lines_lost_to_a_disk_that_never_freed_are_in_the_status(parts, outbox, tmp_path):
    clocks, _central, sync, writer, _monitor, _, _ = parts
    monitor = HealthMonitor(
        outbox=outbox,
        writer=writer,
        sync=sync,
        sources={"pos": lambda: "reading"},
        status_path=tmp_path / "status.json",
        lost=lambda: 3,
        clock=lambda: clocks.wall,
        monotonic=lambda: clocks.mono,
    )
    monitor.check(notify=False)
    doc = read_status(tmp_path / "status.json")
    assert doc["health"]["lost_lines"] == 3
    lines, _ = render(doc, now=clocks.wall, running=True, dead_letters=[])
    assert any(line.startswith("lost           3 POS lines read while the disk stayed full") for line in lines)
    assert not any(
        line.startswith("lost")
        for line in render(
            read_status(tmp_path / "status.json") | {"health": {**doc["health"], "lost_lines": 0}},
            now=clocks.wall,
            running=True,
            dead_letters=[],
        )[0]
    )


def test_a_device_central_refuses_is_degraded_at_once_and_ok_again_once_accepted(tmp_path, outbox, systemd, caplog):
    from edge_agent.transport import RefusalWatch

    clocks = Clocks()
    private, public = new_signing_key()
    central = StandInCentral(public)
    watch = RefusalWatch(central, clock=lambda: clocks.wall)
    sync = SyncJob(
        outbox,
        watch,
        RequestSigner("dev_test", private),
        clock=lambda: clocks.wall,
        monotonic=lambda: clocks.mono,
        rng=lambda: 1.0,
    )
    monitor = HealthMonitor(
        outbox=outbox,
        writer=OutboxWriter(outbox, commit_interval=0.0),
        sync=sync,
        sources={},
        status_path=tmp_path / "status.json",
        stall_seconds=15 * 60,
        notifier=systemd[0],
        refused_since=lambda: watch.refused_since,
        clock=lambda: clocks.wall,
        monotonic=lambda: clocks.mono,
    )
    outbox.append(receipts(3))
    central.status = 401  # revoked at HQ: every signed request is refused
    sync.run()
    clocks.advance(5)
    with caplog.at_level(logging.INFO):
        health = monitor.check()
    assert health["state"] == "degraded"
    assert health["problem"].startswith("central has refused this device's signature (401) for 5 s: revoked,")
    assert health["sync_ok"] and health["writer_ok"]  # a restart would not help: systemd is still fed
    assert any(m.startswith("WATCHDOG=1") for m in received(systemd[1]))
    assert any("health: degraded: central has refused" in r.message for r in caplog.records)
    lines, code = render(read_status(tmp_path / "status.json"), now=clocks.wall, running=True, dead_letters=[])
    assert code == EXIT_DEGRADED and lines[0].startswith("state          DEGRADED: central has refused")

    central.status = None  # re-activated: the next batch is accepted
    clocks.advance(300)
    sync.run()
    health = monitor.check()
    assert health["state"] == "ok" and health["delivered"] == 3
