"""Card numbers are redacted before anything touches disk; look-alikes are left alone."""

from __future__ import annotations

import pytest

from edge_agent.privacy import TOKEN, PanRedactor, luhn_valid

KEY = b"k" * 32


@pytest.mark.parametrize(
    "pan",
    [
        "4111111111111111",
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "5555555555554444",
        "378282246310005",
        "3782 822463 10005",
        "6212345678901232",  # a UnionPay-style 16-digit number
        "6212 3456 7890 1234 569",
    ],
)
def test_luhn_valid_card_numbers_are_replaced_by_last_four_and_a_keyed_hash(pan):
    digits = pan.replace(" ", "").replace("-", "")
    assert luhn_valid(digits)
    out = PanRedactor(KEY).text(f"paid with {pan} thanks")
    assert digits not in out.replace(" ", "").replace("-", "")
    assert f"…{digits[-4:]} #" in out


@pytest.mark.parametrize(
    "text",
    [
        "13812345678",  # a phone is 11 digits
        "4111111111111112",  # fails Luhn
        "2026-11-23 13812345678",  # a date beside a phone is not a card
        "S001-261123-00042",
        "123456789012",  # 12 digits
        "41111111111111111111",  # 20 digits
    ],
)
def test_look_alikes_are_left_alone(text):
    assert PanRedactor(KEY).text(text) == text


def test_same_card_gives_the_same_token_and_payloads_are_walked():
    redactor = PanRedactor(KEY)
    out = redactor.payload({"a": "4111111111111111", "b": ["x 4111-1111-1111-1111"], "n": 5})
    token = out["a"]
    assert out["b"] == [f"x {token}"]
    assert out["n"] == 5
    assert redactor.redacted == 2
    assert PanRedactor(b"j" * 32).text("4111111111111111") != token


def test_raw_bytes_in_gbk_are_redacted_without_decoding():
    raw = "卡号 4111111111111111".encode("gbk")
    out = PanRedactor(KEY).raw(raw)
    assert b"4111111111111111" not in out
    assert out.startswith("卡号 ".encode("gbk"))


def test_the_token_keeps_no_digits_but_the_last_four_so_no_scanner_flags_it():
    redactor = PanRedactor(KEY)
    for n in range(2000):  # hex hashes of 16 characters were all digits about once in 2,000
        pan = f"62220212{n:07d}"
        pan += str(next(d for d in range(10) if luhn_valid(pan + str(d))))
        token = redactor.text(pan)
        assert TOKEN.fullmatch(token), token
        assert sum(c.isdigit() for c in token) == 4
        assert redactor.text(token) == token


# Card numbers as tills and input methods really print them: full-width digits (a Chinese input
# method), ideographic spaces, and '.', '*', '/', '_' or one space per digit as separators.
PRINTED_PANS = [
    ("银行卡号:６２２２０２１２３４５６７８９０１２８", "6222021234567890128"),
    ("卡号4111.1111.1111.1111", "4111111111111111"),
    ("卡号 6222\u30000212\u30003456\u30007890128", "6222021234567890128"),
    ("4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1", "4111111111111111"),
    ("4111*1111*1111*1111", "4111111111111111"),
    ("卡号:4111/1111/1111/1111 ok", "4111111111111111"),
    ("卡号:5555_5555_5555_4444", "5555555555554444"),
    ("卡号:３７８２−８２２４６３−１０００５", "378282246310005"),  # full-width Amex 4-6-5, minus signs
    ("卡号：６２２２　０２１２　３４５６　７８９０　１２８", "6222021234567890128"),
]


def folded(text: str) -> str:
    """``text`` with every decimal digit as ASCII and everything else dropped."""
    return "".join(str(int(c)) for c in text if c.isdecimal())


@pytest.mark.parametrize(("printed", "pan"), PRINTED_PANS)
def test_full_width_digits_and_other_separators_are_redacted_in_text(printed, pan):
    assert luhn_valid(pan)
    out = PanRedactor(KEY).text(printed)
    assert pan not in folded(out)
    assert TOKEN.search(out) and f"…{pan[-4:]} #" in out  # the last four always in ASCII
    assert out.startswith(printed[: len(printed) - len(printed.lstrip("银行卡号:： "))])


@pytest.mark.parametrize(("printed", "pan"), PRINTED_PANS)
@pytest.mark.parametrize("encoding", ["gbk", "gb18030", "utf-8"])
def test_full_width_digits_and_other_separators_are_redacted_in_raw_bytes(printed, pan, encoding):
    try:
        raw = printed.encode(encoding)
    except UnicodeEncodeError:  # GBK has no minus sign: that line cannot be printed in it
        pytest.skip(f"{printed!r} has no {encoding} form")
    out = PanRedactor(KEY).raw(raw)
    assert pan not in folded(out.decode(encoding, "replace").replace("…", " "))
    assert f"…{pan[-4:]} #".encode() in out


@pytest.mark.parametrize(
    "text",
    [
        "2026.11.23 13812345678",  # a date with dots beside a phone
        "2026/11/23 13:05 13812345678",
        "１３８１２３４５６７８",  # a full-width phone is 11 digits
        "4111.1111.1111.1112",  # fails Luhn
        "4111-1111 1111-1111",  # two different separators: not one number
        "1 2 3 4 5 6 7 8 9 0 1 2 3 4",  # a run of single digits that fails Luhn
        "合计: 1,234.50  找零: 0.50",
    ],
)
def test_look_alikes_with_the_new_separators_are_left_alone(text):
    assert PanRedactor(KEY).text(text) == text
    assert PanRedactor(KEY).raw(text.encode("utf-8")) == text.encode("utf-8")


def test_a_quarantined_line_keeps_no_full_width_card_number(tmp_path):
    from edge_agent.sources.pos_streams import LineStream

    line = "卡号 ６２２２　０２１２　３４５６　７８９０　１２８ 未知记录\n".encode("gbk")
    stream = LineStream(0, redactor=PanRedactor(KEY), encoding="gbk", clock=lambda: 1_780_000_000.0)
    [record] = stream.feed(line)
    assert record.reason and "6222021234567890128" not in folded(record.raw.decode("gbk", "replace"))
    assert b"\xe2\x80\xa60128 #" in record.raw
