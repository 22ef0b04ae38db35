"""The POS source on a real pseudo-terminal: lines become events, garbage is quarantined, reads go on."""

from __future__ import annotations

import os
import threading
import time
import tty

import orjson
import pytest
import serial

from edge_agent.journal import CaptureJournal
from edge_agent.outbox import Capture, Quarantined
from edge_agent.privacy import PanRedactor
from edge_agent.sources.serial_pos import SerialPosSource, open_port


class Collected:
    """Records emitted by a source, as the writer would receive them."""

    def __init__(self):
        self.records = []
        self._lock = threading.Lock()

    def __call__(self, record):
        with self._lock:
            self.records.append(record)

    def wait_for(self, count, timeout=10.0):
        deadline = time.monotonic() + timeout
        while len(self.records) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return list(self.records)


@pytest.fixture
def pty_pair():
    master, slave = os.openpty()
    tty.setraw(slave)
    yield master, os.ttyname(slave)
    os.close(master)
    os.close(slave)


def make_source(tmp_path, sealer, url, emit, **kw):
    journal = CaptureJournal(tmp_path / "pos.journal", sealer, "pos", fsync=False)
    return SerialPosSource(url=url, baudrate=9600, journal=journal, emit=emit, redactor=PanRedactor(b"k" * 32), **kw)


def test_lines_on_a_pty_become_receipts_and_garbage_is_quarantined(tmp_path, sealer, pty_pair):
    master, path = pty_pair
    got = Collected()
    source = make_source(tmp_path, sealer, path, got)
    source.start()
    os.write(master, b'{"receipt_no": "R1", "total": "3.50", "member_phone": "13812345678"}\r\n')
    os.write(master, b"\x00\xff\xfe\x1b\x40garbage\r\n")
    os.write(master, "单号=R2 合计=8 卡号=4111111111111111\r\n".encode("gb18030"))
    os.write(master, b"receipt_no=R3 total=1.00\n")
    records = got.wait_for(4)
    source.stop()
    assert [type(r).__name__ for r in records] == ["Capture", "Quarantined", "Capture", "Capture"]
    assert records[0].payload()["member"] == {"phone": "13812345678"}
    assert records[1].reason == "binary_data"
    assert records[1].raw.startswith(b"\x00\xff\xfe")
    assert records[2].payload()["receipt_no"] == "R2"
    assert records[2].payload()["ignored_fields"] == ["卡号"]
    assert [r.offset for r in records] == sorted(r.offset for r in records)
    assert source.health.events == 3 and source.health.quarantined == 1
    assert source.health.as_dict()["quarantined_by_reason"] == {"binary_data": 1}


def test_card_numbers_never_reach_records(tmp_path, sealer):
    got = Collected()
    source = make_source(tmp_path, sealer, "loop://", got)
    source.feed(b'{"receipt_no": "R1", "total": "1", "payment": "4111 1111 1111 1111"}\n')
    source.feed(b"not a record 4111111111111111\n")
    capture, quarantined = got.records
    assert "4111" not in capture.payload()["payment"].replace("…1111", "")
    assert b"4111111111111111" not in quarantined.raw


def test_a_receipt_number_no_card_network_issues_is_kept_and_one_that_could_be_a_card_is_not(tmp_path, sealer):
    got = Collected()
    source = make_source(tmp_path, sealer, "loop://", got)
    # Both pass the Luhn check; a number led by a year cannot be a card, one led by 4 can (Visa).
    source.feed(b'{"receipt_no": "20261130000042116", "total": "1", "payment": "ref 20261130000042116"}\n')
    source.feed(b"receipt_no=4111000000001238 total=2\n")
    year_led, visa_led = (r.payload() for r in got.records)
    assert year_led["receipt_no"] == "20261130000042116" and year_led["payment"] == "ref 20261130000042116"
    assert visa_led["receipt_no"].startswith("[PAN …1238 #")


def test_track_data_and_cvv_codes_never_reach_records(tmp_path, sealer):
    got = Collected()
    source = make_source(tmp_path, sealer, "loop://", got)
    swipe = ";4111111111111111=25121010000012345678?"
    item = {"sku": "6901028075831", "name": f"充值 {swipe}", "qty": "1", "unit_price": "1"}
    line = {"receipt_no": "R1", "total": "1", "payment": "VISA CVV2: 123", "items": [item]}
    source.feed(orjson.dumps(line) + b"\n")
    source.feed(f"安全码：456 %B4111111111111111^DOE/JOHN^2512101000000? {swipe}\n".encode("gbk"))
    capture, quarantined = got.records
    assert capture.payload()["payment"] == "VISA [CVV removed]"
    assert capture.payload()["items"][0]["name"] == "充值 [track data removed]"
    assert quarantined.raw.decode("gbk") == "[CVV removed] [track data removed] [track data removed]"


def test_an_overlong_line_is_quarantined_and_reading_resumes(tmp_path, sealer):
    got = Collected()
    source = make_source(tmp_path, sealer, "loop://", got, max_line_bytes=64)
    source.feed(b"x" * 500 + b"\nreceipt_no=R1 total=1\n")
    assert [getattr(r, "reason", None) for r in got.records] == ["line_too_long", None]
    assert len(got.records[0].raw) == 64


def test_a_missing_port_is_retried_until_it_appears(tmp_path, sealer):
    got = Collected()
    link = tmp_path / "ttyPOS"
    source = make_source(tmp_path, sealer, str(link), got, reconnect_max_delay=0.2)
    source.start()
    deadline = time.monotonic() + 10  # polled: a loaded machine once took over 0.5 s to get there
    while source.health.state != "waiting" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert source.health.state == "waiting"
    master, slave = os.openpty()
    tty.setraw(slave)
    link.symlink_to(os.ttyname(slave))
    os.write(master, b"receipt_no=R1 total=1\n")
    records = got.wait_for(1)
    source.stop()
    os.close(master)
    os.close(slave)
    assert len(records) == 1
    assert source.health.state == "stopped"


def test_a_hung_up_port_is_reopened(tmp_path, sealer):
    got = Collected()
    link = tmp_path / "ttyPOS"
    master, slave = os.openpty()
    link.symlink_to(os.ttyname(slave))
    source = make_source(tmp_path, sealer, str(link), got, reconnect_max_delay=0.2)
    source.start()
    os.write(master, b"receipt_no=R1 total=1\n")
    got.wait_for(1)
    os.close(master)  # the USB adapter vanished
    os.close(slave)
    link.unlink()
    master, slave = os.openpty()
    link.symlink_to(os.ttyname(slave))
    os.write(master, b"receipt_no=R2 total=1\n")
    records = got.wait_for(2)
    source.stop()
    os.close(master)
    os.close(slave)
    assert [r.payload()["receipt_no"] for r in records] == ["R1", "R2"]
    assert source.health.reconnects >= 1


def test_bytes_read_before_a_crash_are_rebuilt_from_the_journal(tmp_path, sealer):
    first = Collected()
    source = make_source(tmp_path, sealer, "loop://", first)
    source.feed(b"receipt_no=R1 total=1\nreceipt_no=R2 total=2\nreceipt_no=R3 ")
    committed = first.records[0].offset  # only R1 reached the outbox before the crash
    source.journal.close()

    again = Collected()
    restarted = make_source(tmp_path, sealer, "loop://", again)
    assert restarted.recover(committed) > 0
    restarted.feed(b"total=3\n")
    assert [r.payload()["receipt_no"] for r in again.records] == ["R2", "R3"]
    assert all(isinstance(r, Capture | Quarantined) for r in again.records)


def test_a_second_reader_cannot_open_the_same_port(pty_pair):
    _, path = pty_pair
    first = open_port(path, 9600)
    try:
        with pytest.raises(serial.SerialException, match="exclusively lock"):
            open_port(path, 9600)
    finally:
        first.close()
    open_port(path, 9600).close()  # free again once the first reader let go
