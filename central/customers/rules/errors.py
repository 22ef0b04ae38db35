"""Why a rule was refused, and where: every problem is a RuleError with a reason code and a position."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Position:
    """A place in the rule's text: 1-based line and column, and the 0-based character offset."""

    line: int
    column: int
    offset: int

    @classmethod
    def at(cls, source: str, offset: int) -> Position:
        """The line and column of ``offset`` in ``source``."""
        line = source.count("\n", 0, offset) + 1
        return cls(line, offset - (source.rfind("\n", 0, offset) + 1) + 1, offset)


class RuleError(ValueError):
    """A rule that cannot be used; ``reason`` is a stable code, ``position`` where the problem is."""

    def __init__(self, reason: str, message: str, position: Position | None = None) -> None:
        where = f"line {position.line}, column {position.column}: " if position else ""
        super().__init__(where + message)
        self.reason = reason
        self.detail = message
        self.position = position


@dataclass(frozen=True)
class Limits:
    """Bounds that keep a rule small: parsing and evaluation stay fast whatever HQ types."""

    max_length: int = 4000  # characters of source
    max_depth: int = 24  # nested parentheses and 'not'
    max_list: int = 500  # values in one 'in (...)' list
    max_string: int = 200  # characters in one string literal
    max_terms: int = 200  # comparisons and tests in the whole rule
    max_days: int = 36_525  # one hundred years, the largest duration


DEFAULT_LIMITS = Limits()
