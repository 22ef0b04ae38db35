"""`edge-agent parse` and `edge-agent capture` as a technician runs them, on real files and a real pty."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tty
from pathlib import Path

import pytest

from edge_agent.capture_file import read_capture, spy_rows

BIN = Path(sys.executable).parent / "edge-agent"
ESC, GS = b"\x1b", b"\x1d"


def edge_agent(*args, timeout=60):
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    return subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True, env=env, timeout=timeout)


def test_parse_prints_the_sample_receipt_and_its_sale(samples_dir):
    capture = samples_dir / "escpos" / "escpos-php__receipt-with-logo.bin"
    result = edge_agent("parse", capture)
    assert result.returncode == 0, result.stderr
    assert "=== receipt 1 (bytes 0-9574, ended by cut, 1 image(s)) ===" in result.stdout
    assert "  Total            $ 14.25" in result.stdout
    assert "--- sale (profile escpos-php-example)" in result.stdout
    assert "  item            A final item: 1 x 4.45 = 4.45" in result.stdout
    assert result.stderr.strip().endswith("1 receipts (sale: 1)")


def test_parse_json_gives_one_object_per_receipt(samples_dir):
    result = edge_agent("parse", samples_dir / "escpos" / "escpos-php__demo.bin", "--json")
    assert result.returncode == 0, result.stderr
    objects = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(objects) == 14
    assert objects[0]["text_lines"] == ["Hello world"]
    assert objects[0]["error"] == "no_profile_matched" and "sale" not in objects[0]
    assert objects[-1]["codes"] == [{"symbology": "qr", "data": "Testing 123"}] * 3
    sale = json.loads(
        edge_agent("parse", samples_dir / "escpos" / "escpos-php__receipt-with-logo.bin", "--json").stdout
    )
    assert sale["sale"]["total"] == "14.25" and sale["sale"]["datetime"] == "2015-04-06T14:56:25"
    assert "error" not in sale


def test_parse_with_one_named_profile(samples_dir):
    capture = samples_dir / "escpos" / "escpos-php__receipt-with-logo.bin"
    [record] = map(
        json.loads, edge_agent("parse", capture, "--json", "--profile", "cn-supermarket").stdout.splitlines()
    )
    assert record["error"] == "profile_not_matched:cn-supermarket"
    result = edge_agent("parse", capture, "--profile", "nonesuch")
    assert result.returncode == 2
    assert "no profile named 'nonesuch' (known: " in result.stderr and "cn-convenience" in result.stderr


def test_a_technicians_profile_is_checked_with_file_line_and_reason(tmp_path, samples_dir):
    profile = tmp_path / "my-till.toml"
    profile.write_text("name = 'my-till'\nrequire = ['Total']\n[fields]\ntotal = 'Total (?P<value>[0-9.'\n")
    result = edge_agent("parse", samples_dir / "escpos" / "escpos-php__receipt-with-logo.bin", "--profiles", profile)
    assert result.returncode == 2
    assert result.stderr.startswith(f"edge-agent: profile error: {profile}:4:")
    assert "fields.total: invalid regular expression" in result.stderr

    profile.write_text("name = 'my-till'\nrequire = ['^Total']\n[fields]\ntotal = '^Total\\s+\\$ (?P<value>[0-9.]+)'\n")
    capture = samples_dir / "escpos" / "escpos-php__receipt-with-logo.bin"
    result = edge_agent("parse", capture, "--profiles", profile, "--profile", "my-till", "--json")
    assert json.loads(result.stdout)["sale"]["profile"] == "my-till"
    assert json.loads(result.stdout)["sale"]["total"] == "14.25"


def test_parse_reads_spy_logs_and_ends_receipts_at_idle_gaps(tmp_path):
    # Two receipts with neither a reset nor a cut: only the pause between them separates them.
    log = tmp_path / "till.log"
    log.write_text(spy_rows(1.0, b"first\n") + spy_rows(1.5, b"line\n") + spy_rows(9.0, b"second\n"))
    records = [json.loads(line) for line in edge_agent("parse", log, "--json").stdout.splitlines()]
    assert [r["text_lines"] for r in records] == [["first", "line"], ["second"]]
    assert [r["ended_by"] for r in records] == ["idle", "end"]
    records = [json.loads(line) for line in edge_agent("parse", log, "--json", "--idle-gap", "60").stdout.splitlines()]
    assert [r["text_lines"] for r in records] == [["first", "line", "second"]]


def test_parse_reports_unreadable_captures(tmp_path):
    result = edge_agent("parse", tmp_path / "missing.bin")
    assert result.returncode == 1
    assert "missing.bin: cannot read the capture" in result.stderr
    broken = tmp_path / "broken.log"
    broken.write_text("000001.000 RX   0000  41 42\nthis is not a spy line\n")
    result = edge_agent("parse", broken)
    assert result.returncode == 1
    assert f"{broken}:2: not a spy:// log line" in result.stderr


@pytest.fixture
def pty_pair():
    master, slave = os.openpty()
    tty.setraw(slave)
    yield master, os.ttyname(slave)
    os.close(master)
    os.close(slave)


def start_capture(port: str, out: Path, *extra: str) -> subprocess.Popen:
    process = subprocess.Popen(
        [str(BIN), "capture", "--port", port, "--out", str(out), *extra],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    assert process.stderr.readline().startswith("capturing ")  # the port is open
    return process


def test_capture_records_a_pty_byte_for_byte_until_interrupted(tmp_path, pty_pair):
    master, port = pty_pair
    out = tmp_path / "till.bin"
    process = start_capture(port, out)
    receipt = ESC + b"@" + "合计: 12.50".encode("gbk") + b"\r\n" + GS + b"v0\x00\x01\x00\x03\x00\x1b@\n" + GS + b"V\x00"
    for start in range(0, len(receipt), 5):
        os.write(master, receipt[start : start + 5])
        time.sleep(0.01)
    time.sleep(0.8)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=10) == 0
    assert f"captured {len(receipt)} bytes" in process.stderr.read()
    assert out.read_bytes() == receipt
    [record] = map(json.loads, edge_agent("parse", out, "--json").stdout.splitlines())
    assert record["text_lines"] == ["合计: 12.50"] and record["images"] == 1


def test_capture_as_a_spy_log_keeps_the_gaps(tmp_path, pty_pair):
    master, port = pty_pair
    out = tmp_path / "till.log"
    process = start_capture(port, out, "--format", "spy", "--duration", "4")
    os.write(master, b"one\n")
    time.sleep(2.5)
    os.write(master, b"two\n")
    assert process.wait(timeout=15) == 0
    reads = read_capture(out)
    assert b"".join(r.data for r in reads) == b"one\ntwo\n"
    assert reads[-1].at is not None and reads[0].at is not None and reads[-1].at - reads[0].at > 2
    records = [json.loads(line) for line in edge_agent("parse", out, "--json").stdout.splitlines()]
    assert [r["text_lines"] for r in records] == [["one"], ["two"]]


def test_capture_says_what_to_check_when_the_port_cannot_be_opened(tmp_path):
    result = edge_agent("capture", "--port", tmp_path / "ttyNONE", "--out", tmp_path / "x.bin")
    assert result.returncode == 1
    assert f"cannot open {tmp_path / 'ttyNONE'}" in result.stderr
    assert "dialout" in result.stderr


def test_a_capture_is_written_owner_only_whatever_the_umask(tmp_path, pty_pair):
    """A raw capture holds card numbers in clear: like the agent's own files, it is 0600."""
    master, port = pty_pair
    out = tmp_path / "till.bin"
    old = os.umask(0o022)
    try:
        process = start_capture(port, out, "--duration", "1")
    finally:
        os.umask(old)
    os.write(master, b"4111111111111111\n")
    assert process.wait(timeout=15) == 0
    assert out.read_bytes() == b"4111111111111111\n"
    assert out.stat().st_mode & 0o777 == 0o600


def test_an_existing_capture_is_never_overwritten_without_force(tmp_path, pty_pair):
    master, port = pty_pair
    out = tmp_path / "till.bin"
    out.write_bytes(b"yesterday's receipts")
    out.chmod(0o644)
    result = edge_agent("capture", "--port", port, "--out", out, "--duration", "1")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"edge-agent: {out} already exists: give another --out, or add --force to replace it"
    ]
    assert out.read_bytes() == b"yesterday's receipts"

    process = start_capture(port, out, "--duration", "1", "--force")
    os.write(master, b"today\n")
    assert process.wait(timeout=15) == 0
    assert out.read_bytes() == b"today\n"
    assert out.stat().st_mode & 0o777 == 0o600  # a replaced capture is owner-only too
    assert "--force" in edge_agent("capture", "--help").stdout
