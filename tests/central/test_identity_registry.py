"""The registry's normalizers and its TOML configuration, errors reported with file, line and key."""

from __future__ import annotations

import random

import phonenumbers
import pytest

from central.identity import normalizers
from central.identity.registry import RegistryError, default_registry, parse_registry


def slow_phone(raw: str) -> str | None:
    try:
        number = phonenumbers.parse(raw, "CN")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number) or phonenumbers.number_type(number) not in normalizers._PERSONAL_TYPES:
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def test_the_mainland_fast_path_agrees_with_a_full_parse():
    rng = random.Random(5)
    for _ in range(3000):
        raw = f"1{rng.randrange(10**10):010d}"
        assert normalizers.phone(raw) == slow_phone(raw), raw


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("13812345678", "+8613812345678"),
        ("+86 138-1234-5678", "+8613812345678"),
        ("0086 13812345678", "+8613812345678"),
        ("86-138-1234-5678", "+8613812345678"),
        ("(138) 1234 5678", "+8613812345678"),
        ("+852 9123 4567", "+85291234567"),
        ("+1 650 253 0000", "+16502530000"),
        ("021-62345678", "+862162345678"),
        ("12345", None),
        ("1381234567", None),
        ("call me", None),
    ],
)
def test_phone_forms(raw, expected):
    assert normalizers.phone(raw) == expected


@pytest.mark.parametrize(
    ("kind", "raw", "reason"),
    [
        ("phone", "13800138000", "blocked"),
        ("phone", "13888888888", "same_digits"),
        ("phone", "13800000000", "same_digits"),
        ("phone", "13123456789", "sequential"),
        ("phone", "NULL", "placeholder"),
        ("member_card", "0000", "same_digits"),
        ("member_card", "987654", "sequential"),
        ("member_id", "anonymous", "placeholder"),
        ("email", "not-an-email", "invalid"),
        ("app_user_id", "u123", "missing_app_id"),
    ],
)
def test_unusable_values_and_their_reasons(kind, raw, reason):
    assert default_registry().check(kind, raw) == (None, reason)


def test_a_registry_file_changes_defaults_and_declares_types():
    registry = parse_registry(
        """
[review]
suspicious_per_day = 9

[types.phone]
limit = 1
blocked_patterns = ['^\\+86170']

[types.loyalty_no]
normalizer = "digits"
priority = 75
unique = true
""",
        "r.toml",
    )
    assert registry.suspicious_per_day == 9 and registry.suspicious_total == 50
    assert registry.types["phone"].limit == 1 and registry.types["phone"].window_days == 365
    assert registry.check("phone", "17055501234") == (None, "blocked")
    assert registry.check("phone", "13800138000") == (None, "blocked")  # the defaults stay
    assert registry.normalize("loyalty_no", "LN-0042-7731") == "00427731"
    assert registry.types["loyalty_no"].unique


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[types.phone]\nlimit = 0\n", "r.toml:2: types.phone.limit: must be an integer of at least 1"),
        ("[types.fax]\npriority = 3\n", "r.toml:1: types.fax: a custom type needs a normalizer"),
        ('[types.x]\nnormalizer = "soundex"\n', "r.toml:2: types.x.normalizer: unknown normalizer"),
        ("[types.phone]\nlimt = 2\n", "r.toml:2: types.phone.limt: unknown key"),
        ("[types.phone]\nblocked_patterns = ['(']\n", "r.toml:2: types.phone.blocked_patterns: bad regular expression"),
        ('[blocked]\nstaff_phones = ["x"]\n', "r.toml:2: blocked.staff_phones: 'x' is not a phone number"),
        ("[review]\nsuspicious_total = 5\n\n[revue]\n", "r.toml:4: revue: unknown section"),
        ("[types.phone]\nlimit = 2\n[types.phone.extra]\nx = 1\n", "r.toml:3: types.phone.extra: unknown key"),
        ("[[sources]]\npriority = 1\n", "r.toml:1: sources: must be a table"),
        ("revue.x = 1\n", "r.toml:1: revue: unknown section"),
        ("[types.phone]\nlimit = 2\n[revue]\n", "r.toml:3: revue: unknown section"),
        ("[types.phone\n", "r.toml:1: not valid TOML"),
        ("[types.member_id]\nweak = true\n", "r.toml:2: types.member_id.weak: a type cannot be both unique and weak"),
        (
            '[matching]\nplaceholder_birthdays = ["1970-1-1"]\n',
            "r.toml:2: matching.placeholder_birthdays: '1970-1-1' is neither a date",
        ),
        (
            '[matching]\nplaceholder_birthdays = ["--02-30"]\n',
            "r.toml:2: matching.placeholder_birthdays: '--02-30' is not",
        ),
        ("[matching]\nblock_limit = 1\n", "r.toml:2: matching.block_limit: must be an integer of at least 2"),
        ("[matching]\nsuggestions = 2\n", "r.toml:2: matching.suggestions: unknown key"),
    ],
)
def test_registry_errors_name_the_line_and_key(text, message):
    with pytest.raises(RegistryError) as caught:
        parse_registry(text, "r.toml")
    assert str(caught.value).startswith(message)


def test_matching_defaults_and_a_file_that_changes_them():
    defaults = default_registry()
    assert [defaults.placeholder_birthday(d) for d in ("1970-01-01", "1900-01-01", "2000-01-01")] == [True] * 3
    assert not defaults.placeholder_birthday("1985-01-01")  # real people are born on 1 January
    assert (defaults.block_limit, defaults.suggestions_per_customer) == (30, 3)
    changed = parse_registry(
        '[matching]\nplaceholder_birthdays = ["--01-01", "1999-09-09"]\n'
        "block_limit = 50\nsuggestions_per_customer = 5\n"
    )
    assert changed.placeholder_birthday("1985-01-01") and changed.placeholder_birthday("1999-09-09")
    assert not changed.placeholder_birthday("1970-06-01")
    assert (changed.block_limit, changed.suggestions_per_customer) == (50, 5)


def test_the_sequential_pattern_finds_exactly_the_runs_of_nine():
    rng = random.Random(11)
    values = [run + tail for run in normalizers._SEQUENTIAL_9 for tail in ("", "7", "123")]
    values += ["".join(rng.choice("0123456789") for _ in range(rng.randrange(15))) for _ in range(5000)]
    values += ["1" + "".join(rng.choice("0123456789"[: rng.randrange(1, 11)]) for _ in range(10)) for _ in range(3000)]
    for value in values:
        by_window = any(value[i : i + 9] in normalizers._SEQUENTIAL_9 for i in range(len(value) - 8))
        assert bool(normalizers._SEQUENTIAL.search(value)) == by_window, value


def test_an_events_usable_identifiers_are_checked_once_per_combination():
    registry = default_registry()
    identifiers = (
        ("device_hash", "ABCDEF0123456789"),
        ("phone", "138 1234 5678"),
        ("member_card", "c-2001"),
        ("phone", "13888888888"),
        ("app_user_id", "u1"),
        ("nickname", "x"),
        ("email", "A@Example.com"),
    )
    strong, weak, reasons = registry.usable(identifiers, "shop")
    assert strong == (
        ("member_card", "C2001"),
        ("app_user_id", "shop:u1"),
        ("phone", "+8613812345678"),
        ("email", "a@example.com"),
    )
    assert weak == (("device_hash", "abcdef0123456789"),)
    assert reasons == ("same_digits", "unknown_type")
    # The answer for a combination is kept: the same event again is not normalized value by value.
    registry._memo.clear()
    assert registry.usable(identifiers, "shop") == (strong, weak, reasons)
    assert not registry._memo
    # Values that are not text cannot be kept by their combination; they are still refused as placeholders.
    assert registry.usable((("phone", ["13812345678"]),), None) == ((), (), ("placeholder",))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "raw",
    [
        "13８12345678",  # one full-width digit, as an input method in full-width mode types it
        "１３８１２３４５６７８",
        "138١٢٣٤٥٦٧٨",  # Arabic-Indic
        "১৩৮১২৩৪৫৬৭৮",  # Bengali
        "+８６ 138 1234 5678",
        "86١٣٨١٢٣٤٥٦٧٨",
    ],
)
def test_a_phone_in_other_digits_is_the_phone_in_ascii_digits(raw):
    assert normalizers.phone(raw) == "+8613812345678"


def test_a_blocked_or_staff_phone_in_other_digits_is_still_refused():
    registry = parse_registry('[blocked]\nstaff_phones = ["13912345000"]\n')
    assert registry.check("phone", "138٠٠١٣٨٠٠٠") == (None, "blocked")  # 13800138000
    assert registry.check("phone", "１３８００１３８０００") == (None, "blocked")
    assert registry.check("phone", "139١٢٣٤٥٠٠٠") == (None, "staff_phone")
    assert registry.check("phone", "138٨٨٨٨٨٨٨٨") == (None, "same_digits")


@pytest.mark.parametrize(
    ("kind", "raw", "expected"),
    [
        ("member_card", "Ｃ－２００１", "C2001"),
        ("member_card", "C٢٠٠١", "C2001"),
        ("member_card", "straße01", None),  # not turned into STRASSE01 by upper()
        ("member_id", "ＶＩＰ００４２", "VIP0042"),
        ("member_id", "VIP٠٠٤٢", "VIP0042"),
        ("email", "ａｂｃ＠ｅｘａｍｐｌｅ．ｃｏｍ", "abc@example.com"),
        ("email", "abc@example.com", "abc@example.com"),
        ("wechat_unionid", "o６_bmjrPTlm6_2sgVt7hMZOPfL2M", None),  # machine-made: ASCII or nothing
    ],
)
def test_identifiers_are_read_in_ascii_whatever_digits_and_width_they_are_typed_in(kind, raw, expected):
    assert default_registry().normalize(kind, raw) == expected


def test_the_digits_normalizer_keeps_only_ascii_digits():
    assert normalizers.digits("LN-٠٠٤٢-७७३१") == "00427731"
    assert normalizers.digits("１２３４") == "1234"
    assert default_registry().check("member_card", "١٢٣٤٥٦") == (None, "sequential")


@pytest.mark.parametrize(
    ("kind", "raw", "expected"),
    [
        ("member_id", "\u202dVIP\u200b0042", "VIP0042"),
        ("member_id", "\u200b\u200d", None),
        ("email", "abc\u200b@example.com", "abc@example.com"),
        ("member_card", "\ufeffC2001", "C2001"),
    ],
)
def test_invisible_format_characters_are_no_part_of_an_identifier(kind, raw, expected):
    assert default_registry().normalize(kind, raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "021-63456789 ext 801",
        "021-63456789 ext 802",
        "021-63456789#801",
        "021-63456789 x801",
        "+86 21 6345 6789;ext=801",
        "13812345678 ext 1",
        "021-63456789-801",  # read by libphonenumber as one (invalid) number, refused already
    ],
)
def test_a_phone_with_an_extension_is_no_identifier(raw):
    assert default_registry().check("phone", raw) == (None, "invalid")
    assert normalizers.phone("021-63456789") == "+862163456789"  # the switchboard alone still is
