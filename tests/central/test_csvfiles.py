"""CSV cells that a spreadsheet would run as a formula are written as text; everything else as it is."""

from __future__ import annotations

import csv
import io

import pytest

from central.csvfiles import SpreadsheetWriter, spreadsheet_cell, write_csv


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ('=HYPERLINK("http://evil.example/","领取")', '\'=HYPERLINK("http://evil.example/","领取")'),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"),
        ("@SUM(1+1)", "'@SUM(1+1)"),
        # Spreadsheets skip leading blanks before they look for a formula.
        ("  =1+1", "'  =1+1"),
        ("\t=1+1", "'\t=1+1"),
        ("\r\n=1+1", "'\r\n=1+1"),
        ("\u00a0=1+1", "'\u00a0=1+1"),
        ("\u3000=1+1", "'\u3000=1+1"),
        # Numbers are numbers: a mobile in E.164, a refund, an exponent.
        ("+8613812345678", "+8613812345678"),
        ("-12.50", "-12.50"),
        ("+1.5e3", "+1.5e3"),
        ("-.5", "-.5"),
        # Text that does not start a formula, and values that are not text.
        ("王芳", "王芳"),
        ("a=b+c", "a=b+c"),
        ("fang@example.cn", "fang@example.cn"),
        ("  ", "  "),
        ("", ""),
        ("-", "'-"),
        (None, None),
        (42, 42),
        (-3, -3),
    ],
)
def test_a_cell_that_would_start_a_formula_is_text(value, written):
    assert spreadsheet_cell(value) == written


def test_the_writer_and_the_file_writer_write_every_cell_through_the_rule(tmp_path):
    out = io.StringIO()
    SpreadsheetWriter(out).writerow([1, "=1+1", "+8613812345678", None])
    assert out.getvalue() == "1,'=1+1,+8613812345678,\n"
    path = tmp_path / "rows.csv"
    assert write_csv(path, ["id", "name"], [[1, "@SUM(A1)"], [2, "王芳"]]) == 2
    with path.open(encoding="utf-8", newline="") as written:
        assert list(csv.reader(written)) == [["id", "name"], ["1", "'@SUM(A1)"], ["2", "王芳"]]
