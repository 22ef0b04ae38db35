"""Line-mode receipts: JSON and key=value records, Chinese labels, encodings, and reason codes."""

from __future__ import annotations

import pytest

from edge_agent.parsing.receipt_line import LineError, decode_line, parse_receipt_line


def test_json_record_becomes_a_receipt_payload():
    line = (
        '{"receipt_no": "S001-261123-00042", "total": 36.5, "member_phone": "+86 138-1234-5678",'
        ' "items": [{"sku": "6921168509256", "name": "农夫山泉", "qty": 2, "unit_price": "2.00"}],'
        ' "paid_at": "2026-11-23 09:58:25", "payment": "wechat", "loyalty_secret": "x"}'
    )
    payload = parse_receipt_line(line).payload()
    assert payload == {
        "receipt_no": "S001-261123-00042",
        "total": "36.50",
        "currency": "CNY",
        "items": [{"sku": "6921168509256", "name": "农夫山泉", "qty": "2", "unit_price": "2.00"}],
        "member": {"phone": "13812345678"},
        "format": "json",
        "paid_at": "2026-11-23T09:58:25",
        "payment": "wechat",
        "ignored_fields": ["loyalty_secret"],
    }


def test_key_value_record_with_chinese_labels_and_quoted_items():
    line = '单号=S001-0001 合计=￥1,234.5 手机=13812345678 会员卡=vip-0001234 item="6901028075831,2,3.00,可口 可乐"'
    payload = parse_receipt_line(line).payload()
    assert payload["receipt_no"] == "S001-0001"
    assert payload["total"] == "1234.50"
    assert payload["member"] == {"phone": "13812345678", "card": "VIP0001234"}
    assert payload["items"] == [{"sku": "6901028075831", "name": "可口 可乐", "qty": "2", "unit_price": "3.00"}]
    assert payload["format"] == "kv"


def test_semicolon_and_pipe_separated_pairs():
    assert parse_receipt_line("receipt_no=R1;total=2|phone=13812345678").member_phone == "13812345678"


def test_an_invalid_phone_keeps_the_sale_and_says_so():
    receipt = parse_receipt_line('{"receipt_no": "R1", "total": "5", "member_phone": "12345"}')
    assert receipt.member_phone is None
    assert receipt.payload()["warnings"] == ["invalid_member_phone"]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("", "empty_line"),
        ("hello world", "unrecognized_format"),
        ("{not json", "invalid_json"),
        ('{"a": 1', "invalid_json"),
        ('["receipt_no"]', "unrecognized_format"),
        ("receipt_no=1 stray", "malformed_pair"),
        ('receipt_no="unterminated', "malformed_pair"),
        ("total=1", "missing_field:receipt_no"),
        ("receipt_no=R1", "missing_field:total"),
        ("receipt_no=R1 total=abc", "invalid_field:total"),
        ("receipt_no=R1 total=1e400", "invalid_field:total"),
        ("receipt_no=R1 total=0.00001", "invalid_field:total"),
        ('{"receipt_no": "R1", "total": true}', "invalid_field:total"),
        ('{"receipt_no": ["R1"], "total": 1}', "invalid_field:receipt_no"),
        ('{"receipt_no": "R1", "total": 1, "items": {"sku": 1}}', "invalid_field:items"),
        ('{"receipt_no": "R1", "total": 1, "items": [{"qty": 1}]}', "invalid_field:items"),
        ("receipt_no=R1 total=1 item=onlysku", "invalid_field:items"),
        ("receipt_no=R1 total=1 paid_at=yesterday", "invalid_field:paid_at"),
    ],
)
def test_lines_that_are_not_receipts_get_a_reason(line, reason):
    with pytest.raises(LineError) as info:
        parse_receipt_line(line)
    assert info.value.reason == reason


def test_auto_decoding_reads_utf8_and_gb18030():
    text = "单号=R1 合计=12"
    assert decode_line(text.encode("utf-8"), "auto") == text
    assert decode_line(text.encode("gb18030"), "auto") == text
    assert decode_line(text.encode("gbk"), "gbk") == text
    assert decode_line("\ufeffreceipt_no=1".encode(), "auto") == "receipt_no=1"


@pytest.mark.parametrize(
    ("raw", "encoding", "reason"),
    [
        (b"\x00\x01\x02garbage", "auto", "binary_data"),
        (b"receipt_no=1\x1b@", "auto", "binary_data"),
        (b"\xff\xfe\xfd", "utf-8", "undecodable"),
        (b"abc", "no-such-codec", "unknown_encoding"),
    ],
)
def test_undecodable_and_binary_lines_get_a_reason(raw, encoding, reason):
    with pytest.raises(LineError) as info:
        decode_line(raw, encoding)
    assert info.value.reason == reason
