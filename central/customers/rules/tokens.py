"""The rule tokenizer: text in, tokens with their positions out, one at a time (pure and bounded)."""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass

from central.customers.rules.errors import Limits, Position, RuleError

KEYWORDS = frozenset({"and", "or", "not", "in", "is", "null", "true", "false"})
_OPERATORS = {"=": "=", "==": "=", "!=": "!=", "<>": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_PUNCTUATION = {"(": "(", ")": ")", ",": ","}
_ESCAPES = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t"}
_DURATION_UNITS = {"d": 1, "w": 7}
_MAX_INTEGER_DIGITS = 15
_MAX_FRACTION_DIGITS = 6


class Kind(enum.Enum):
    """What a token is."""

    NAME = "name"
    KEYWORD = "keyword"
    NUMBER = "number"
    DATE = "date"
    DURATION = "duration"
    STRING = "string"
    OPERATOR = "operator"
    PUNCT = "punctuation"
    END = "end of rule"


@dataclass(frozen=True)
class Token:
    """One token: its kind, its normalised text (keywords in lower case, '==' as '='), its position."""

    kind: Kind
    text: str
    position: Position


def _is_name_start(char: str) -> bool:
    return char == "_" or ("a" <= char <= "z") or ("A" <= char <= "Z")


def _is_digit(char: str) -> bool:
    return "0" <= char <= "9"


def _is_name_char(char: str) -> bool:
    return _is_name_start(char) or _is_digit(char)


class _Scanner:
    def __init__(self, source: str, limits: Limits) -> None:
        self.source = source
        self.limits = limits
        self.i = 0
        self.pending: list[Token] = []

    def error(self, reason: str, message: str, offset: int | None = None) -> RuleError:
        return RuleError(reason, message, Position.at(self.source, self.i if offset is None else offset))

    def emit(self, kind: Kind, text: str, start: int) -> None:
        self.pending.append(Token(kind, text, Position.at(self.source, start)))

    def scan(self) -> Iterator[Token]:
        source = self.source
        while self.i < len(source):
            yield from self.pending
            self.pending.clear()
            char = source[self.i]
            if char in " \t\r\n":
                self.i += 1
            elif char == "#":  # a comment runs to the end of the line
                end = source.find("\n", self.i)
                self.i = len(source) if end < 0 else end
            elif _is_name_start(char):
                self.name()
            elif _is_digit(char) or (char == "-" and _is_digit(source[self.i + 1 : self.i + 2])):
                self.number()
            elif char in "\"'":
                self.string(char)
            elif source[self.i : self.i + 2] in _OPERATORS:
                self.emit(Kind.OPERATOR, _OPERATORS[source[self.i : self.i + 2]], self.i)
                self.i += 2
            elif char in _OPERATORS:
                self.emit(Kind.OPERATOR, _OPERATORS[char], self.i)
                self.i += 1
            elif char in _PUNCTUATION:
                self.emit(Kind.PUNCT, char, self.i)
                self.i += 1
            else:
                raise self.error("unexpected_character", f"unexpected character {char!r}")
        self.emit(Kind.END, "", len(source))
        yield from self.pending

    def name(self) -> None:
        start = self.i
        while self.i < len(self.source) and _is_name_char(self.source[self.i]):
            self.i += 1
        word = self.source[start : self.i]
        if self.i < len(self.source) and self.source[self.i] == ".":
            raise self.error("no_attributes", f"'{word}.': rules read fields by name only; there are no attributes")
        if word.lower() in KEYWORDS:
            self.emit(Kind.KEYWORD, word.lower(), start)
        else:
            self.emit(Kind.NAME, word, start)

    def digits(self) -> str:
        start = self.i
        while self.i < len(self.source) and _is_digit(self.source[self.i]):
            self.i += 1
        return self.source[start : self.i]

    def number(self) -> None:
        start = self.i
        if self.source[self.i] == "-":
            self.i += 1
        whole = self.digits()
        after = self.source[self.i : self.i + 1]
        if after == "-" and len(whole) == 4 and start == self.i - 4:
            self.date(start)
            return
        fraction = ""
        if after == "." and _is_digit(self.source[self.i + 1 : self.i + 2]):
            self.i += 1
            fraction = self.digits()
        if len(whole.lstrip("0")) > _MAX_INTEGER_DIGITS or len(fraction) > _MAX_FRACTION_DIGITS:
            raise self.error(
                "number_too_long",
                f"numbers have at most {_MAX_INTEGER_DIGITS} digits before the point "
                f"and {_MAX_FRACTION_DIGITS} after it",
                start,
            )
        unit = self.source[self.i : self.i + 1]
        if unit and _is_name_char(unit):
            end = self.i
            while end < len(self.source) and _is_name_char(self.source[end]):
                end += 1
            suffix = self.source[self.i : end]
            if suffix not in _DURATION_UNITS or fraction:
                raise self.error(
                    "bad_number",
                    f"'{self.source[start:end]}' is not a number or a duration "
                    "(durations are whole days or weeks, such as 30d or 2w)",
                    start,
                )
            days = int(self.source[start : self.i]) * _DURATION_UNITS[suffix]
            if abs(days) > self.limits.max_days:
                raise self.error("duration_too_long", f"durations are at most {self.limits.max_days} days", start)
            self.i = end
            self.emit(Kind.DURATION, str(days), start)
            return
        text = self.source[start : self.i]
        self.emit(Kind.NUMBER, text, start)

    def date(self, start: int) -> None:
        # YYYY-MM-DD, written bare: the language has no subtraction, so the dashes are unambiguous.
        end = start + 10
        text = self.source[start:end]
        shape_ok = len(text) == 10 and text[4] == "-" and text[7] == "-"
        shape_ok = shape_ok and all(_is_digit(c) for i, c in enumerate(text) if i not in (4, 7))
        if not shape_ok or (end < len(self.source) and _is_name_char(self.source[end])):
            raise self.error("bad_date", "dates are written YYYY-MM-DD, for example 2025-01-31", start)
        self.i = end
        self.emit(Kind.DATE, text, start)

    def string(self, quote: str) -> None:
        start = self.i
        self.i += 1
        chars: list[str] = []
        while True:
            if self.i >= len(self.source):
                raise self.error("unterminated_string", f"this string has no closing {quote}", start)
            char = self.source[self.i]
            if char == quote:
                self.i += 1
                break
            if char == "\\":
                escaped = self.source[self.i + 1 : self.i + 2]
                if escaped not in _ESCAPES:
                    raise self.error("bad_escape", "inside strings, \\ may only precede \\, \", ', n or t")
                chars.append(_ESCAPES[escaped])
                self.i += 2
            elif char < " " or char == "\x7f":
                raise self.error("control_character", "strings cannot hold control characters or line breaks")
            else:
                chars.append(char)
                self.i += 1
            if len(chars) > self.limits.max_string:
                raise self.error("string_too_long", f"strings are at most {self.limits.max_string} characters", start)
        self.emit(Kind.STRING, "".join(chars), start)


def tokenize(source: str, limits: Limits) -> Iterator[Token]:
    """The tokens of ``source`` as they are read, ending with an END token.

    Raises :class:`RuleError` with a position when the text goes wrong, so a parser reading
    tokens on demand reports problems in the order they occur in the text.
    """
    if len(source) > limits.max_length:
        raise RuleError(
            "too_long", f"the rule is {len(source)} characters long; the limit is {limits.max_length}", None
        )
    return _Scanner(source, limits).scan()
