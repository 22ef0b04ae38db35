"""CSV cells that a spreadsheet would run as a formula are written as text; everything else as it is."""

from __future__ import annotations

import csv
import io
import os
import stat
from pathlib import Path

import pytest

from central.csvfiles import SpreadsheetWriter, open_private, spreadsheet_cell, write_csv


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


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def usual_umask():
    """The umask of a login shell or a cron job: files 0644 and directories 0755 unless asked otherwise."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_a_file_is_owner_only_from_its_first_byte_whatever_the_directory(tmp_path, usual_umask):
    """Exports hold phones and names: in a 0755 directory too, no one else may read them, not even half-written."""
    folder = tmp_path / "exports"
    folder.mkdir(mode=0o755)
    path = folder / "rows.csv"
    path.write_text("an earlier export\n", encoding="utf-8")
    path.chmod(0o644)
    (folder / "rows.csv.partial").write_text("left by a killed run\n", encoding="utf-8")
    (folder / "rows.csv.partial").chmod(0o644)
    while_writing = []

    def rows():
        while_writing.append(mode(folder / "rows.csv.partial"))
        yield [1, "王芳"]

    assert write_csv(path, ["id", "name"], rows()) == 1
    assert while_writing == [0o600]
    assert mode(path) == 0o600
    assert path.read_text(encoding="utf-8") == "id,name\n1,王芳\n"
    assert not (folder / "rows.csv.partial").exists()
    assert mode(folder) == 0o755  # a directory the command did not create is left as it is


def test_a_private_file_that_fails_midway_leaves_the_earlier_file_and_no_partial_one(tmp_path, usual_umask):
    path = tmp_path / "report.csv"
    path.write_text("the earlier report\n", encoding="utf-8")

    def interrupted() -> None:
        with open_private(path) as out:
            out.write("half a report")
            raise RuntimeError("the database went away")

    with pytest.raises(RuntimeError):
        interrupted()
    assert path.read_text(encoding="utf-8") == "the earlier report\n"
    assert list(tmp_path.iterdir()) == [path]


def test_a_device_is_written_as_it_is(tmp_path):
    """``--out /dev/stdout`` (or a pipe) has no mode of its own to protect and cannot be replaced."""
    with open_private(Path(os.devnull)) as out:
        out.write("王芳\n")
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)
