"""Outbox policy on a real SQLite outbox: what is shed and in what order, gap reports, bounds, retention."""

from __future__ import annotations

import time
import tracemalloc

import pytest

from edge_agent.diskspace import SpaceReserve
from edge_agent.outbox import Capture, Outbox, Quarantined
from edge_agent.outbox_policy import OutboxHousekeeper, OutboxPolicy, is_sheddable
from edge_agent.privacy import PanRedactor
from edge_agent.sources.serial_pos import SerialPosSource
from edge_agent.sync import SyncJob
from edge_agent.writer import OutboxWriter
from shared.crypto import RequestSigner, new_signing_key
from shared.ids import UUID7
from tests.edge_agent.test_sync import StandInCentral

DAY = 86400.0
T0 = 1_790_000_000.0  # 2026-09-21


class Clock:
    def __init__(self, now: float = T0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def event(kind: str, n: int, pad: int = 200) -> Capture:
    return Capture.of(kind, {"n": n, "pad": "x" * pad}, "2026-09-21T00:00:00.000Z")


def mixed(n: int) -> list[Capture]:
    """Every fifth a sale, then a scan, a signup, a heartbeat and presence in between."""
    kinds = ["pos.receipt", "presence.visit", "scan.member", "presence.aggregate", "member.signup", "agent.heartbeat"]
    return [event(kinds[i % len(kinds)], i) for i in range(n)]


def kinds_left(outbox: Outbox) -> dict[str, int]:
    rows = outbox.connection().execute("SELECT kind, COUNT(*) FROM events GROUP BY kind").fetchall()
    return dict(rows)


def gaps(outbox: Outbox) -> list[dict]:
    return [p.event().payload for p in outbox.pending(100_000) if p.kind == "agent.gap"]


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def box(tmp_path, sealer, clock):
    ids = UUID7(clock_ms=lambda: int(clock() * 1000))
    outbox = Outbox(tmp_path / "outbox.db", sealer, "S001", clock=clock, id_source=ids)
    yield outbox
    outbox.close()


def test_only_presence_and_heartbeats_are_sheddable():
    assert [k for k in ("presence.visit", "presence.aggregate", "agent.heartbeat") if is_sheddable(k)] == [
        "presence.visit",
        "presence.aggregate",
        "agent.heartbeat",
    ]
    never = ["pos.receipt", "pos.sale", "scan.member", "scan.coupon", "member.signup", "consent.given", "agent.gap"]
    assert not any(is_sheddable(k) for k in never)


def test_over_the_byte_quota_delivered_then_presence_then_heartbeats_go_oldest_first(box, clock):
    box.append(mixed(600))
    box.settle([1, 2, 3, 4, 5, 6], [])  # delivered: let go first, without a gap
    conn = box.connection()
    used = conn.execute("PRAGMA page_count").fetchone()[0] * conn.execute("PRAGMA page_size").fetchone()[0]
    # Down to 90 % of 70 %: a third of the rows are presence, so some heartbeats must go too.
    keeper = OutboxHousekeeper(box, OutboxPolicy(max_bytes=int(used * 0.7), page_rows=50), clock=clock)
    shed = keeper.enforce_size()
    left = kinds_left(box)
    assert left["pos.receipt"] == 99 and left["scan.member"] == 99 and left["member.signup"] == 99  # 1 delivered
    assert "presence.visit" not in left and "presence.aggregate" not in left  # all presence went
    assert 0 < left["agent.heartbeat"] < 99  # then heartbeats, some of them
    remaining = [r[0] for r in box.connection().execute("SELECT seq FROM events WHERE kind = 'agent.heartbeat'")]
    assert remaining == sorted(remaining) and remaining[-1] == 600  # the newest were kept
    reported = gaps(box)
    assert all(g["reason"] == "quota" for g in reported)
    total: dict[str, int] = {}
    for g in reported:
        assert set(g) == {"reason", "shed", "from_seq", "to_seq"} and g["from_seq"] <= g["to_seq"]
        for kind, n in g["shed"].items():
            total[kind] = total.get(kind, 0) + n
    assert total == {"presence.visit": 99, "presence.aggregate": 99, "agent.heartbeat": 99 - left["agent.heartbeat"]}
    assert shed == sum(total.values())
    counters = box.counters()
    assert {k: v for k, v in counters.items() if k.startswith("shed:")} == {f"shed:{k}": n for k, n in total.items()}
    assert counters["delivered_purged_early"] == 6


def test_sales_scans_and_identity_are_never_shed_even_far_over_quota(box, clock):
    box.append([event(k, n) for n in range(100) for k in ("pos.receipt", "scan.coupon", "member.update")])
    keeper = OutboxHousekeeper(box, OutboxPolicy(max_bytes=1024), clock=clock)
    assert keeper.enforce_size() == 0
    assert kinds_left(box) == {"pos.receipt": 100, "scan.coupon": 100, "member.update": 100}
    assert box.counters() == {}


def test_presence_unsent_past_the_age_quota_is_shed_and_reported(box, clock):
    box.append([event("presence.visit", n) for n in range(10)] + [event("pos.receipt", 10)])
    clock.now += 3 * DAY
    box.append([event("presence.visit", 11), event("agent.heartbeat", 12)])
    clock.now += 5 * DAY  # the first batch is 8 days old, the second 5
    keeper = OutboxHousekeeper(box, OutboxPolicy(max_age_seconds=7 * DAY), clock=clock)
    assert keeper.shed_aged() == 10
    assert kinds_left(box) == {"pos.receipt": 1, "presence.visit": 1, "agent.heartbeat": 1, "agent.gap": 1}
    assert gaps(box) == [{"reason": "quota", "shed": {"presence.visit": 10}, "from_seq": 1, "to_seq": 10}]
    assert keeper.shed_aged() == 0  # nothing more is old enough


def test_under_disk_pressure_room_is_kept_inside_the_file_by_shedding_presence(tmp_path, box, clock):
    box.append([event("presence.aggregate", n, pad=2000) for n in range(300)] + [event("pos.receipt", 300)])
    reserve = SpaceReserve(tmp_path / "reserve", 1024, free=lambda _path: 0)
    keeper = OutboxHousekeeper(box, OutboxPolicy(room_bytes=100_000), reserve=reserve, clock=clock)
    keeper.run()
    assert kinds_left(box)["presence.aggregate"] == 300  # the disk is not full: nothing to do
    reserve.release("disk full writing outbox.db")
    keeper.run()
    conn = box.connection()
    room = conn.execute("PRAGMA freelist_count").fetchone()[0] * conn.execute("PRAGMA page_size").fetchone()[0]
    left = kinds_left(box)
    assert 200 < left["presence.aggregate"] < 300 and left["pos.receipt"] == 1
    [gap] = gaps(box)
    assert gap["reason"] == "disk_pressure" and gap["from_seq"] == 1
    assert room >= 60_000  # freed pages (the gap event took a few of them back)
    keeper.run()
    assert len(gaps(box)) == 1  # the room is there: no further shedding


def test_the_quarantine_is_bounded_by_rows_and_age_oldest_first(box, clock):
    box.append([Quarantined("pos", "binary_data", b"old", clock() - 40 * DAY) for _ in range(20)])
    box.append([Quarantined("pos", "invalid_json", f"{n}".encode(), clock()) for n in range(130)])
    policy = OutboxPolicy(quarantine_max_rows=100, quarantine_max_age_seconds=30 * DAY)
    keeper = OutboxHousekeeper(box, policy, clock=clock)
    assert keeper.purge_quarantine() == 50
    rows = box.quarantine(1000)
    assert len(rows) == 100 and {r.reason for r in rows} == {"invalid_json"}
    assert rows[-1].raw == b"30"  # the thirty oldest of the recent ones went
    assert box.counters() == {"quarantine_purged": 50}
    assert keeper.purge_quarantine() == 0


def test_a_flood_of_garbage_leaves_a_bounded_quarantine(tmp_path, sealer):
    """5 MB of garbage used to leave 41,369 quarantine rows; the writer's housekeeping bounds them."""
    outbox = Outbox(tmp_path / "outbox.db", sealer, "S001")
    keeper = OutboxHousekeeper(outbox, OutboxPolicy(quarantine_max_rows=500))
    writer = OutboxWriter(outbox, commit_interval=0.01, housekeeping=keeper.run, housekeeping_interval=0.05)
    from edge_agent.journal import CaptureJournal

    journal = CaptureJournal(tmp_path / "pos.journal", sealer, "pos", fsync=False)
    source = SerialPosSource(
        url="loop://", baudrate=9600, journal=journal, emit=writer.put, redactor=PanRedactor(b"k" * 32)
    )
    writer.start()
    garbage = b"".join(b"\x00\x01garbage %d \xff\xfe\n" % n for n in range(20_000))
    for start in range(0, len(garbage), 4096):
        source.feed(garbage[start : start + 4096])
        time.sleep(0.001)
    time.sleep(0.2)
    writer.stop()
    keeper.purge_quarantine()
    assert outbox.stats().quarantined == 500
    assert outbox.counters()["quarantine_purged"] == 20_000 - 500


def test_delivered_rows_are_kept_72_hours_then_purged(tmp_path, sealer, clock):
    outbox = Outbox(tmp_path / "outbox.db", sealer, "S001", clock=clock)
    scans = [Capture.of("scan.member", {"code": f"M{n}"}, "2026-09-21T00:00:00.000Z") for n in range(5)]
    outbox.append(scans)
    private, public = new_signing_key()
    monotonic = Clock(0.0)
    job = SyncJob(
        outbox,
        StandInCentral(public),
        RequestSigner("dev_1", private),
        keep_delivered_hours=72,
        clock=clock,
        monotonic=monotonic,
    )
    job.run()
    assert outbox.stats().delivered == 5
    for hours, expected in ((71, 5), (73, 0)):
        clock.now = T0 + hours * 3600
        monotonic.now += 601  # the job purges at most every ten minutes
        job.run()
        assert outbox.stats().delivered == expected, f"after {hours} h"
    job.close()


def peak_kib(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] // 1024
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("rows", [2_000, 20_000])
def test_backlog_pages_and_shedding_keep_memory_flat(tmp_path, sealer, clock, rows):
    """Peak memory reading and shedding a backlog does not grow with it (2,000 vs 20,000 rows)."""
    outbox = Outbox(tmp_path / "outbox.db", sealer, "S001", clock=clock)
    for start in range(0, rows, 2000):
        outbox.append([event("presence.visit" if n % 2 else "pos.receipt", start + n) for n in range(2000)])

    def read_all():
        after = 0
        while page := outbox.pending(500, after=after):
            after = page[-1].seq

    def shed_all():
        OutboxHousekeeper(outbox, OutboxPolicy(max_bytes=1024 * 1024, page_rows=500), clock=clock).enforce_size()

    read_all()  # warm the page cache and the statement cache outside the measurement
    reading, shedding = peak_kib(read_all), peak_kib(shed_all)
    assert kinds_left(outbox)["pos.receipt"] == rows // 2
    assert reading < 1500 and shedding < 1500, (reading, shedding)
