"""The receipt path from printer bytes: card data removed before profiles, records as parse prints them."""

from __future__ import annotations

import json

import pytest

from edge_agent.parsing.escpos import Code, PrintedReceipt
from edge_agent.privacy import TOKEN, PanRedactor, card_issuer_prefix, drop_card_secrets, luhn_valid
from edge_agent.receipt_reader import ReceiptReader, builtin_profiles, redact


@pytest.mark.parametrize(
    ("printed", "kept"),
    [
        ("%B6222021234567894^ZHANG/SAN^2512101000000000000?", "[track data removed]"),
        (";6222021234567894=25121010000012300000?", "[track data removed]"),
        ("磁道:6222021234567894=2512101", "磁道:[track data removed]"),
        ("CVV: 123", "[CVV removed]"),
        ("cvv2 4567 ok", "[CVV removed] ok"),
        ("卡安全码:321", "卡[CVV removed]"),
        ("合计: 12.00  2026-11-23 13:05", "合计: 12.00  2026-11-23 13:05"),
        ("收银员:1005  CVS便利店", "收银员:1005  CVS便利店"),
    ],
)
def test_track_data_and_cvv_are_dropped(printed, kept):
    assert drop_card_secrets(printed) == kept


def test_card_numbers_are_redacted_in_text_and_in_printed_codes_before_profiles_read_them():
    redactor = PanRedactor(b"k" * 32)
    printed = PrintedReceipt(
        lines=("卡号:6222 0212 3456 7894", "单号:A1"),
        codes=(Code("qr", "https://pay.example.cn/?card=6222021234567894"),),
        ended_by="cut",
        start=0,
        end=10,
    )
    clean = redact(printed, redactor)
    assert clean.lines[0].startswith("卡号:[PAN …7894 #") and clean.lines[1] == "单号:A1"
    assert "6222021234567894" not in clean.codes[0].data and "[PAN …7894 #" in clean.codes[0].data


def test_a_receipt_without_a_sale_is_kept_with_its_reason():
    reader = ReceiptReader(builtin_profiles(), PanRedactor(b"k" * 32))
    [record] = reader.feed(b"\x1b@hello\n\x1dV\x00")
    assert record.sale is None and record.error == "no_profile_matched"
    assert record.as_json() == {
        "text_lines": ["hello"],
        "codes": [],
        "error": "no_profile_matched",
        "ended_by": "cut",
        "bytes": [0, 11],
        "images": 0,
        "warnings": [],
    }


def supermarket_receipt(*lines: str) -> bytes:
    """A cn-supermarket receipt in GBK with ``lines`` after the totals, reset and cut."""
    body = [
        "联华超市(南京西路店)",
        "单号:A1-0001",
        "品名 数量 单价 金额",
        "可口可乐 330ml  2  3.50  7.00",
        "--------------------------------",
        "合计:7.00",
        "支付方式:银行卡",
        *lines,
    ]
    return b"\x1b@\x1c&" + "\n".join(body).encode("gbk") + b"\n\x1dV\x00"


def test_a_card_number_in_full_width_digits_is_redacted_and_its_last_four_read_in_ascii():
    reader = ReceiptReader(builtin_profiles(), PanRedactor(b"k" * 32))
    [record] = reader.feed(supermarket_receipt("银行卡号:６２２２０２１２３４５６７８９０１２８"))
    assert record.sale is not None and record.sale.card_last4 == "0128"
    kept = json.dumps(record.as_json(), ensure_ascii=False)
    assert "６２２２０２１２３４５６７８９０１２８" not in kept and "…0128 #" in kept


def luhn_completed(prefix: str) -> str:
    return prefix + next(str(d) for d in range(10) if luhn_valid(prefix + str(d)))


def test_a_luhn_valid_receipt_number_no_card_network_issues_is_kept_where_it_is_printed():
    number = luhn_completed("2026031401000042")  # date, store, counter: 17 digits that pass Luhn
    assert PanRedactor(b"k" * 32).text(number) != number  # alone, it is redacted as a card number
    reader = ReceiptReader(builtin_profiles(), PanRedactor(b"k" * 32))
    data = supermarket_receipt(f"会员卡号:{luhn_completed('800000123456')}").replace(
        "单号:A1-0001".encode("gbk"), f"单号:{number}".encode("gbk")
    )
    qr = f"https://fp.example.cn/i?no={number}".encode()
    data = data.replace(b"\x1dV\x00", b"\x1d(k" + bytes([len(qr) + 3, 0]) + b"1P0" + qr + b"\x1d(k\x03\x001Q0\x1dV\x00")
    [record] = reader.feed(data)
    assert record.sale is not None and record.sale.receipt_no == number
    assert f"单号:{number}" in record.printed.lines
    assert record.printed.codes == (Code("qr", qr.decode()),)
    assert record.sale.member_card is not None and record.sale.member_card.startswith("[PAN …")  # not the number


@pytest.mark.parametrize(
    "number",
    [
        "6222021234567894",  # a UnionPay card printed where the receipt number goes
        "4111111111111111",  # a Visa card
        luhn_completed("8100000000000001"),  # UnionPay's 81 range: a receipt number like it cannot be told apart
    ],
)
def test_a_card_number_in_the_receipt_number_position_stays_redacted(number):
    reader = ReceiptReader(builtin_profiles(), PanRedactor(b"k" * 32))
    data = supermarket_receipt().replace("单号:A1-0001".encode("gbk"), f"单号:{number}".encode("gbk"))
    [record] = reader.feed(data)
    assert record.sale is not None and TOKEN.fullmatch(record.sale.receipt_no or "")
    assert f"…{number[-4:]} #" in (record.sale.receipt_no or "")
    assert number not in json.dumps(record.as_json())


@pytest.mark.parametrize(
    ("digits", "issued"),
    [
        ("4111111111111111", True),
        ("5555555555554444", True),
        ("2221000000000009", True),  # Mastercard's 2-series
        ("2200000000000004", True),  # Mir
        ("6222021234567894", True),  # UnionPay 62
        ("8100000000000000", True),  # UnionPay 81
        ("9558800000000000", True),  # a Chinese domestic bank card
        ("7000000000000000", True),  # a fleet card (petroleum)
        ("1000000000000000", True),  # UATP (airlines)
        ("0000000000000018", False),
        ("2026031401000042", False),  # a year: 20xx
        ("8900000000000000", False),  # a SIM card's ICCID (telecoms)
    ],
)
def test_card_issuer_prefixes(digits, issued):
    assert card_issuer_prefix(digits) is issued


def supermarket(number: str, total: str, phone: str, *, footer: tuple[str, ...] = ()) -> bytes:
    lines = [
        "联华超市(南京东路店)",
        "--------------------------------",
        f"单号:{number}",
        "机号:03",
        "收银员:张三",
        "日期:2026-11-23 10:15:00",
        "品名           数量   单价    金额",
        f"海飞丝洗发水      1  {total:>6}  {total:>6}",
        "--------------------------------",
        f"合计:{total}",
        f"应收:{total}",
        "支付方式:现金",
        f"实收:{total}",
        f"会员手机:{phone}",
        *footer,
        "谢谢惠顾 欢迎再次光临",
    ]
    return "".join(line + "\n" for line in lines).encode("gb18030")


def test_two_receipts_printed_with_no_cut_or_reset_between_become_two_sales():
    first = supermarket("NC-1", "35.50", "13957241836")
    second = supermarket("NC-2", "99.00", "13671829354")
    reader = ReceiptReader(builtin_profiles(), PanRedactor(b"k" * 32))
    records = reader.feed(b"\x1b@" + first + b"\n\n" + second + b"\n\n\x1dV\x00")
    sales = [r.sale for r in records]
    assert [(s.receipt_no, s.total, s.member_phone) for s in sales if s] == [
        ("NC-1", "35.50", "13957241836"),
        ("NC-2", "99.00", "13671829354"),
    ]
    assert records[0].printed.lines[-1] == "谢谢惠顾 欢迎再次光临"
    assert records[1].printed.lines[0] == "联华超市(南京东路店)"
    assert all(r.printed.warnings == ("receipts_without_cut",) for r in records)
    # A receipt number printed again in the footer (under its barcode) is still one receipt.
    [one] = reader.feed(b"\x1b@" + supermarket("NC-3", "12.00", "13957241836", footer=("单号:NC-3",)) + b"\x1dV\x00")
    assert one.sale is not None and one.sale.receipt_no == "NC-3" and not one.printed.warnings
