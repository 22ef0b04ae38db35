"""Scanner sources: a recorded USB keyboard replayed by umockdev, a serial scanner on a real pty, the till wiring."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import time
import tty
from typing import ClassVar

import pytest

from edge_agent.config import load_config
from edge_agent.parsing.keyboard import EV_KEY, KEY_ENTER, KEY_LEFTSHIFT, InputEvent, KeyboardDecoder
from edge_agent.sources.scanner_evdev import EvdevScanner
from edge_agent.sources.scanner_serial import split_payloads
from edge_agent.till.counter import Till
from tests.conftest import unavailable

# Reads the replayed device with the agent's own wedge source and prints what it saw.
READER = """
import json, sys, time
from edge_agent.sources.scanner_evdev import EvdevScanner, key_name
events, payloads = [], []
def seen(e):
    if e.type != 0:
        t, c = key_name(e)
        events.append({"t": round(e.sec + e.usec / 1e6, 6), "type": t, "code": c, "value": e.value})
scanner = EvdevScanner(sys.argv[1], payloads.append, on_event=seen, idle_flush=0.3)
scanner.start()
deadline = time.monotonic() + 20
while time.monotonic() < deadline and not (len(events) >= int(sys.argv[2]) and payloads):
    time.sleep(0.05)
scanner.stop()
print(json.dumps({"events": events, "payloads": payloads, "state": scanner.state}))
"""


def test_the_recorded_usb_keyboard_decodes_to_its_expected_key_sequence_under_umockdev(samples_dir):
    umockdev = shutil.which("umockdev-run")
    if umockdev is None:
        unavailable("umockdev-run is not installed (Debian package umockdev; ./dev test installs it)")
    base = samples_dir / "barcode" / "umockdev__usbkbd"
    expected = json.loads(base.with_suffix(".expected.json").read_text())
    node = "/dev/input/event5"
    done = subprocess.run(
        [
            str(umockdev),
            "-d",
            f"{base}.umockdev",
            "-i",
            f"{node}={base}.evtest.ioctl",
            "-s",
            f"{node}={base}.evtest.script.64",
            "--",
            sys.executable,
            "-c",
            READER,
            node,
            str(len(expected["events"])),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    want = [
        {"t": e["t"], "type": e["type"], "code": e["code"], "value": int(str(e["value"]), 0)}
        for e in expected["events"]
    ]
    assert seen["events"] == want
    assert seen["payloads"] == [expected["expected_text_if_treated_as_wedge_input"]]
    assert seen["state"] == "up"


def _keys(decoder: KeyboardDecoder, codes: list[tuple[int, int]]) -> list[str]:
    out = []
    for code, value in codes:
        payload = decoder.feed(InputEvent(0, 0, EV_KEY, code, value))
        if payload:
            out.append(payload)
    return out


def _press(*codes: int) -> list[tuple[int, int]]:
    return [pair for code in codes for pair in ((code, 1), (code, 0))]


def test_the_keyboard_layout_decides_what_a_key_code_types():
    # Keys 2, 3 and 16 with Enter: "12q" on a US layout; on AZERTY the same keys type "&éa".
    keys = _press(2, 3, 16, KEY_ENTER)
    assert _keys(KeyboardDecoder("us"), keys) == ["12q"]
    assert _keys(KeyboardDecoder("fr"), keys) == ["&éa"]
    assert _keys(KeyboardDecoder("de"), _press(21, 44, KEY_ENTER)) == ["zy"]
    shifted = [(KEY_LEFTSHIFT, 1), *_press(30), (KEY_LEFTSHIFT, 0), *_press(30, KEY_ENTER)]
    assert _keys(KeyboardDecoder("us"), shifted) == ["Aa"]
    # A French till: a scanner set to AZERTY types digits with Shift held.
    assert _keys(KeyboardDecoder("fr"), [(KEY_LEFTSHIFT, 1), *_press(2, 11), (KEY_LEFTSHIFT, 0), *_press(28)]) == ["10"]
    with pytest.raises(ValueError, match="unknown keyboard layout 'xx'"):
        KeyboardDecoder("xx")


def test_serial_payloads_split_on_cr_lf_or_both():
    assert split_payloads(b"]E05901234123457\r\n6901234567892\r\r\n\x1d0105901234123457\x1d10A\n12") == (
        ["]E05901234123457", "6901234567892", "\x1d0105901234123457\x1d10A"],
        b"12",
    )


def test_a_serial_scanner_on_a_pty_feeds_the_till(tmp_path):
    master, slave = os.openpty()
    tty.setraw(slave)
    config = load_config(
        None,
        {},
        {"agent.data_dir": str(tmp_path), "scanner.port": os.ttyname(slave), "till.register": "R7"},
        check_required=False,
    )
    captured: list = []
    till = Till(config, "S001", captured.append)
    till.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and till.health()["scanner"]["state"] != "up":
            time.sleep(0.02)  # pyserial empties the input buffer when it opens the port
        os.write(master, b"]E06901234567892\r\n134567890123456789\r\n")
        while time.monotonic() < deadline and till.handler.counts["payment"] < 1:
            time.sleep(0.02)
    finally:
        till.stop()
        os.close(master)
        os.close(slave)
    assert [c.kind for c in captured] == ["scan.product"]
    assert captured[0].payload() == {
        "code": "6901234567892",
        "register": "R7",
        "symbology": "EAN/UPC",
        "sku": "6901234567892",
    }
    assert till.handler.counts["payment"] == 1 and till.health()["scanner"]["payloads"] == 2
    assert b"134567890123456789" not in b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())


def test_a_missing_wedge_device_is_reported_not_fatal(tmp_path):
    config = load_config(
        None,
        {},
        {"agent.data_dir": str(tmp_path), "scanner.evdev_device": str(tmp_path / "no-such-event")},
        check_required=False,
    )
    till = Till(config, "S001", lambda record: None)
    till.start()
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and till.health()["wedge"]["state"] != "down":
            time.sleep(0.02)
    finally:
        till.stop()
    health = till.health()["wedge"]
    assert health["state"] == "down" and "is the scanner plugged in?" in health["detail"]


class FakeInputDevice:
    """python-evdev's InputDevice at the one call a FIFO cannot answer: EVIOCGRAB (no uinput here)."""

    grabbed: ClassVar[list[str]] = []

    def __init__(self, path: str) -> None:
        self.path = path

    def grab(self) -> None:
        FakeInputDevice.grabbed.append(self.path)

    def ungrab(self) -> None:
        FakeInputDevice.grabbed.remove(self.path)


def test_a_wedge_scanner_types_a_scan_ended_by_enter_and_is_grabbed_when_asked(tmp_path, monkeypatch):
    import evdev

    monkeypatch.setattr(evdev, "InputDevice", FakeInputDevice)
    fifo = tmp_path / "event9"
    os.mkfifo(fifo)
    payloads: list[str] = []
    scanner = EvdevScanner(str(fifo), payloads.append, grab=True, idle_flush=5)
    scanner.start()
    writer = os.open(fifo, os.O_WRONLY)  # blocks until the scanner opened its end
    try:
        digits = [11 if d == "0" else 1 + int(d) for d in "6901234567892"]  # KEY_1 is 2 ... KEY_0 is 11
        events = [(EV_KEY, code, value) for code in [*digits, KEY_ENTER] for value in (1, 0)]
        os.write(
            writer,
            b"".join(struct.pack("llHHi", 1, 0, t, c, v) + struct.pack("llHHi", 1, 0, 0, 0, 0) for t, c, v in events),
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not payloads:
            time.sleep(0.02)
        assert FakeInputDevice.grabbed == [str(fifo)]
    finally:
        scanner.stop()
        os.close(writer)
    assert payloads == ["6901234567892"]
    assert FakeInputDevice.grabbed == []
