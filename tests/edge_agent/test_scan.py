"""Scanner payloads classified: the GS1 sample vectors, UPC-E, AIM prefixes, payment codes, `parse --kind scan`."""

from __future__ import annotations

import json

import pytest

from edge_agent.cli import main
from edge_agent.parsing.gs1 import Gs1Error, parse_element_string
from edge_agent.parsing.scan import check_digit, classify, expand_upc_e, unescape

# The one vector the till also treats as a payment code: a bare 18-digit number from 10-15 is what a
# WeChat Pay payment code looks like, and a payment code must never be kept. Its SSCC validation is
# still reported; read with its AI (00), as a logistics scanner sends it, it is a plain SSCC.
PAYMENT_SHAPED_SSCC = "157035381410375177"


def _vectors(samples_dir):
    return json.loads((samples_dir / "barcode" / "gs1_gtin_vectors.json").read_text())


def test_every_gs1_vector_classifies_and_validates_as_expected(samples_dir):
    vectors = _vectors(samples_dir)
    assert len(vectors) == 10
    for vector in vectors:
        got = classify(vector["input"]).as_json()
        expected = dict(vector["expected"])
        if vector["input"] == PAYMENT_SHAPED_SSCC:
            # Validated as the vector expects, classified as the payment code it may be (so never kept).
            assert got == {"kind": "payment", "payment_scheme": "wechat", **expected}
            as_label = classify("]C100" + PAYMENT_SHAPED_SSCC).as_json()
            assert as_label["sscc"] == expected["sscc"] and as_label["check_digit"] == expected["check_digit"]
            assert check_digit(PAYMENT_SHAPED_SSCC[:-1]) == expected["check_digit"]
            continue
        if "gtin_error_contains" in expected:
            assert got["kind"] == "unknown", (vector, got)
            assert expected.pop("gtin_error_contains") in got["error"]
        else:
            assert got["kind"] == "product", (vector, got)
        if "gs1_prefix_usage" in expected:
            assert got["gs1_prefix"] == expected.pop("gs1_prefix_usage")
        for key, value in expected.items():
            assert got.get(key) == value, (vector["input"], key, got)


@pytest.mark.parametrize(
    ("upc_e", "upc_a"),
    [("425261", "042100005264"), ("0425261", "042100005264"), ("04252614", "042100005264"), ("123453", "012300000451")],
)
def test_upc_e_expands_to_gtin_12(upc_e, upc_a):
    assert expand_upc_e(upc_e) == upc_a


def test_aim_prefixes_and_group_separators():
    scan = classify("]E05901234123457\r\n")
    assert (scan.kind, scan.symbology_identifier, scan.symbology, scan.gtin) == (
        "product",
        "]E0",
        "EAN/UPC",
        "5901234123457",
    )
    qr = classify("]Q3" + unescape(r"\x1d0106901234567892\x1d10LOT7\x1d21S1"))
    assert qr.kind == "product" and qr.gs1_hri == "(01)06901234567892(10)LOT7(21)S1"
    assert classify("6901234567892").gs1_prefix == "GS1 China"
    assert parse_element_string("3103000250\x1d10A") == [("3103", "000250"), ("10", "A")]
    with pytest.raises(Gs1Error, match=r"\(15\) is not a date"):
        parse_element_string("0105901234123457152113990")


@pytest.mark.parametrize(
    ("payload", "scheme"),
    [("134567890123456789", "wechat"), ("2812345678901234", "alipay"), ("301234567890123456789012", "alipay")],
)
def test_payment_codes_keep_only_their_class(payload, scheme):
    scan = classify(payload)
    assert scan.as_json() == {"kind": "payment", "payment_scheme": scheme}
    assert payload not in json.dumps(scan.as_json())


def test_member_and_coupon_codes_by_prefix():
    assert classify("CDPM1:AEBAGBAF").kind == "member"
    assert classify("CDPC1:XYZ").kind == "coupon"
    assert classify("CDPM1:lowercase").kind == "unknown"


def test_parse_kind_scan_prints_one_json_object_a_line(tmp_path, capsys):
    lines = [r"]C1010590123412345715210526", r"\x1d0105901234123457\x1d10AB12", "134567890123456789", "", "abc"]
    path = tmp_path / "scans.txt"
    path.write_text("\n".join(lines) + "\n")
    assert main(["parse", str(path), "--kind", "scan", "--json"]) == 0
    out, err = capsys.readouterr()
    docs = [json.loads(line) for line in out.splitlines()]
    assert [(d["line"], d["kind"]) for d in docs] == [(1, "product"), (2, "product"), (3, "payment"), (5, "unknown")]
    assert docs[1]["gs1_hri"] == "(01)05901234123457(10)AB12"
    assert "134567890123456789" not in out
    assert "4 scans (payment: 1, product: 2, unknown: 1)" in err
