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
