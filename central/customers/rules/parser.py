"""A recursive-descent parser that checks names and types as it goes, so every error has a position.

Grammar (EBNF; keywords are case-insensitive, ``#`` starts a comment)::

    rule       = or_expr END
    or_expr    = and_expr { "or" and_expr }
    and_expr   = not_expr { "and" not_expr }
    not_expr   = "not" not_expr | predicate
    predicate  = "(" or_expr ")"
               | operand [ op operand | [ "not" ] "in" "(" value { "," value } [ "," ] ")"
                         | "is" [ "not" ] "null" ]
    operand    = field | function "(" argument ")" | value
    function   = "days_since" | "days_until" | "has_tag"
    op         = "=" | "==" | "!=" | "<>" | "<" | "<=" | ">" | ">="
    value      = number | string | date | duration | "true" | "false"

A number is ``-12.5``; a string ``"loyal"`` or ``'loyal'``; a date ``2025-01-31``; a duration
``30d`` or ``2w``. Fields come from the schema; a bool field or ``has_tag("x")`` is a condition
on its own.
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Iterator
from decimal import Decimal

from central.customers.rules.errors import Limits, RuleError
from central.customers.rules.schema import FUNCTIONS, FieldType, Schema
from central.customers.rules.tokens import Kind, Token
from central.customers.rules.tree import (
    And,
    Compare,
    Constant,
    DayCount,
    FieldRef,
    HasTag,
    InList,
    IsNull,
    Literal,
    Node,
    Not,
    Or,
    Truth,
)

_MIRRORED = {"=": "=", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_VALUE_KINDS = (Kind.NUMBER, Kind.STRING, Kind.DATE, Kind.DURATION)
_TYPE_OF_KIND = {Kind.NUMBER: "a number", Kind.STRING: "a string", Kind.DATE: "a date", Kind.DURATION: "a duration"}

# An operand as first read, before the comparison around it says what it must be.
_Operand = FieldRef | DayCount | HasTag | Constant | Token


def _describe(token: Token) -> str:
    if token.kind is Kind.END:
        return "the end of the rule"
    if token.kind is Kind.STRING:
        return "a string"
    return repr(token.text) if token.kind is not Kind.DURATION else "a duration"


class Parser:
    """Parses one rule's tokens against a schema within limits; use :meth:`parse` once."""

    def __init__(self, tokens: Iterator[Token], schema: Schema, limits: Limits) -> None:
        self.tokens = tokens
        self.lookahead: list[Token] = []
        self.schema = schema
        self.limits = limits
        self.depth = 0
        self.terms = 0

    # -- token helpers

    def peek(self, ahead: int = 0) -> Token:
        while len(self.lookahead) <= ahead:
            if self.lookahead and self.lookahead[-1].kind is Kind.END:
                return self.lookahead[-1]
            self.lookahead.append(next(self.tokens))
        return self.lookahead[ahead]

    def advance(self) -> Token:
        token = self.peek()
        if token.kind is not Kind.END:
            self.lookahead.pop(0)
        return token

    def at(self, kind: Kind, text: str, ahead: int = 0) -> bool:
        token = self.peek(ahead)
        return token.kind is kind and token.text == text

    def expect(self, kind: Kind, text: str, context: str) -> Token:
        if not self.at(kind, text):
            raise self.error("expected", f"expected '{text}' {context}, found {_describe(self.peek())}", self.peek())
        return self.advance()

    @staticmethod
    def error(reason: str, message: str, token: Token) -> RuleError:
        return RuleError(reason, message, token.position)

    def enter(self, token: Token) -> None:
        self.depth += 1
        if self.depth > self.limits.max_depth:
            raise self.error("too_deep", f"rules nest at most {self.limits.max_depth} levels deep", token)

    # -- grammar

    def parse(self) -> Node:
        node = self.or_expr()
        if self.peek().kind is not Kind.END:
            raise self.error(
                "unexpected_token",
                f"expected 'and', 'or' or the end of the rule, found {_describe(self.peek())}",
                self.peek(),
            )
        return node

    def or_expr(self) -> Node:
        operands = [self.and_expr()]
        while self.at(Kind.KEYWORD, "or"):
            self.advance()
            operands.append(self.and_expr())
        flat = [child for op in operands for child in (op.operands if isinstance(op, Or) else (op,))]
        return flat[0] if len(flat) == 1 else Or(tuple(flat))

    def and_expr(self) -> Node:
        operands = [self.not_expr()]
        while self.at(Kind.KEYWORD, "and"):
            self.advance()
            operands.append(self.not_expr())
        flat = [child for op in operands for child in (op.operands if isinstance(op, And) else (op,))]
        return flat[0] if len(flat) == 1 else And(tuple(flat))

    def not_expr(self) -> Node:
        if self.at(Kind.KEYWORD, "not"):
            self.enter(self.advance())
            node = Not(self.not_expr())
            self.depth -= 1
            return node
        return self.predicate()

    def predicate(self) -> Node:
        start = self.peek()
        if self.at(Kind.PUNCT, "("):
            self.enter(self.advance())
            node = self.or_expr()
            self.expect(Kind.PUNCT, ")", "to close the parenthesis")
            self.depth -= 1
            return node
        self.terms += 1
        if self.terms > self.limits.max_terms:
            raise self.error("too_many_terms", f"a rule holds at most {self.limits.max_terms} conditions", start)
        left = self.operand()
        following = self.peek()
        if following.kind is Kind.OPERATOR:
            self.advance()
            return self.compare(left, following, self.operand())
        if self.at(Kind.KEYWORD, "in") or (self.at(Kind.KEYWORD, "not") and self.at(Kind.KEYWORD, "in", 1)):
            negated = self.advance().text == "not"
            if negated:
                self.advance()
            return self.in_list(left, start, negated)
        if self.at(Kind.KEYWORD, "is"):
            return self.is_null(left, start)
        return self.condition(left, start)

    def operand(self) -> _Operand:
        token = self.advance()
        if token.kind is Kind.NAME:
            if self.at(Kind.PUNCT, "("):
                return self.call(token)
            return self.field(token)
        if token.kind is Kind.KEYWORD and token.text in ("true", "false"):
            return Constant(token.text == "true", token.position)
        if token.kind in _VALUE_KINDS:
            return token
        if token.kind is Kind.KEYWORD and token.text == "null":
            raise self.error("null_comparison", "test for a missing value with 'is null' or 'is not null'", token)
        raise self.error(
            "expected_operand", f"expected a field, a function or a value, found {_describe(token)}", token
        )

    def field(self, token: Token) -> FieldRef:
        kind = self.schema.type_of(token.text)
        if kind is not None:
            return FieldRef(token.text, kind, token.position)
        if token.text in FUNCTIONS:
            raise self.error("expected", f"{token.text} is a function: write {token.text}(...)", token)
        if token.text in self.schema.withheld:
            raise self.error("withheld_field", f"{token.text}: {self.schema.withheld[token.text]}", token)
        close = difflib.get_close_matches(token.text, self.schema.names, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise self.error("unknown_field", f"unknown field '{token.text}'{hint}", token)

    def call(self, name: Token) -> DayCount | HasTag:
        if name.text not in FUNCTIONS:
            raise self.error(
                "unknown_function", f"unknown function '{name.text}'; the functions are {', '.join(FUNCTIONS)}", name
            )
        self.advance()  # (
        argument = self.advance()
        if name.text == "has_tag":
            if self.schema.tags_field is None:
                raise self.error("no_tags", "rules over this data cannot test tags", name)
            if argument.kind is not Kind.STRING:
                raise self.error("bad_argument", 'has_tag takes a tag name in quotes, as in has_tag("loyal")', argument)
            self.expect(Kind.PUNCT, ")", "after the tag name")
            return HasTag(argument.text, name.position)
        if argument.kind is not Kind.NAME:
            raise self.error("bad_argument", f"{name.text} takes a date field, found {_describe(argument)}", argument)
        field = self.field(argument)
        if field.type is not FieldType.DATE:
            raise self.error(
                "bad_argument", f"{name.text} takes a date field; '{field.name}' is a {field.type.value}", argument
            )
        self.expect(Kind.PUNCT, ")", f"after {name.text}'s field")
        return DayCount(name.text, field, name.position)

    # -- checks that give each construct its meaning

    def compare(self, left: _Operand, op: Token, right: _Operand) -> Node:
        if isinstance(left, Token | Constant) and isinstance(right, FieldRef | DayCount):
            left, right = right, left
            op = Token(op.kind, _MIRRORED[op.text], op.position)
        if isinstance(left, Token) or (isinstance(left, Constant) and isinstance(right, Token | Constant)):
            raise self.error("constant_comparison", "this compares two constants; compare a field instead", op)
        if isinstance(left, HasTag | Constant) or isinstance(right, HasTag):
            raise self.error("not_comparable", "has_tag(...), true and false are conditions on their own", op)
        if isinstance(left, DayCount):
            if isinstance(right, Constant) or not isinstance(right, Token):
                raise self.error(
                    "days_comparison", f"{left.function}(...) compares with a number of days, as in 30d", op
                )
            return Compare(op.text, left, self.days(right))
        if isinstance(right, DayCount):
            raise self.error("type_mismatch", f"'{left.name}' cannot be compared with a function", op)
        if op.text not in ("=", "!=") and left.type in (FieldType.STRING, FieldType.BOOL):
            why = "their order depends on the database" if left.type is FieldType.STRING else "they have no order"
            raise self.error("unordered_type", f"{left.type.value} fields compare with = and != only ({why})", op)
        if isinstance(right, FieldRef):
            if right.type is not left.type:
                raise self.error(
                    "type_mismatch",
                    f"'{left.name}' is a {left.type.value} and '{right.name}' a {right.type.value}",
                    op,
                )
            return Compare(op.text, left, right)
        return Compare(op.text, left, self.value(right, left))

    def value(self, token: Token | Constant, field: FieldRef) -> Literal:
        if isinstance(token, Constant):
            if field.type is FieldType.BOOL:
                return Literal(token.value)
            raise RuleError(
                "type_mismatch", f"'{field.name}' is a {field.type.value}, not true or false", token.position
            )
        expected = {
            FieldType.NUMBER: Kind.NUMBER,
            FieldType.STRING: Kind.STRING,
            FieldType.DATE: Kind.DATE,
            FieldType.BOOL: None,
        }[field.type]
        if token.kind is not expected:
            if token.kind is Kind.DURATION:
                why = "durations compare with days_since(...) or days_until(...)"
            else:
                why = f"'{field.name}' is a {field.type.value}, and this is {_TYPE_OF_KIND[token.kind]}"
            raise self.error("type_mismatch", why, token)
        if token.kind is Kind.NUMBER:
            return Literal(Decimal(token.text))
        if token.kind is Kind.DATE:
            try:
                return Literal(dt.date.fromisoformat(token.text))
            except ValueError:
                raise self.error("bad_date", f"{token.text} is not a calendar date", token) from None
        return Literal(token.text)

    def days(self, token: Token) -> Literal:
        if token.kind is Kind.DURATION:
            return Literal(int(token.text), days=True)
        if token.kind is Kind.NUMBER:
            number = Decimal(token.text)
            if number == number.to_integral_value() and abs(number) <= self.limits.max_days:
                return Literal(int(number), days=True)
            raise self.error("bad_days", f"a number of days is whole and at most {self.limits.max_days}", token)
        raise self.error("days_comparison", "compare a number of days with a number or a duration, as in 30d", token)

    def in_list(self, left: _Operand, start: Token, negated: bool) -> Node:
        if not isinstance(left, FieldRef | DayCount) or (isinstance(left, FieldRef) and left.type is FieldType.BOOL):
            raise self.error(
                "bad_in", "only a number, string or date field, or a day count, can be tested with 'in'", start
            )
        self.expect(Kind.PUNCT, "(", "to open the list after 'in'")
        if self.at(Kind.PUNCT, ")"):
            raise self.error("empty_list", "an 'in' list needs at least one value", self.peek())
        values: list[Literal] = []
        while True:
            first = self.peek()
            token = self.operand()
            if not isinstance(token, Token | Constant):
                raise self.error("bad_in", "an 'in' list holds values only, not fields or functions", first)
            if len(values) == self.limits.max_list:
                raise self.error("too_many_values", f"an 'in' list holds at most {self.limits.max_list} values", first)
            if isinstance(left, DayCount):
                if isinstance(token, Constant):
                    raise self.error("days_comparison", "a day count compares with numbers of days", first)
                values.append(self.days(token))
            else:
                values.append(self.value(token, left))
            if self.at(Kind.PUNCT, ","):
                self.advance()
                if self.at(Kind.PUNCT, ")"):
                    break
            elif not self.at(Kind.PUNCT, ")"):
                raise self.error(
                    "expected", f"expected ',' or ')' in the list, found {_describe(self.peek())}", self.peek()
                )
            else:
                break
        self.advance()  # )
        distinct = sorted(set(values), key=lambda literal: literal.value)
        return InList(left, tuple(distinct), negated)

    def is_null(self, left: _Operand, start: Token) -> Node:
        self.advance()  # is
        negated = self.at(Kind.KEYWORD, "not")
        if negated:
            self.advance()
        self.expect(Kind.KEYWORD, "null", "after 'is'" if not negated else "after 'is not'")
        if not isinstance(left, FieldRef):
            raise self.error("bad_null_test", "only a field can be tested with 'is null'", start)
        return IsNull(left, negated)

    def condition(self, operand: _Operand, start: Token) -> Node:
        if isinstance(operand, HasTag | Constant):
            return operand
        if isinstance(operand, FieldRef) and operand.type is FieldType.BOOL:
            return Truth(operand)
        what = f"'{operand.name}'" if isinstance(operand, FieldRef) else "this"
        raise self.error(
            "not_a_condition", f"{what} is not a condition on its own; compare it, as in {_example(operand)}", start
        )


def _example(operand: _Operand) -> str:
    if isinstance(operand, FieldRef):
        return {FieldType.NUMBER: f"{operand.name} > 0", FieldType.STRING: f'{operand.name} = "x"'}.get(
            operand.type, f"{operand.name} is not null"
        )
    if isinstance(operand, DayCount):
        return f"{operand.function}({operand.field.name}) <= 30d"
    return "amount > 100"
