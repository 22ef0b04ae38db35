"""Receipt profiles: loading and validating TOML, and reading sales from receipt text."""

from __future__ import annotations

import pytest

from edge_agent.parsing.escpos import parse_stream
from edge_agent.parsing.receipt_profile import ProfileError, parse_profile
from edge_agent.parsing.receipt_sale import SaleError, read_sale
from edge_agent.receipt_reader import builtin_profiles, load_profiles

MINIMAL = """\
name = "test-shop"
require = ['^TOTAL']

[fields]
total = '^TOTAL\\s+(?P<value>[\\d.]+)$'
receipt_no = 'No\\.\\s*(?P<value>\\d+)'
paid = 'PAID\\s+(?P<value>[\\d.]+)'
change = 'CHANGE\\s+(?P<value>[\\d.]+)'

[fields.discount_total]
pattern = 'OFF\\s+(?P<value>-?[\\d.]+)'
collect = "sum"

[items]
start = '^-+$'
end = '^-+$'

[[items.layouts]]
lines = ['(?P<name>\\S.*?)\\s+(?P<qty>\\d+)\\s*x\\s*(?P<unit_price>[\\d.]+)\\s+(?P<amount>[\\d.]+)']
"""


def sale_of(text: str, profile_text: str = MINIMAL, **kw):
    return read_sale(text.splitlines(), [parse_profile(profile_text, "test.toml")], **kw)


def test_shipped_profiles_load():
    names = {p.name for p in builtin_profiles()}
    assert {"escpos-php-example", "cn-supermarket", "cn-convenience"} <= names


def test_the_sample_receipt_becomes_its_sale(samples_dir):
    data = (samples_dir / "escpos" / "escpos-php__receipt-with-logo.bin").read_bytes()
    [receipt] = parse_stream(data)
    sale = read_sale(receipt.lines, builtin_profiles())
    assert sale.as_dict() == {
        "profile": "escpos-php-example",
        "receipt_no": None,
        "datetime": "2015-04-06T14:56:25",
        "store_name": "ExampleMart Ltd.",
        "register": None,
        "cashier": None,
        "items": [
            {"name": "Example item #1", "sku": None, "qty": "1", "unit_price": "4.00", "amount": "4.00"},
            {"name": "Another thing", "sku": None, "qty": "1", "unit_price": "3.50", "amount": "3.50"},
            {"name": "Something else", "sku": None, "qty": "1", "unit_price": "1.00", "amount": "1.00"},
            {"name": "A final item", "sku": None, "qty": "1", "unit_price": "4.45", "amount": "4.45"},
        ],
        "discount_total": None,
        "tax_total": "1.30",
        "total": "14.25",
        "paid": None,
        "change": None,
        "payment_method": None,
        "tenders": [],
        "card_last4": None,
        "member_card": None,
        "member_phone": None,
        "warnings": [],
    }


GOOD = "No. 42\n-----\ntea 2 x 3.00 6.00\ncake 1 x 4.50 4.50\n-----\nOFF -0.50\nTOTAL 10.00\nPAID 20.00\nCHANGE 10.00\n"


def test_a_sale_that_adds_up_has_no_warnings():
    sale = sale_of(GOOD)
    assert (sale.receipt_no, sale.total, sale.discount_total, sale.paid, sale.change) == (
        "42",
        "10.00",
        "0.50",
        "20.00",
        "10.00",
    )
    assert [(i.name, i.qty, i.unit_price, i.amount) for i in sale.items] == [
        ("tea", "2", "3.00", "6.00"),
        ("cake", "1", "4.50", "4.50"),
    ]
    assert sale.warnings == ()


@pytest.mark.parametrize(
    ("change", "warning"),
    [
        ("TOTAL 10.00", "items_total_mismatch"),  # printed total 10.00 kept though items say 9.50
        ("CHANGE 10.00", "change_mismatch"),
        ("tea 2 x 3.00 6.00", "item_amount_mismatch"),
    ],
)
def test_a_sale_whose_arithmetic_does_not_add_up_is_kept_as_printed_with_a_warning(change, warning):
    broken = {
        "TOTAL 10.00": GOOD.replace("OFF -0.50", "OFF -1.00"),
        "CHANGE 10.00": GOOD.replace("CHANGE 10.00", "CHANGE 9.00"),
        "tea 2 x 3.00 6.00": GOOD.replace("tea 2 x 3.00 6.00", "tea 2 x 3.10 6.00"),
    }[change]
    sale = sale_of(broken)
    assert warning in sale.warnings
    assert sale.total == "10.00"  # never "fixed"


def test_receipts_no_profile_recognises_get_a_reason():
    with pytest.raises(SaleError) as caught:
        sale_of("hello\nworld\n")
    assert caught.value.reason == "no_profile_matched"
    with pytest.raises(SaleError) as caught:
        sale_of("hello\n", only="test-shop")
    assert caught.value.reason == "profile_not_matched:test-shop"
    with pytest.raises(SaleError) as caught:
        sale_of("TOTAL\n")
    assert caught.value.reason == "missing_field:total"


def test_field_rules_fallback_patterns_lines_sections_and_collect():
    profile = """\
name = "rules"
[fields]
total = ['^Due (?P<value>[\\d.]+)', '^Sum (?P<value>[\\d.]+)']
[fields.store_name]
line = -1
[fields.cashier]
pattern = 'by (?P<value>\\w+)'
collect = "last"
[fields.register]
pattern = 'reg (?P<value>\\d+)'
section = "footer"
[items]
start = '^ITEMS$'
end = '^END$'
[[items.layouts]]
lines = ['(?P<name>\\w+) (?P<amount>[\\d.]+)']
"""
    text = "reg 1\nby ann\nSum 3.00\nITEMS\nx 1.00\ny 2.00\nEND\nby bob\nreg 7\nDue 3.00\nBest Shop\n"
    sale = sale_of(text, profile)
    assert (sale.total, sale.store_name, sale.cashier, sale.register) == ("3.00", "Best Shop", "bob", "7")
    assert sale.warnings == ()
    assert sale_of(text.replace("Due", "Sum"), profile).total == "3.00"


@pytest.mark.parametrize(
    ("printed", "method"),
    [
        ("微信支付", "wechat"),
        ("支付宝", "alipay"),
        ("现金", "cash"),
        ("银行卡", "bank_card"),
        ("云闪付", "unionpay_qr"),
        ("储值卡", "stored_value"),
        ("WeChat Pay", "wechat"),
        ("数字人民币", "other"),
    ],
)
def test_payment_methods_are_normalised(printed, method):
    profile = MINIMAL.replace("[fields]\n", "[fields]\npayment_method = 'PAY (?P<value>.+)$'\n", 1)
    assert sale_of(f"TOTAL 1.00\nPAY {printed}\n", profile).payment_method == method


def test_datetime_rules_read_chinese_and_english_dates():
    profile = """\
name = "dates"
required = ["datetime"]
[fields]
datetime = [
  '(?P<year>\\d{4})年(?P<month>\\d{1,2})月(?P<day>\\d{1,2})日 (?P<hour>\\d+):(?P<minute>\\d\\d)',
  '(?P<day>\\d+) (?P<month>[A-Za-z]+) (?P<year>\\d\\d) (?P<hour>\\d+):(?P<minute>\\d\\d) (?P<ampm>AM|PM)',
]
"""
    assert sale_of("2026年1月5日 9:07\n", profile).datetime == "2026-01-05T09:07:00"
    assert sale_of("5 January 26 12:30 AM\n", profile).datetime == "2026-01-05T00:30:00"
    with pytest.raises(SaleError, match="missing_field:datetime"):
        sale_of("2026年13月5日 9:07\n", profile)


ERRORS = [
    ("name = 'x'\n[fields\n", 2, "invalid TOML"),
    ("require = []\n", 1, "name: required"),
    ("name = 'x'\ncolour = 'red'\n", 2, "colour: unknown key"),
    ("name = 'x'\n[fields]\ntotal = '(?P<value>[0-9'\n", 3, "fields.total: invalid regular expression"),
    ("name = 'x'\n[fields]\ntotal = '(?P<amount>.+)'\n", 3, "fields.total: unknown group (?P<amount>...)"),
    ("name = 'x'\n[fields]\n\ntotal = 'TOTAL'\n", 4, "fields.total: missing group(s) value"),
    ("name = 'x'\n[fields]\ntotl = '(?P<value>.+)'\n", 3, "fields.totl: unknown field"),
    ("name = 'x'\n[fields.cashier]\npattern = '(?P<value>.+)'\ncollect = 'sum'\n", 4, "fields.cashier.collect"),
    ("name = 'x'\n[fields.total]\nline = 1\nsection = 'middle'\n", 4, "fields.total.section: expected one of"),
    ("name = 'x'\n[payment_methods]\n'刷脸' = 'face'\n", 3, "payment_methods.刷脸: expected one of wechat"),
    (
        "name = 'x'\n[[items.layouts]]\nlines = ['(?P<name>.+) (?P<amount>.+)']\n"
        "[[items.layouts]]\nlines = ['(?P<qty>.+)']\n",
        5,
        "items.layouts[1].lines: an item needs (?P<name>...)",
    ),
    (
        "name = 'x'\n[[items.layouts]]\nlines = ['(?P<name>.+) (?P<amount>.+)', '(?P<name>.+)']\n",
        3,
        "group 'name' appears on two lines",
    ),
    ("name = 'x'\nrequired = ['total', 'tip']\n", 2, "required[1]: unknown field 'tip'"),
]


@pytest.mark.parametrize(("text", "line", "reason"), ERRORS)
def test_profile_errors_name_the_file_line_and_reason(text, line, reason):
    with pytest.raises(ProfileError) as caught:
        parse_profile(text, "shop.toml")
    assert caught.value.line == line, str(caught.value)
    assert reason in caught.value.reason, str(caught.value)
    assert str(caught.value).startswith(f"shop.toml:{line}:")


def test_regex_errors_point_at_the_column_in_the_pattern():
    with pytest.raises(ProfileError) as caught:
        parse_profile("name = 'x'\n[fields]\ntotal = 'ab(?P<value>c'\n", "shop.toml")
    # "total = '" is 9 characters; the unterminated group opens at position 2 of the pattern.
    assert (caught.value.line, caught.value.column) == (3, 12)


def test_a_technicians_profile_file_replaces_the_built_in_of_the_same_name(tmp_path):
    path = tmp_path / "shop.toml"
    path.write_text(MINIMAL.replace('name = "test-shop"', 'name = "cn-supermarket"'), encoding="utf-8")
    profiles = load_profiles([path])
    [mine] = [p for p in profiles if p.name == "cn-supermarket"]
    assert mine.source == str(path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ProfileError, match=r"no \*\.toml profiles"):
        load_profiles([tmp_path / "empty"])


def test_every_shipped_profile_is_package_data():
    import tomllib
    from fnmatch import fnmatch
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    patterns = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["edge_agent"]
    shipped = sorted(
        p.relative_to(repo / "edge_agent").as_posix() for p in (repo / "edge_agent" / "profiles").iterdir()
    )
    assert shipped and all(any(fnmatch(name, pattern) for pattern in patterns) for name in shipped)


def test_convenience_receipt_paid_with_two_tenders_paid_their_sum_without_a_change_warning():
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
        "现金:20.00",
        "找零:4.00",
    ]
    sale = read_sale(lines, builtin_profiles())
    assert (sale.profile, sale.total, sale.paid, sale.change) == ("cn-convenience", "36.00", "40.00", "4.00")
    assert sale.warnings == ()


def test_supermarket_receipt_paid_with_two_tenders_lists_both_and_keeps_the_first_as_payment_method():
    lines = [
        "联华超市(南京东路店)",
        "单号:SM-7",
        "收银员:张三",
        "日期:2026-11-23 10:15:00",
        "品名           数量   单价    金额",
        "海飞丝洗发水      1   35.50   35.50",
        "--------------------------------",
        "合计:35.50",
        "支付方式:组合支付",
        "支付宝:30.00",
        "储值卡:5.50",
    ]
    sale = read_sale(lines, builtin_profiles())
    assert (sale.profile, sale.payment_method) == ("cn-supermarket", "other")  # as printed: 组合支付
    assert [(t.method, t.amount) for t in sale.tenders] == [("alipay", "30.00"), ("stored_value", "5.50")]


def test_a_tenders_pattern_needs_its_method_and_amount():
    text = 'name = "t"\nrequire = ["x"]\n[tenders]\npattern = \'(?P<method>现金):\'\n'
    with pytest.raises(ProfileError, match=r"tenders.pattern: missing group\(s\) amount"):
        parse_profile(text, "t.toml")
