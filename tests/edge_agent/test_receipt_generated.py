"""Generated Chinese ESC/POS receipts parse to exactly the sales they print, card data never leaks.

The generator (tools/receipts.py) returns each receipt's bytes with its sale as printed; what the
agent keeps is that sale after card-number redaction, so 13-19 digit numbers that pass the Luhn
check (receipt, barcode and member numbers, one in ten) are expected in their redacted form, but
for a receipt number whose leading digits no card network issues.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from pathlib import Path

from edge_agent.privacy import PanRedactor, card_issuer_prefix, luhn_valid
from edge_agent.receipt_reader import ReceiptReader, builtin_profiles
from tools.escpos_bytes import write_spy_log
from tools.receipts import GeneratedReceipt, receipt, stream

BIN = Path(sys.executable).parent / "edge-agent"
KEY = b"k" * 32
PROFILES = builtin_profiles()
HASH = re.compile(r" #[a-p]{16}\]")
# Digit runs as cards are written: solid, or in groups split by one space or dash.
CARD_LIKE = re.compile(r"(?<![0-9])[0-9](?:[ -]?[0-9]){12,18}(?![0-9])")


def expected(made: GeneratedReceipt, redactor: PanRedactor) -> tuple[dict, list[dict]]:
    """The sale and codes as the agent keeps them: printed numbers after card-number redaction,
    but for a receipt number that no card network could have issued, kept wherever it is printed."""
    sale = json.loads(json.dumps(made.sale))
    keep = {digits for digits in redactor.found(sale["receipt_no"]).values() if not card_issuer_prefix(digits)}
    for key in ("receipt_no", "member_card"):
        if sale[key]:
            sale[key] = redactor.text(sale[key], keep)
    for item in sale["items"]:
        if item["sku"]:
            item["sku"] = redactor.text(item["sku"], keep)
    codes = [{"symbology": c["symbology"], "data": redactor.text(c["data"], keep)} for c in made.codes]
    return sale, codes


def read_in_chunks(data: bytes, rng: random.Random, reader: ReceiptReader) -> list[dict]:
    records, pos = [], 0
    while pos < len(data):
        size = rng.choice([1, 2, 3, 7, 64, 512, 4096])
        records += reader.feed(data[pos : pos + size])
        pos += size
    return [r.as_json() for r in records + reader.close()]


def full_card_numbers(text: str) -> list[str]:
    found = []
    # A redaction token holds no digits but the last four; blanking its hash keeps them apart.
    for match in CARD_LIKE.finditer(HASH.sub("]", text)):
        digits = re.sub(r"[ -]", "", match.group(0))
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            found.append(match.group(0))
    return found


def without_kept_receipt_number(text: str, receipt_no: str) -> str:
    """``text`` without the receipt number, if it is one that looks like a card number and was kept
    in clear because no card network issues numbers starting like it (receipt_reader.py)."""
    kept = PanRedactor(KEY).found(receipt_no)
    assert not any(card_issuer_prefix(digits) for digits in kept.values()), receipt_no
    return text.replace(receipt_no, "-") if kept else text


def test_1000_generated_receipts_parse_to_exactly_their_sales():
    rng = random.Random(7)
    redactor = PanRedactor(KEY)
    for case in range(1000):
        made = receipt(random.Random(case))
        [got] = read_in_chunks(made.data, rng, ReceiptReader(PROFILES, redactor))
        sale, codes = expected(made, redactor)
        assert got.get("sale") == sale, (case, got.get("error"), "\n".join(got["text_lines"]))
        assert got["codes"] == codes, case
        assert got["warnings"] == [], case
        # Payloads are reported, never printed: no line is a barcode's data, none holds a QR URL.
        assert not any(c["data"] == line.strip() for c in codes for line in got["text_lines"]), case
        assert not any("https://" in line for line in got["text_lines"]), case


def test_100_multi_receipt_streams_split_by_cut_reset_and_idle_gap():
    redactor = PanRedactor(KEY)
    receipts = 0
    for case in range(100):
        made = stream(random.Random(10_000 + case), random.randint(2, 6), idle_gap=2.0)
        reader = ReceiptReader(PROFILES, redactor)
        records, previous = [], None
        for at, data in made.reads:
            if previous is not None and at - previous >= 2.0:
                records += reader.idle()
            previous = at
            records += reader.feed(data)
        records += reader.close()
        got = [r.as_json() for r in records]
        assert [g.get("sale") for g in got] == [expected(r, redactor)[0] for r in made.receipts], case
        receipts += len(got)
    assert receipts >= 300


def run_parse(path: Path) -> list[dict]:
    result = subprocess.run([str(BIN), "parse", str(path), "--json"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def without_hashes(value) -> object:
    return json.loads(HASH.sub(" #]", json.dumps(value, ensure_ascii=False)))


def test_generated_captures_through_the_parse_command(tmp_path):
    redactor = PanRedactor(KEY)  # the command uses its own key: compare with the hashes blanked
    checked = 0
    for case in range(8):
        rng = random.Random(20_000 + case)
        spy = case % 2 == 0
        made = stream(rng, 14, idle_gap=2.0 if spy else None, card_data=case == 3)
        path = tmp_path / (f"capture-{case}.log" if spy else f"capture-{case}.bin")
        if spy:
            write_spy_log(path, made.reads)  # receipts with neither reset nor cut split on idle gaps
        else:
            path.write_bytes(made.data)  # every boundary has a cut or a reset
        got = run_parse(path)
        want = [expected(r, redactor) for r in made.receipts]
        assert without_hashes([g.get("sale") for g in got]) == without_hashes([s for s, _ in want]), case
        assert without_hashes([g["codes"] for g in got]) == without_hashes([c for _, c in want]), case
        checked += len(got)
    assert checked == 8 * 14


def test_card_numbers_track_data_and_cvv_never_leave_the_reader():
    redactor = PanRedactor(KEY)
    rng = random.Random(3)
    seeded = 0
    for case in range(300):
        made = receipt(random.Random(30_000 + case), card_data=True, layout=rng.choice(["cn-supermarket", None]))
        [got] = read_in_chunks(made.data, rng, ReceiptReader(PROFILES, redactor))
        dumped = json.dumps(got, ensure_ascii=False)
        for secret in made.secrets:
            assert secret not in dumped, (case, secret)
            digits = re.sub(r"\D", "", secret)
            assert len(digits) < 13 or digits not in dumped, (case, secret)
        assert full_card_numbers(without_kept_receipt_number(dumped, got["sale"]["receipt_no"])) == [], case
        if made.sale["payment_method"] == "bank_card":
            seeded += 1
            assert got["sale"]["card_last4"] == made.sale["card_last4"]
            assert any("[track data removed]" in line for line in got["text_lines"])
            assert any("[CVV removed]" in line for line in got["text_lines"])
    assert seeded >= 20


def test_parse_through_the_command_gives_exactly_the_generated_sales(tmp_path):
    """Acceptance: 1,000 single receipts and 100 multi-receipt streams through `edge-agent parse`."""
    redactor = PanRedactor(KEY)
    singles = [receipt(random.Random(30_000 + n), reset=True) for n in range(1000)]
    streams = [stream(random.Random(40_000 + n), random.Random(n).randint(2, 5), idle_gap=2.0) for n in range(100)]
    reads, now = [], 0.0
    for made in singles:
        now += 5.0  # receipts without a cut end at the next reset anyway; the gap changes nothing
        reads.append((now, made.data))
    single_log = tmp_path / "singles.log"
    write_spy_log(single_log, reads)
    reads, base = [], 0.0
    for made in streams:
        reads += [(base + at, data) for at, data in made.reads]
        base += made.reads[-1][0] + 10.0
    stream_log = tmp_path / "streams.log"
    write_spy_log(stream_log, reads)
    for path, receipts in (
        (single_log, singles),
        (stream_log, [r for s in streams for r in s.receipts]),
    ):
        result = subprocess.run([str(BIN), "parse", str(path), "--json"], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        got = [json.loads(line) for line in result.stdout.splitlines()]
        want = [expected(r, redactor) for r in receipts]
        assert len(got) == len(want)
        assert without_hashes([g.get("sale") for g in got]) == without_hashes([s for s, _ in want])
        assert without_hashes([g["codes"] for g in got]) == without_hashes([c for _, c in want])
