"""A receipt that prints a reprint marker carries the ``reprint`` warning to central as a hint."""

from __future__ import annotations

import pytest

from edge_agent.parsing.reprint_marker import is_reprint
from edge_agent.privacy import PanRedactor
from edge_agent.receipt_events import sale_payload
from edge_agent.receipt_reader import ReceiptReader, builtin_profiles


@pytest.mark.parametrize(
    ("line", "marked"),
    [
        ("*** 重打印 ***", True),
        ("【补打小票】", True),
        ("-- REPRINT --", True),
        ("重打印", True),
        ("重打印机清洁剂  1  9.90  9.90", False),  # an item, not the marker
        ("合计:35.50", False),
    ],
)
def test_the_marker_line_is_told_from_other_lines(line, marked):
    assert is_reprint(["联华超市(南京西路店)", line]) is marked


def _receipt(*header: str) -> bytes:
    body = [
        "联华超市(南京西路店)",
        *header,
        "单号:LV-RP2",
        "品名 数量 单价 金额",
        "可口可乐 330ml  2  3.50  7.00",
        "合计:7.00",
    ]
    return b"\x1b@\x1c&" + "\n".join(body).encode("gbk") + b"\n\x1dV\x00"


def test_a_reprinted_receipt_is_a_sale_with_the_reprint_warning():
    reader = ReceiptReader(builtin_profiles(), PanRedactor(b"k" * 32))
    [first, again] = reader.feed(_receipt() + _receipt("*** 重打印 ***"))
    assert first.sale is not None and again.sale is not None
    assert "reprint" not in sale_payload(first)["warnings"]
    assert "reprint" in sale_payload(again)["warnings"]
    assert sale_payload(again)["receipt_no"] == "LV-RP2"
