"""The ESC/POS parser against real printer streams, the command vectors and hand-built edge cases."""

from __future__ import annotations

import json
import random

import pytest

from edge_agent.parsing.escpos import KEPT_PER_BYTE, MAX_RECEIPT_BYTES, Code, EscposParser, PrintedReceipt, parse_stream

ESC, GS, FS = b"\x1b", b"\x1d", b"\x1c"
CUT = GS + b"V\x42\x00"


def fed_in_chunks(data: bytes, size: int, **options) -> list[PrintedReceipt]:
    parser = EscposParser(**options)
    out = []
    for start in range(0, len(data), size):
        out += parser.feed(data[start : start + size])
    return out + parser.close()


def texts(receipts: list[PrintedReceipt]) -> list[list[str]]:
    return [list(r.lines) for r in receipts]


# -- real captures ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def escpos_samples(samples_dir):
    return {path.name: path.read_bytes() for path in sorted((samples_dir / "escpos").glob("*.bin"))}


def test_every_sample_parses_identically_in_one_read_and_in_1_to_7_byte_chunks(escpos_samples):
    assert len(escpos_samples) >= 6
    for name, data in escpos_samples.items():
        whole = parse_stream(data)
        assert whole, name
        for receipt in whole:
            assert receipt.warnings == (), (name, receipt.warnings)
        for size in range(1, 8):
            assert fed_in_chunks(data, size) == whole, (name, size)


def test_receipt_with_logo_text_equals_the_upstream_golden_text(samples_dir, escpos_samples):
    golden = (samples_dir / "escpos" / "escpos-php__receipt-with-logo.expected-text.txt").read_text()
    [receipt] = parse_stream(escpos_samples["escpos-php__receipt-with-logo.bin"])
    assert receipt.text == golden
    assert receipt.images == 1  # the logo, skipped by its declared length
    assert receipt.ended_by == "cut"


def test_demo_stream_holds_14_receipts_one_per_cut(escpos_samples):
    receipts = parse_stream(escpos_samples["escpos-php__demo.bin"])
    assert len(receipts) == 14
    assert all(r.ended_by == "cut" for r in receipts)
    assert receipts[0].lines == ("Hello world",)
    assert receipts[1].lines == ("ABC", "DEF", "GHI")
    # One receipt holds only a barcode, two only graphics (GS ( L, GS v 0): printed paper all the same.
    assert [(len(r.codes), r.images) for r in receipts if not r.lines] == [(1, 0), (0, 4), (0, 4)]
    assert receipts[10].codes == (Code("code39", "9876"),)
    assert [c.data for c in receipts[-1].codes] == ["Testing 123"] * 3


def test_qr_and_barcode_payloads_are_reported_never_printed_as_text(escpos_samples):
    qr = parse_stream(escpos_samples["escpos-php__qr-code.bin"])[0]
    assert len(qr.codes) == 19
    assert {c.symbology for c in qr.codes} == {"qr"}
    assert "0123456789012345678901234567890123456789" in {c.data for c in qr.codes}
    assert not any("Testing 123" in line or "abcdefghijklmn" in line for line in qr.lines)

    barcodes = parse_stream(escpos_samples["escpos-php__barcode.bin"])[0]
    assert len(barcodes.codes) == 40
    assert {c.symbology for c in barcodes.codes} == {
        "upc_a",
        "upc_e",
        "ean13",
        "ean8",
        "code39",
        "itf",
        "codabar",
        "code93",
        "code128",
    }
    assert Code("code128", "012ABCDabcd") in barcodes.codes
    assert Code("code128", "213243") in barcodes.codes  # code set C: one byte per digit pair
    payloads = {c.data for c in barcodes.codes}
    assert not payloads & set(barcodes.lines)


def test_bit_images_whose_bytes_look_like_commands_are_skipped(escpos_samples):
    [receipt] = parse_stream(escpos_samples["escpos-php__bit-image.bin"])
    assert receipt.images == 4
    assert receipt.lines[-1] == "Large Tux in correct proportion (bit image)."


def test_code_pages_switch_mid_line(escpos_samples):
    [receipt] = parse_stream(escpos_samples["escpos-php__character-encodings.bin"])
    lines = set(receipt.lines)
    assert "Quizdeltagerne spiste jordbær med fløde, mens cirkusklovnen Wolther spillede på xylofon." in lines
    assert "Ξεσκεπάζω την ψυχοφθόρα βδελυγμία" in lines
    assert "В чащах юга жил бы цитрус? Да, но фальшивый экземпляр!" in lines
    assert "Pijamalı hasta, yağız şoföre çabucak güvendi." in lines
    assert "ｲﾛﾊﾆﾎﾍﾄ ﾁﾘﾇﾙｦ ﾜｶﾖﾀﾚｿ ﾂﾈﾅﾗﾑ" in lines
    assert any(line.startswith("Tiếng Việt, còn gọi tiếng Việt Nam") for line in lines)


# -- the command vectors ----------------------------------------------------------------------

# Keys of the vectors file that describe commands rather than what lands on a receipt.
NOT_ON_PAPER = {"commands", "command", "ec_level", "model", "encoding", "code_page", "double_byte_encoding"}


def load_vectors(samples_dir):
    return json.loads((samples_dir / "escpos" / "escpos_command_vectors.json").read_text())


def test_command_vectors_table(samples_dir):
    vectors = load_vectors(samples_dir)
    assert len(vectors) >= 11
    for vector in vectors:
        data = bytes.fromhex(vector["hex"])
        expected = dict(vector["expected"])
        # Text after the vector proves the parser is back in step; UTF-8 after ESC 9 1 proves the switch.
        probe = "你好".encode() if expected.get("double_byte_encoding", "").startswith("UTF-8") else b"end"
        receipts = parse_stream(data + probe + b"\n")
        for size in (1, 2, 3, 5, 7):
            assert fed_in_chunks(data + probe + b"\n", size) == receipts, vector["id"]
        lines = [line for r in receipts for line in r.lines]
        codes = [c for r in receipts for c in r.codes]
        assert lines[-1].endswith(probe.decode()), vector["id"]
        assert all(not r.warnings for r in receipts), (vector["id"], receipts)
        if "qr_payload" in expected:
            assert codes == [Code("qr", expected.pop("qr_payload"))], vector["id"]
        if "barcode_data" in expected:
            symbology = expected.pop("barcode_type").lower()
            assert codes == [Code(symbology, expected.pop("barcode_data"))], vector["id"]
        if "text" in expected:
            assert lines[0] == expected.pop("text") + ("end" if lines[0] == lines[-1] else ""), vector["id"]
        if "text_cp437" in expected:
            assert lines[0] == expected.pop("text_cp437"), vector["id"]
        if vector["id"] == "pe-cut-full-feed":
            assert receipts[0].ended_by == "end" and not codes  # the cut ended an empty receipt
        expected.pop("kanji_mode", None)  # shown by the decoded text above
        assert set(expected) <= NOT_ON_PAPER, vector["id"]


# -- hand-built streams -----------------------------------------------------------------------


def test_gbk_under_fs_ampersand_and_single_byte_after_fs_dot():
    name = "联华超市".encode("gbk")
    data = ESC + b"@" + FS + b"&" + name + b"\n" + FS + b"." + b"caf\x82\n" + CUT
    [receipt] = parse_stream(data)
    assert receipt.lines == ("联华超市", "café")


def test_esc_t_255_selects_gbk_and_gb18030_four_byte_characters_decode():
    text = "收银员 𠀀 €".encode("gb18030")  # a four-byte GB18030 character and the euro sign
    [receipt] = parse_stream(ESC + b"@" + ESC + b"t\xff" + text + b"\n" + CUT)
    assert receipt.lines == ("收银员 𠀀 €",)


def test_gbk_with_no_mode_command_reads_as_chinese_like_a_chinese_printer_after_power_up():
    data = ESC + b"@" + "合计: 12.50".encode("gbk") + b"\r\n" + CUT
    assert parse_stream(data)[0].lines == ("合计: 12.50",)
    assert parse_stream(data, kanji="off")[0].lines != ("合计: 12.50",)


def test_a_code_page_chosen_on_one_receipt_leaves_the_next_ones_chinese_and_gbk_after_esc_t_0_reads():
    # A Chinese printer keeps double-byte mode under ESC t n: an English Z-report selecting PC437,
    # or a POS driver sending ESC t 0 at start-up, says nothing about the receipts after it.
    sale = "联华超市\n单号:DC-1\n合计:35.50\n".encode("gbk")
    z_report = ESC + b"@" + ESC + b"t\x00" + b"Z-REPORT / shift open\n" + GS + b"V\x00"
    receipts = parse_stream(z_report + ESC + b"@" + sale + CUT + ESC + b"@" + sale + CUT)
    chinese = ["联华超市", "单号:DC-1", "合计:35.50"]
    assert texts(receipts) == [["Z-REPORT / shift open"], chinese, chinese]
    [receipt] = parse_stream(ESC + b"@" + ESC + b"t\x00" + sale + CUT)
    assert receipt.lines == ("联华超市", "单号:DC-1", "合计:35.50")
    # A page chosen before a cut is still the printer's page on the next receipt (no reset between).
    epson = ESC + b"t\x10" + b"caf\xe9\n" + CUT + b"d\xe9j\xe0\n" + CUT
    assert texts(parse_stream(epson)) == [["café"], ["déjà"]]


def test_code_page_chosen_later_in_the_receipt_decides_earlier_text():
    # escpos-php prints PC437 text first and switches with ESC t only when it needs another page.
    data = b"jordb\x91r " + ESC + b"t\x10" + b"d\xe9j\xe0\n" + CUT
    assert parse_stream(data)[0].lines == ("jordbær déjà",)


def test_commands_straddling_reads_and_payloads_that_look_like_commands():
    raster = GS + b"v0\x00\x02\x00\x03\x00" + b"\x1b@\x1dV\x00\n"  # 2 x 3 bytes of image data
    qr = b"https://m.example.cn/\x1dV\x00?q=1"
    qr_store = GS + b"(k" + bytes([len(qr) + 3, 0]) + b"1P0" + qr
    qr_print = GS + b"(k\x03\x001Q0"
    image = b"0p0\x01\x011" + (8).to_bytes(2, "little") + (3).to_bytes(2, "little") + b"\x1b@\x0a"  # 8 x 3 dots
    big = GS + b"8L" + len(image).to_bytes(4, "little") + image
    data = ESC + b"@" + b"Logo" + raster + b"\n" + qr_store + qr_print + big + b"Thanks\n" + CUT
    expected = parse_stream(data)
    assert texts(expected) == [["Logo", "Thanks"]]
    assert expected[0].codes == (Code("qr", qr.decode()),)
    assert expected[0].images == 1
    for size in range(1, 8):
        assert fed_in_chunks(data, size) == expected


def test_receipts_split_by_cut_reset_and_idle_and_streams_without_either():
    parser = EscposParser()
    out = parser.feed(b"one\n" + CUT + b"two\n" + ESC + b"@" + b"three\n")
    assert texts(out) == [["one"], ["two"]]
    assert [r.ended_by for r in out] == ["cut", "reset"]
    assert parser.feed(b"still three\n") == []
    [third] = parser.idle()
    assert third.lines == ("three", "still three") and third.ended_by == "idle"
    assert parser.idle() == []  # nothing printed since
    parser.feed(b"four\n")
    [fourth] = parser.close()
    assert fourth.lines == ("four",) and fourth.ended_by == "end"
    assert (third.start, third.end, fourth.start) == (out[1].end, fourth.start, third.end)


def test_partial_cuts_and_cut_with_feed_end_receipts():
    data = b"a\n" + ESC + b"i" + b"b\n" + ESC + b"m" + b"c\n" + GS + b"V\x01" + b"d\n" + GS + b"VA\x10"
    assert texts(parse_stream(data)) == [["a"], ["b"], ["c"], ["d"]]


def test_line_ends_cr_lf_cr_alone_and_print_and_feed():
    data = b"a\r\nb\rc\n\n" + b"d" + ESC + b"d\x03" + b"e" + ESC + b"J\x10" + b"f\n"
    assert texts(parse_stream(data)) == [["a", "b", "c", "", "d", "e", "f"]]


def test_column_gaps_tabs_and_leading_and_trailing_blank_lines():
    data = b"\n\n  name" + ESC + b"$\x00\x01" + b"2.00\tx  \n\n\n"
    assert texts(parse_stream(data)) == [["  name 2.00\tx"]]


def test_international_character_set_china_prints_yuan_for_dollar():
    data = ESC + b"R\x0f" + b"$12.50 \\ " + ESC + b"R\x08" + b"\\3\n"
    assert parse_stream(data)[0].lines == ("¥12.50 \\ ¥3",)


def test_user_defined_glyphs_are_skipped_and_print_as_unknown():
    # ESC & y c1 c2, then for each character x and y * x bytes: here one 12 x 24-dot "A".
    define = ESC + b"&\x03AA" + bytes([12]) + b"\x1b@\n" * 12
    data = define + ESC + b"%\x01" + b"xAy" + ESC + b"%\x00" + b"A\n"
    [receipt] = parse_stream(data)
    assert receipt.lines == ("x\ufffdyA",)
    assert receipt.warnings == ("undecodable_text",)
    kanji_glyph = FS + b"2\xfe\xa1" + bytes(72)
    assert parse_stream(kanji_glyph + b"ok\n")[0].lines == ("ok",)


def test_bit_image_esc_star_and_nv_images_are_skipped():
    esc_star = ESC + b"*\x21\x02\x00" + b"\n\x1b@" * 2  # 24-dot double density: 3 bytes per column
    nv = FS + b"q\x01\x01\x00\x01\x00" + b"\x1d" * 8
    assert texts(parse_stream(b"a" + esc_star + nv + b"b\n")) == [["ab"]]


def test_barcodes_function_a_and_b_and_esc_z_qr():
    data = GS + b"k\x02" + b"6901234567892\x00" + GS + b"kI\x04{C\x0c\x22" + ESC + b"Z\x00\x02\x04\x03\x00abc"
    [receipt] = parse_stream(data + b"x\n")
    assert receipt.codes == (Code("ean13", "6901234567892"), Code("code128", "1234"), Code("qr", "abc"))
    assert receipt.lines == ("x",)


def test_unknown_and_truncated_commands_are_noted_not_fatal():
    [receipt] = parse_stream(b"a" + ESC + b"\x01" + b"b\n" + GS + b"v0\x00\x10\x00\x01\x00")
    assert receipt.lines == ("ab",)
    assert receipt.warnings == ("unknown_command:ESC 01", "truncated_command")


def test_runaway_stream_without_line_ends_or_cuts_is_bounded():
    parser = EscposParser(max_receipt_bytes=25, max_line_bytes=10)
    out = parser.feed(b"x" * 25 + b"\n" + b"y\n")
    assert texts(out) == [["x" * 10, "x" * 10, "x" * 5]]
    assert out[0].ended_by == "limit" and out[0].warnings == ("line_too_long", "receipt_too_large")
    [rest] = parser.close()
    assert (rest.lines, rest.warnings, rest.start) == (("y",), ("receipt_too_large",), 25)


def test_a_receipt_of_2600_items_on_5200_lines_is_read_whole():
    lines = b"".join(b"item %04d\n      1    3.50    3.50\n" % n for n in range(2600))
    [receipt] = parse_stream(ESC + b"@" + lines + b"total 9100.00\n" + GS + b"V\x00")
    assert (len(receipt.lines), receipt.lines[-1], receipt.ended_by) == (5201, "total 9100.00", "cut")
    assert receipt.warnings == ()


def test_barcode_whose_nul_never_comes_ends_at_the_same_byte_however_the_stream_is_split():
    data = b"a\n" + GS + b"k\x04" + b"X" * 300 + b"\nb\n"
    expected = parse_stream(data)
    assert expected[0].lines == ("a", "X" * 45, "b")  # 255 bytes were the barcode's
    assert expected[0].warnings == ("unterminated_command",)
    for size in range(1, 8):
        assert fed_in_chunks(data, size) == expected


# -- garbage on the line ----------------------------------------------------------------------

# Commands declaring more data than any printer accepts (escpos_commands.py gives the bounds), each
# followed on the line by good receipts whose bytes the declared size would swallow.
IMPLAUSIBLE = {
    "GS 8 L": GS + b"8L\xff\xff\xff\xff0p",  # ~4 GB of graphics
    "GS v 0": GS + b"v0\x00\xff\xff\xff\xff",  # 65535 bytes x 65535 dots of raster
    "FS q": FS + b"q\xff",  # 255 NV images, the first header read from the next receipt
    "ESC *": ESC + b"*\x21\xff\xff",  # 65535 columns of 24-dot bit image
    "GS ( L": GS + b"(L\xff\xff0p",  # 65535 bytes of graphics whose image header is the next receipt
}
GOOD = b"".join(ESC + b"@" + f"receipt {n}\nTOTAL {n}.00\n".encode() + CUT for n in range(3))


@pytest.mark.parametrize("name", list(IMPLAUSIBLE))
def test_a_command_declaring_more_than_a_printer_accepts_is_garbage_and_what_follows_parses(name):
    alone = parse_stream(GOOD)
    head = ESC + b"@" + b"hello\n" + IMPLAUSIBLE[name]
    straight = parse_stream(head + GOOD)
    assert [r.lines[0] for r in straight] == ["hello", "receipt 0", "receipt 1", "receipt 2"]
    assert f"implausible_command:{name}" in straight[0].warnings
    assert [r.lines for r in straight[1:]] == [r.lines for r in alone]
    for size in range(1, 8):
        assert fed_in_chunks(head + GOOD, size) == straight, size

    # The same stream with the printer line going quiet after the garbage: the same receipts follow.
    parser = EscposParser()
    gapped = parser.feed(head) + parser.idle() + parser.feed(GOOD) + parser.close()
    assert gapped[1:] == straight[1:]
    assert gapped[0].ended_by == "idle"


def test_an_idle_gap_ends_a_command_whose_data_never_came():
    # A plausible raster (72 bytes x 100 dots) cut off after 10 bytes, then silence, then receipts.
    parser = EscposParser()
    out = parser.feed(ESC + b"@" + b"logo\n" + GS + b"v0\x00\x48\x00\x64\x00" + bytes(10))
    [cut_off] = parser.idle()
    assert cut_off.lines == ("logo",) and cut_off.warnings == ("truncated_command",)
    out += parser.feed(GOOD) + parser.close()
    assert [r.lines for r in out] == [r.lines for r in parse_stream(GOOD)]
    # A command header split by the gap is dropped too: its first bytes start no command later.
    parser = EscposParser()
    parser.feed(b"x\n" + GS + b"v0")
    assert parser.idle()[0].warnings == ("truncated_command",)
    assert [r.lines for r in parser.feed(GOOD)] == [r.lines for r in parse_stream(GOOD)]


def test_receipts_after_two_mib_of_line_noise_and_an_idle_gap_all_parse():
    noise = random.Random(2).randbytes(2 * 1024 * 1024)
    parser = EscposParser()
    parser.feed(ESC + b"@" + b"hello\n" + noise)
    parser.idle()
    assert [r.lines for r in parser.feed(GOOD) + parser.close()] == [r.lines for r in parse_stream(GOOD)]


def test_block_headers_beyond_the_bounds_reject_glyph_and_nv_image_definitions():
    # ESC & glyphs are at most 12 dots wide; FS q images at most 1023 bytes wide and 256 KiB in all.
    wide_glyph = ESC + b"&\x03AB" + bytes([12]) + b"\x00" * 36 + bytes([13])
    [receipt] = parse_stream(wide_glyph + b"ok\n")
    assert receipt.lines[-1].endswith("ok") and "implausible_command:ESC &" in receipt.warnings
    one_image = FS + b"q\x01" + b"\x01\x00\x01\x00" + b"\x1b@" * 4  # 1 x 1 bytes: 8 bytes of data
    assert parse_stream(one_image + b"ok\n")[0].lines == ("ok",)
    too_big = FS + b"q\x02" + b"\x01\x00\x01\x00" + bytes(8) + b"\xff\x03\xff\x00"  # 1023 x 255 x 8 > 256 KiB
    [receipt] = parse_stream(too_big + b"ok\n")
    assert receipt.lines[-1].endswith("ok") and receipt.warnings[0] == "implausible_command:FS q"


# -- size ---------------------------------------------------------------------------------------


def test_a_receipt_past_its_size_limit_is_cut_off_and_the_stream_picks_up_at_the_next_receipt():
    big = ESC + b"@" + b"head\n" + b"A" * 3000 + b"\n\n" + b"B" * 3000 + GS + b"k\x04" + b"123\x00" + b"tail\n"
    data = big + GOOD
    cut_off, piece, *rest = parse_stream(data, max_receipt_bytes=4096, max_line_bytes=1000)
    assert cut_off.warnings == ("line_too_long", "receipt_too_large")
    assert cut_off.lines[0] == "head" and cut_off.lines[-1].startswith("B") and not cut_off.codes
    assert (cut_off.ended_by, cut_off.end) == ("limit", 4096)  # at its printer bytes' limit
    assert piece.warnings[0] == "receipt_too_large" and piece.lines[-1].endswith("tail") and piece.codes
    assert (piece.start, piece.ended_by, piece.end) == (4096, "reset", len(big))  # to where the next starts
    assert [r.lines for r in rest] == [r.lines for r in parse_stream(GOOD)]
    for size in range(1, 8):
        want = [cut_off, piece, *rest]
        assert fed_in_chunks(data, size, max_receipt_bytes=4096, max_line_bytes=1000) == want, size


def test_a_stream_that_never_ends_its_receipt_holds_bounded_memory_in_pieces_of_its_limit():
    parser = EscposParser()
    assert parser.feed(ESC + b"@") == []
    pieces = []
    for _ in range(64):  # 4 MiB of text without a line feed, a cut or a reset
        pieces += parser.feed(b"A" * 65536)
    pieces += parser.idle()
    assert [p.ended_by for p in pieces] == ["limit"] * 4 + ["idle"]
    assert all("receipt_too_large" in p.warnings for p in pieces)
    assert [p.end - p.start for p in pieces[:4]] == [MAX_RECEIPT_BYTES] * 4
    assert [r.lines for r in parser.feed(GOOD)] == [r.lines for r in parse_stream(GOOD)]


def test_code_page_switches_around_every_character_count_against_the_limit():
    [receipt] = parse_stream((ESC + b"t\x00x" + ESC + b"t\x02y") * 100_000)
    assert "receipt_too_large" in receipt.warnings
    assert len(receipt.text) < KEPT_PER_BYTE * MAX_RECEIPT_BYTES // 64  # each switch costs a segment
