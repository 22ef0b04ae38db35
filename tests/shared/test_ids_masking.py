"""UUIDv7 generation, masking and identifier normalization."""

from __future__ import annotations

import uuid

import pytest

from shared.identifiers import normalize_card, normalize_phone
from shared.ids import UUID7
from shared.masking import mask_card, mask_phone, mask_text


def test_uuid7_is_version_7_time_ordered_and_monotonic_in_one_millisecond():
    gen = UUID7(clock_ms=lambda: 1_795_000_000_000)
    ids = [gen() for _ in range(5000)]  # more than the 12-bit counter holds
    assert ids == sorted(ids)
    assert len(set(ids)) == 5000
    first = uuid.UUID(ids[0])
    assert first.version == 7
    assert first.int >> 80 == 1_795_000_000_000


def test_uuid7_never_goes_backwards_when_the_clock_does():
    times = iter([2000, 1000, 1000, 3000])
    gen = UUID7(clock_ms=lambda: next(times))
    ids = [gen() for _ in range(4)]
    assert ids == sorted(ids)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("13812345678", "13812345678"),
        ("+86 138-1234-5678", "13812345678"),
        ("0086 13812345678", "13812345678"),
        ("8613812345678", "13812345678"),
        ("(138) 1234 5678", "13812345678"),
        ("+852 9123 4567", "+85291234567"),
        ("12812345678", None),
        ("1381234567", None),
        ("hello", None),
    ],
)
def test_phone_normalization(raw, expected):
    assert normalize_phone(raw) == expected


def test_card_normalization():
    assert normalize_card(" vip-000 1234 ") == "VIP0001234"
    assert normalize_card("ab") is None
    assert normalize_card("会员") is None


def test_masks():
    assert mask_phone("13812345678") == "138****5678"
    assert mask_phone("+85291234567") == "+852****4567"
    assert mask_phone("") == ""
    assert mask_card("VIP0001234") == "******1234"
    assert mask_card("123") == "***"


def test_mobiles_inside_free_text_are_masked():
    assert mask_text("请回电 13812345678 或 139-1234-5679") == "请回电 138****5678 或 139-****-5679"
    assert mask_text("139 1234 5679") == "139 **** 5679"
    assert mask_text("R2026113812345678") == "R20261138****5678"  # inside a longer run too
    assert mask_text("") == "" and mask_text(None) == "" and mask_text("12345678901") == "12345678901"


def test_mobiles_written_with_dots_slashes_or_full_width_characters_are_masked_in_text():
    assert mask_text("call me 139.0000.1111 or 139/0000/1111") == "call me 139.****.1111 or 139/****/1111"
    assert mask_text("手机：１３９　１２３４　５６７９") == "手机：１３９　****　５６７９"
    assert mask_text("139．1234．5679、139－1234－5679") == "139．****．5679、139－****－5679"
    assert mask_text("139-1234 5679") == "139-**** 5679"
    assert mask_text("2026.11.30 12:00") == "2026.11.30 12:00"  # dates and times are not mobiles
