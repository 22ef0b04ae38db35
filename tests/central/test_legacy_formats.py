"""The forms real member exports use: dates, phones, genders, names, encodings, delimiters."""

from __future__ import annotations

import codecs
from datetime import date

import pytest

from central.sources.legacy_formats import (
    FormatError,
    clean_phone,
    clean_text,
    detect_encoding,
    full_name,
    name_key,
    parse_date,
    parse_gender,
    sniff_delimiter,
)
from tests.central.sources_support import default_registry

TODAY = date(2026, 11, 30)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2024/3/5", date(2024, 3, 5)),
        ("2024-03-05", date(2024, 3, 5)),
        ("2024.3.5", date(2024, 3, 5)),
        ("20240305", date(2024, 3, 5)),
        ("2024年3月5日", date(2024, 3, 5)),
        ("２０２４年３月５日", date(2024, 3, 5)),
        ("2024-03-05 00:00:00", date(2024, 3, 5)),
        ("2024-03-05T08:30", date(2024, 3, 5)),
        ("5-Mar-2024", date(2024, 3, 5)),
        ("05 March 2024", date(2024, 3, 5)),
        ("Mar 5, 2024", date(2024, 3, 5)),
        ("March 5th 2024", date(2024, 3, 5)),
        ("31/12/1985", date(1985, 12, 31)),
        ("12/31/1985", date(1985, 12, 31)),
        ("45356", date(2024, 3, 5)),
        ("45356.0", date(2024, 3, 5)),
        (" 1988-02-29 ", date(1988, 2, 29)),
    ],
)
def test_dates_in_export_forms(raw, expected):
    assert parse_date(raw, today=TODAY) == expected


@pytest.mark.parametrize(
    ("raw", "order", "expected"),
    [("05/03/2024", "dmy", date(2024, 3, 5)), ("05/03/2024", "mdy", date(2024, 5, 3))],
)
def test_an_order_settles_ambiguous_dates(raw, order, expected):
    assert parse_date(raw, order=order, today=TODAY) == expected


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("05/03/2024", "ambiguous_date"),
        ("2024-02-30", "invalid_date"),
        ("1990-13-01", "invalid_date"),
        ("5-Foo-2024", "invalid_date"),
        ("yesterday", "invalid_date"),
        ("", "invalid_date"),
        ("1850-01-01", "implausible_date"),
        ("2031-01-01", "implausible_date"),
        ("05/03/24", "invalid_date"),
    ],
)
def test_unreadable_dates_have_a_reason(raw, code):
    with pytest.raises(FormatError) as info:
        parse_date(raw, today=TODAY)
    assert info.value.code == code


@pytest.mark.parametrize(
    "raw",
    [
        "+86 138 0013 9001",
        "86-13800139001",
        "+86-138-0013-9001",
        "(+86)13800139001",
        "（+86）13800139001",
        "0086 13800139001",
        "138-0013-9001",
        "１３８００１３９００１",
        "13800139001.0",
        "tel:13800139001",
        "手机：13800139001",
    ],
)
def test_phones_in_export_forms_normalize_to_one_value(raw):
    assert default_registry().normalize("phone", clean_phone(raw), None) == "+8613800139001"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("男", "male"),
        ("M", "male"),
        ("1", "male"),
        ("女", "female"),
        ("f", "female"),
        ("2", "female"),
        ("未知", ""),
        ("0", ""),
        ("", ""),
    ],
)
def test_genders(raw, expected):
    assert parse_gender(raw) == expected


def test_an_unknown_gender_is_refused():
    with pytest.raises(FormatError):
        parse_gender("x")


def test_names_compose_and_compare():
    assert full_name("", "芳", "王") == "王芳"
    assert full_name("", "Fang", "Wang") == "Fang Wang"
    assert full_name(" 王  芳 ", "x", "y") == "王 芳"
    assert name_key("王 芳") == name_key("王芳") == name_key("王·芳")
    assert name_key("ＷＡＮＧ Fang") == name_key("wang-fang")


def test_format_characters_are_dropped_from_values_and_names():
    assert clean_text("\ufeff张\u200b三\u202c ") == "张三"
    assert name_key("张\u200b三") == name_key("\u202e张三") == name_key("张三")
    assert full_name("\u200b", "三", "张") == "张三"
    assert full_name("\u200b\u200d", "", "") == ""


@pytest.mark.parametrize(
    ("encoded", "expected"),
    [
        ("姓名,手机\n王芳,13800139001\n".encode(), "utf-8"),
        (codecs.BOM_UTF8 + "姓名,手机\n".encode(), "utf-8-sig"),
        ("姓名,手机\n王芳,13800139001\n".encode("gb18030"), "gb18030"),
        ("姓名\t手机\n".encode("utf-16"), "utf-16"),
    ],
)
def test_encodings_are_detected(tmp_path, encoded, expected):
    path = tmp_path / "f.csv"
    path.write_bytes(encoded)
    assert detect_encoding(path) == expected


def test_delimiters_are_sniffed_from_the_header():
    assert sniff_delimiter("a,b,c\n") == ","
    assert sniff_delimiter("a\tb\tc\n") == "\t"
    assert sniff_delimiter("a;b;c\n") == ";"
    assert sniff_delimiter("name\n") == ","
