"""The card-number scanner the privacy tests rely on: it finds card numbers, and only those."""

from __future__ import annotations

from tests.card_scan import card_numbers, leaks


def test_a_card_number_is_found_with_or_without_separators():
    assert card_numbers("卡号 4111 1111 1111 1111 已付") == ["4111 1111 1111 1111"]
    assert card_numbers("pan=4111-1111-1111-1111;") == ["4111-1111-1111-1111"]
    assert card_numbers("ref.4111111111111111") == ["4111111111111111"]  # a point, but no decimal before it


def test_a_hex_digest_is_not_a_card_number():
    # An audit row's hash as central stores it: the 15 decimal digits in its middle pass the Luhn check.
    row = "publish|*/member_beacons|{}|bb138f69a0392f059a044102904298777bced01170f0a1b2c3d4e5f60718293a4b5c"
    assert card_numbers(row)  # what the scan saw before digests were set aside
    assert leaks(row) == []
    assert leaks("+8613812345678") == []  # an E.164 phone number
    assert leaks("pan 4111111111111111 | " + "ab" * 32) == ["4111111111111111"]
