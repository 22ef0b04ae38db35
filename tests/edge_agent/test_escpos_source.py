"""pos.mode = "escpos": printer bytes on a real pty become sales; unread receipts wait for reparse.

The receipts are the generator's (tools/receipts.py); each event's payload must carry exactly the
sale the receipt was generated from, after card-number redaction.
"""

from __future__ import annotations

import os
import random
import re
import time

import orjson

from edge_agent.config import load_config
from edge_agent.doctor import run_checks
from edge_agent.journal import CaptureJournal
from edge_agent.outbox import Capture, Quarantined
from edge_agent.parsing.escpos import MAX_RECEIPT_BYTES
from edge_agent.privacy import PanRedactor
from edge_agent.receipt_reader import builtin_profiles, load_profiles
from edge_agent.reparse import reparse
from edge_agent.sources.pos_streams import EscposStream
from edge_agent.sources.serial_pos import SerialPosSource
from tests.edge_agent.test_cli import run
from tests.edge_agent.test_receipt_generated import expected
from tests.edge_agent.test_serial_source import Collected, pty_pair  # noqa: F401 - a fixture
from tools.receipts import GeneratedReceipt, receipt

KEY = b"k" * 32
PROFILES = builtin_profiles()


def expected_payload(made: GeneratedReceipt, redactor: PanRedactor) -> tuple[dict, list[dict]]:
    """The sale fields of the pos.receipt payload, and its codes, for a generated receipt."""
    sale, codes = expected(made, redactor)
    want = {k: v for k, v in sale.items() if v not in (None, []) and k not in ("items", "warnings")}
    want["items"] = [{k: v for k, v in item.items() if v is not None} for item in sale["items"]]
    want["warnings"] = []
    return want, codes


def sale_fields(payload: dict) -> dict:
    return {k: v for k, v in payload.items() if k not in ("format", "member", "text_lines", "codes")}


def escpos_source(
    tmp_path,
    sealer,
    url,
    emit,
    *,
    profiles=PROFILES,
    idle_gap=0.3,
    kanji="auto",
    max_receipt_bytes=MAX_RECEIPT_BYTES,
    **options,
) -> SerialPosSource:
    journal = CaptureJournal(tmp_path / "pos.journal", sealer, "pos", fsync=False)
    redactor = PanRedactor(KEY)

    def stream(offset: int) -> EscposStream:
        return EscposStream(
            offset,
            profiles=profiles,
            redactor=redactor,
            kanji=kanji,
            clock=lambda: 1_780_000_000.0,
            max_receipt_bytes=max_receipt_bytes,
        )

    return SerialPosSource(
        url=url,
        baudrate=9600,
        journal=journal,
        emit=emit,
        redactor=redactor,
        stream=stream,
        idle_gap=idle_gap,
        **options,
    )


def test_printer_bytes_on_a_pty_become_sales_split_by_cut_reset_and_idle_gap(tmp_path, sealer, pty_pair):  # noqa: F811
    master, path = pty_pair
    made = [
        receipt(random.Random(1), cut=True, reset=True),
        receipt(random.Random(2), cut=False, reset=False, card_data=True),  # ends at the next one's reset
        receipt(random.Random(3), cut=True, reset=True, card_data=True),
        receipt(random.Random(4), cut=False, reset=False),  # nothing follows: only the idle gap ends it
    ]
    got = Collected()
    source = escpos_source(tmp_path, sealer, path, got)
    source.start()
    try:
        data = b"".join(m.data for m in made)
        for start in range(0, len(data), 97):  # commands and characters straddle the reads
            os.write(master, data[start : start + 97])
        records = got.wait_for(4)
    finally:
        source.stop()
    assert [type(r) for r in records] == [Capture] * 4, [getattr(r, "reason", None) for r in records]
    redactor = PanRedactor(KEY)
    for record, generated in zip(records, made, strict=True):
        payload = record.payload()
        want, codes = expected_payload(generated, redactor)
        assert sale_fields(payload) == want
        assert payload["codes"] == codes
        assert payload["format"] == "escpos" and payload["text_lines"]
        assert record.kind == "pos.receipt" and record.source == "pos"
    assert records[-1].offset == len(data)  # the journal may let go of every byte
    assert source.health.events == 4 and source.health.state == "stopped"


def test_a_receipt_no_profile_reads_is_quarantined_sealed_then_reparsed_once_a_profile_fits(
    tmp_path,
    sealer,
    outbox,
):
    store = "\n".join(["TEA HOUSE", "Order No: T-0042", "Green tea   2 x 9.00   18.00", "TOTAL 18.00", ""])
    printed = b"\x1b@" + store.encode("ascii") + b"\x1dV\x00"
    made = receipt(random.Random(5), cut=True, reset=True)
    got = Collected()
    source = escpos_source(tmp_path, sealer, "loop://", got)
    source.feed(printed + made.data)
    quarantined, sale = got.records
    assert isinstance(quarantined, Quarantined) and quarantined.reason == "no_profile_matched"
    assert isinstance(sale, Capture)
    assert source.health.quarantined_by_reason == {"no_profile_matched": 1}
    outbox.append(got.records)
    assert not any(b"TEA HOUSE" in p.read_bytes() for p in tmp_path.glob("outbox.db*"))  # sealed

    # Without a fitting profile nothing changes; the reason is kept.
    outcome = reparse(outbox, PROFILES)
    assert (outcome.sales, dict(outcome.still)) == (0, {"no_profile_matched": 1})

    profile = tmp_path / "tea.toml"
    profile.write_text(
        "name = \"tea-house\"\nrequire = ['^TEA HOUSE$']\n[fields]\n"
        "receipt_no = 'Order No: (?P<value>\\S+)'\ntotal = '^TOTAL (?P<value>[\\d.]+)$'\n"
        "[fields.store_name]\nline = 1\n"
        "[items]\nstart = '^Order No'\nend = '^TOTAL'\n[[items.layouts]]\n"
        "lines = ['(?P<name>\\S.*?)\\s+(?P<qty>\\d+) x (?P<unit_price>[\\d.]+)\\s+(?P<amount>[\\d.]+)']\n",
        encoding="utf-8",
    )
    outcome = reparse(outbox, load_profiles([profile]), dry_run=True)
    assert outcome.sales == 1 and outbox.stats().quarantined == 1  # a dry run changes nothing
    before = outbox.stats().pending
    outcome = reparse(outbox, load_profiles([profile]))
    assert (outcome.sales, dict(outcome.still)) == (1, {})
    stats = outbox.stats()
    assert (stats.quarantined, stats.pending) == (0, before + 1)
    event = outbox.pending(10)[-1].event()
    assert event.kind == "pos.receipt"
    assert {k: event.payload[k] for k in ("profile", "receipt_no", "store_name", "total")} == {
        "profile": "tea-house",
        "receipt_no": "T-0042",
        "store_name": "TEA HOUSE",
        "total": "18.00",
    }
    assert event.payload["items"] == [{"name": "Green tea", "qty": "2", "unit_price": "9.00", "amount": "18.00"}]
    assert event.observed_at == orjson.loads(quarantined.raw)["observed_at"]  # when it was printed


def supermarket(number: str, *, extra: tuple[str, ...] = (), total: str = "35.50") -> list[str]:
    """The lines of a cn-supermarket receipt."""
    return [
        "联华超市(南京东路店)",
        f"单号:{number}",
        "机号:03",
        "收银员:张三",
        "日期:2026-11-23 10:15:00",
        "品名           数量   单价    金额",
        "海飞丝洗发水      1   35.50   35.50",
        "--------------------------------",
        f"合计:{total}",
        *extra,
        f"应收:{total}",
    ]


def printed(lines: list[str], head: bytes = b"\x1b@") -> bytes:
    return head + "".join(line + "\n" for line in lines).encode("gb18030") + b"\n\n\x1dV\x00"


def test_a_receipt_decoded_in_the_wrong_printer_mode_is_recovered_from_its_printer_bytes(tmp_path, sealer, outbox):
    card = "6222021234567890128"
    data = printed(supermarket("KJ-1", extra=(f"银行卡号:{card}",)))
    got = Collected()
    source = escpos_source(tmp_path, sealer, "loop://", got, kanji="off")  # pos.kanji set wrong for this till
    source.feed(data)
    [quarantined] = got.records
    assert isinstance(quarantined, Quarantined) and quarantined.reason == "no_profile_matched"
    assert card.encode() not in quarantined.raw and b"6222" not in quarantined.raw  # nor in the printer bytes
    outbox.append(got.records)

    redactor = PanRedactor(KEY)
    assert reparse(outbox, PROFILES, redactor=redactor, kanji="off").sales == 0
    outcome = reparse(outbox, PROFILES, redactor=redactor, kanji="on")
    assert (outcome.sales, dict(outcome.still)) == (1, {})
    assert outbox.stats().quarantined == 0
    payload = outbox.pending(10)[-1].event().payload
    assert (payload["receipt_no"], payload["total"], payload["store_name"]) == ("KJ-1", "35.50", "联华超市(南京东路店)")
    assert payload["card_last4"] == "0128" and redactor.text(card) in payload["text_lines"][-2]
    source.journal.close()


def test_a_framed_receipt_stays_open_across_pauses_until_its_cut(tmp_path, sealer):
    now = [0.0]
    got = Collected()
    source = escpos_source(tmp_path, sealer, "loop://", got, idle_gap=2.0, monotonic=lambda: now[0])
    source.feed(printed(supermarket("SL-0")))  # the till frames its receipts with ESC @ and a cut
    slow = printed(supermarket("SL-1"))
    items, totals = slow.index("海飞丝".encode("gb18030")), slow.index("合计".encode("gb18030"))
    for piece in (slow[:items], slow[items:totals], slow[totals:]):  # printed line by line, 300 s apart
        source.feed(piece)
        now[0] += 300.0
        source.check_idle()
    assert [(type(r), r.payload()["receipt_no"]) for r in got.records] == [(Capture, "SL-0"), (Capture, "SL-1")]
    assert got.records[1].payload()["total"] == "35.50" and got.records[1].offset == source.offset
    source.journal.close()


def test_a_framed_receipt_paused_past_max_receipt_pause_is_quarantined_and_reparse_rejoins_it(tmp_path, sealer, outbox):
    now = [0.0]
    got = Collected()
    source = escpos_source(
        tmp_path, sealer, "loop://", got, idle_gap=2.0, max_receipt_pause=60.0, monotonic=lambda: now[0]
    )
    source.feed(printed(supermarket("SL-0")))
    slow = printed(supermarket("SL-1"))
    totals = slow.index("合计".encode("gb18030"))
    source.feed(slow[:totals])
    for step in (30.0, 29.0):
        now[0] += step
        source.check_idle()
    assert len(got.records) == 1  # a 59 s pause is still a pause
    now[0] += 1.0
    source.check_idle()
    source.feed(slow[totals:])  # the rest of it, still ending with its cut
    first, *pieces = got.records
    assert isinstance(first, Capture)
    assert [(r.reason, orjson.loads(r.raw)["ended_by"]) for r in pieces if isinstance(r, Quarantined)] == [
        ("receipt_pause_too_long", "pause"),
        ("receipt_pause_too_long", "cut"),
    ]
    outbox.append(got.records)
    outcome = reparse(outbox, PROFILES, redactor=PanRedactor(KEY))
    assert (outcome.sales, dict(outcome.still)) == (1, {})
    assert outbox.stats().quarantined == 0
    payload = outbox.pending(10)[-1].event().payload
    assert (payload["receipt_no"], payload["total"], len(payload["items"])) == ("SL-1", "35.50", 1)
    source.journal.close()


def test_arithmetic_that_does_not_add_up_is_kept_with_a_warning_never_fixed(tmp_path, sealer):
    made = receipt(random.Random(11), layout="cn-convenience", cut=True, reset=True)
    total = made.sale["total"].encode()
    wrong = b"%d.%s" % (int(total.split(b".")[0]) + 7, total.split(b".")[1])
    labels = b"|".join(re.escape(label.encode("gbk")) for label in ("应付", "应收", "合计"))
    data = re.sub(b"((?:" + labels + b")[^\n]*?)" + re.escape(total), lambda m: m.group(1) + wrong, made.data)
    assert data != made.data
    got = Collected()
    escpos_source(tmp_path, sealer, "loop://", got).feed(data)
    [record] = got.records
    payload = record.payload()
    assert payload["total"] == wrong.decode()  # as printed
    assert "items_total_mismatch" in payload["warnings"]


def test_an_unusable_profile_setting_stops_check_config_and_run_and_fails_the_doctor(tmp_path):
    config = tmp_path / "agent.toml"
    config.write_text(
        f'[agent]\ndata_dir = "{tmp_path / "data"}"\n[pos]\nport = "loop://"\nmode = "escpos"\nprofile = "my-till"\n'
    )
    for command in ("check-config", "run"):
        result = run(command, "--config", str(config))
        assert result.returncode == 2, result.stderr
        assert "pos.profile names 'my-till', which is not a profile (known: cn-convenience" in result.stderr
    (tmp_path / "data").mkdir(mode=0o700)
    checks = run_checks(load_config(config))
    assert any(not ok and line.startswith("receipt profiles: ") for ok, line in checks)
    config.write_text(config.read_text().replace('"my-till"', '"cn-supermarket"'))
    checks = run_checks(load_config(config))
    assert (
        True,
        "receipt profiles: cn-convenience, cn-supermarket, escpos-php-example; reading receipts with only "
        "cn-supermarket",
    ) in checks


def test_after_a_crash_the_journal_replays_the_receipt_in_progress_none_lost_none_twice(tmp_path, sealer):
    first, second = (receipt(random.Random(n), cut=True, reset=True) for n in (21, 22))
    got = Collected()
    before = escpos_source(tmp_path, sealer, "loop://", got)
    half = len(second.data) // 2
    before.feed(first.data + second.data[:half])
    [done] = got.records
    assert done.offset == len(first.data)
    before.journal.close()  # the process dies here; the outbox had committed the first receipt

    again = Collected()
    after = escpos_source(tmp_path, sealer, "loop://", again)
    after.recover(committed=done.offset)
    assert again.records == []  # half a receipt: nothing yet
    after.feed(second.data[half:])
    [record] = again.records
    want, codes = expected_payload(second, PanRedactor(KEY))
    assert sale_fields(record.payload()) == want and record.payload()["codes"] == codes
    assert record.offset == len(first.data) + len(second.data)
    after.journal.close()

    # Had the first receipt not been committed either, it is rebuilt from the journal too.
    once_more = Collected()
    escpos_source(tmp_path, sealer, "loop://", once_more).recover(committed=0)
    assert [r.payload()["receipt_no"] for r in once_more.records] == [
        done.payload()["receipt_no"],
        record.payload()["receipt_no"],
    ]


def test_garbage_on_the_printer_line_is_quarantined_and_every_receipt_after_it_arrives(tmp_path, sealer):
    made = [receipt(random.Random(n), cut=True, reset=True) for n in (31, 32, 33)]
    garbage = b"\x1b@HELLO\n\x1d8L\xff\xff\xff\xff0p"  # GS 8 L declaring about 4 GB of graphics
    redactor = PanRedactor(KEY)
    for gap, reason in ((False, "implausible_command"), (True, "no_profile_matched")):
        now = [0.0]
        folder = tmp_path / f"gap-{gap}"
        folder.mkdir()
        got = Collected()
        source = escpos_source(folder, sealer, "loop://", got, idle_gap=2.0, monotonic=lambda clock=now: clock[0])
        source.feed(garbage)
        if gap:  # the port goes quiet mid-command, as it did in the store
            now[0] += 5.0
            source.check_idle()
        for generated in made:
            source.feed(generated.data)
        first, *sales = got.records
        assert isinstance(first, Quarantined) and first.reason == reason, gap
        assert orjson.loads(first.raw)["text_lines"][0] == "HELLO"
        assert [type(r) for r in sales] == [Capture] * 3, gap
        assert [sale_fields(r.payload()) for r in sales] == [expected_payload(m, redactor)[0] for m in made]
        assert source.health.quarantined_by_reason == {reason: 1}
        source.journal.close()


def test_a_receipt_that_never_ends_is_quarantined_in_pieces_and_the_next_one_is_a_sale(tmp_path, sealer):
    made = receipt(random.Random(41), cut=True, reset=True)
    got = Collected()
    source = escpos_source(tmp_path, sealer, "loop://", got, max_receipt_bytes=256 * 1024)
    source.feed(b"\x1b@")
    for _ in range(48):  # 3 MiB without a line feed, a cut or a reset, in 64 KiB reads
        source.feed(b"A" * 65536)
    source.feed(made.data)  # its reset ends the runaway receipt
    *pieces, sale = got.records
    assert len(pieces) == 13 and {r.reason for r in pieces if isinstance(r, Quarantined)} == {"receipt_too_large"}
    assert all(len(r.raw) < 1_100_000 for r in pieces)  # each about its 256 KiB of bytes, twice (text, base64)
    assert "receipt_too_large" in orjson.loads(pieces[0].raw)["warnings"]
    assert isinstance(sale, Capture) and sale_fields(sale.payload()) == expected_payload(made, PanRedactor(KEY))[0]
    assert pieces[-1].offset == 2 + 48 * 65536 and sale.offset == pieces[-1].offset + len(made.data)
    source.journal.close()


def test_reparse_keeps_garbage_and_cut_off_receipts_quarantined_with_their_reasons(tmp_path, sealer, outbox):
    made = receipt(random.Random(43), cut=False, reset=True)
    garbage = b"\x1b@HELLO\n\x1d8L\xff\xff\xff\xff0p"  # GS 8 L declaring about 4 GB of graphics
    got = Collected()
    source = escpos_source(tmp_path, sealer, "loop://", got, idle_gap=2.0, max_receipt_bytes=256 * 1024)
    source.feed(garbage)
    source.feed(b"\x1b@")
    # A whole receipt's text, then a runaway line: what is kept of it would read as that sale.
    source.feed(made.data)
    for _ in range(8):
        source.feed(b"A" * 65536)
    source.feed(b"\x1b@")
    assert [r.reason for r in got.records if isinstance(r, Quarantined)] == [
        "implausible_command",
        *["receipt_too_large"] * 3,
    ]
    outbox.append(got.records)

    outcome = reparse(outbox, PROFILES)
    assert (outcome.sales, dict(outcome.still)) == (0, {"implausible_command": 1, "receipt_too_large": 3})
    assert outbox.stats().quarantined == 4
    source.journal.close()


def wholesale() -> GeneratedReceipt:
    """A group purchase: 2,600 items on 5,659 lines of 58 mm paper (most items on two lines)."""
    made = receipt(random.Random(1), layout="cn-supermarket", columns=32, items=2600, cut=True, reset=True)
    assert made.data.count(b"\n") > 5000 and len(made.sale["items"]) == 2600
    return made


def test_a_2600_item_receipt_on_5659_lines_is_one_sale_with_every_item(tmp_path, sealer):
    made = wholesale()
    got = Collected()
    source = escpos_source(tmp_path, sealer, "loop://", got)
    for start in range(0, len(made.data), 4096):
        source.feed(made.data[start : start + 4096])
    [record] = got.records
    assert isinstance(record, Capture), record
    assert sale_fields(record.payload()) == expected_payload(made, PanRedactor(KEY))[0]
    assert record.offset == len(made.data)
    source.journal.close()


def test_a_receipt_past_max_receipt_bytes_is_quarantined_in_pieces_with_its_bytes_and_reparse_joins_them(
    tmp_path, sealer, outbox
):
    made, after = wholesale(), receipt(random.Random(2), cut=True, reset=True)
    got = Collected()
    source = escpos_source(tmp_path, sealer, "loop://", got, max_receipt_bytes=64 * 1024)
    for start in range(0, len(made.data), 4096):
        source.feed(made.data[start : start + 4096])
    source.feed(after.data)
    *pieces, sale = got.records
    assert [r.reason for r in pieces if isinstance(r, Quarantined)] == ["receipt_too_large"] * 3  # never a sale
    assert all(orjson.loads(r.raw)["printer_bytes"] for r in pieces)
    assert isinstance(sale, Capture) and sale.payload()["receipt_no"] == after.sale["receipt_no"]
    outbox.append(got.records)
    redactor = PanRedactor(KEY)
    assert reparse(outbox, PROFILES, redactor=redactor, max_receipt_bytes=64 * 1024).sales == 0  # still too large
    outcome = reparse(outbox, PROFILES, redactor=redactor, max_receipt_bytes=MAX_RECEIPT_BYTES)
    assert (outcome.sales, dict(outcome.still), outbox.stats().quarantined) == (1, {}, 0)
    payload = outbox.pending(10)[-1].event().payload
    assert sale_fields(payload) == expected_payload(made, redactor)[0]
    source.journal.close()


def test_on_a_pty_a_pause_longer_than_the_idle_gap_inside_a_cut_framed_receipt_does_not_split_it(
    tmp_path,
    sealer,
    pty_pair,  # noqa: F811
):
    master, path = pty_pair
    first, slow = (receipt(random.Random(n), layout="cn-convenience", cut=True, reset=True) for n in (51, 52))
    half = slow.data.index("合计".encode("gbk"))
    got = Collected()
    source = escpos_source(tmp_path, sealer, path, got, idle_gap=0.3)
    source.start()
    try:
        os.write(master, first.data)  # the till has shown that it ends its receipts with a cut
        got.wait_for(1)
        os.write(master, slow.data[:half])
        time.sleep(1.2)  # the card terminal waits for a PIN: four idle gaps long
        assert len(got.records) == 1
        os.write(master, slow.data[half:])
        records = got.wait_for(2)
    finally:
        source.stop()
    assert [type(r) for r in records] == [Capture] * 2, [getattr(r, "reason", None) for r in records]
    redactor = PanRedactor(KEY)
    assert [sale_fields(r.payload()) for r in records] == [expected_payload(m, redactor)[0] for m in (first, slow)]
    assert records[-1].offset == len(first.data) + len(slow.data)


def test_a_receipt_paid_with_two_tenders_records_both_with_their_amounts(tmp_path, sealer):
    lines = [
        "便利蜂(望京店)",
        "店号:9304  机号:02",
        "流水号:CM-1",
        "收银员:赵敏",
        "2026/02/04 01:31:49",
        "--------------------------------",
        "海飞丝洗发水                36.00",
        "--------------------------------",
        "合计:36.00",
        "应付:36.00",
        "微信支付:20.00",
        "现金:￥20.00",
        "找零:4.00",
    ]
    got = Collected()
    escpos_source(tmp_path, sealer, "loop://", got).feed(printed(lines))
    [record] = got.records
    payload = record.payload()
    assert payload["payment_method"] == "wechat"  # the first, as before
    assert payload["tenders"] == [{"method": "wechat", "amount": "20.00"}, {"method": "cash", "amount": "20.00"}]
    assert (payload["paid"], payload["change"], payload["warnings"]) == ("40.00", "4.00", [])
