"""Patterns that check a whole value end with ``\\Z``: Python's ``$`` also matches before a final line break.

``re.compile(r"^[a-z0-9]{1,64}$").match("name\\n")`` matches, so a validation written that way lets a
trailing line break through: a trigger, store or user name that looks like another and breaks
headers (``Content-Disposition``) and file names. Every pattern in the code ends in ``\\Z`` instead,
unless it is compiled with ``re.MULTILINE``, where ``$`` means the end of each line.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from central.campaigns.triggers.declaration import NAME_RE
from central.segments.definitions import _NAME

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("central", "shared", "edge_agent", "tools", "bench")
_FUNCTIONS = {"compile", "match", "fullmatch", "search", "sub", "subn", "split", "findall", "finditer"}


def _dollar_ended(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in _FUNCTIONS
            and getattr(node.func.value, "id", None) == "re"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            continue
        pattern = node.args[0].value
        flags = ast.unparse(node)
        if re.search(r"(?<!\\)(?:\\\\)*\$\Z", pattern) and "MULTILINE" not in flags and "re.M" not in flags:
            found.append(f"{path.relative_to(REPO)}:{node.lineno}: {pattern!r}")
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_no_pattern_ends_in_a_dollar_that_lets_a_line_break_through(package):
    files = sorted((REPO / package).rglob("*.py"))
    assert files
    offenders = [line for path in files for line in _dollar_ended(path)]
    assert offenders == [], "end these patterns with \\Z:\n" + "\n".join(offenders)


def test_names_with_a_trailing_line_break_are_refused():
    assert NAME_RE.match("bday-hook") and not NAME_RE.match("bday-hook\n")
    assert _NAME.match("loyal") and not _NAME.match("loyal\n")
