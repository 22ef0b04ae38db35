"""A checked rule as a SQLAlchemy Core boolean expression, so a segment can be counted in the database.

Day counts become date bounds (``days_since(d) > 30`` is ``d < as_of - 30``), which every dialect
compares the same way and an index on ``d`` can serve. Null fields give SQL's unknown, which a
WHERE clause treats as no match: the Python closure answers the same.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from central.customers.rules.errors import RuleError
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

TagTest = Callable[[str], ColumnElement[bool]]
_MIRRORED = {"=": "=", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


def _operate(op: str, left: ColumnElement[Any], right: ColumnElement[Any]) -> ColumnElement[bool]:
    if op == "=":
        return left == right
    if op == "!=":
        return left != right
    if op == "<":
        return left < right
    if op == "<=":
        return left <= right
    if op == ">":
        return left > right
    return left >= right


def _bound(value: object) -> ColumnElement[Any]:
    # Typed binds: SQLite's driver cannot bind a Decimal unless the type converts it first.
    if isinstance(value, bool):
        return sa.true() if value else sa.false()
    if isinstance(value, Decimal):
        if value == value.to_integral_value():
            return sa.literal(int(value), sa.BigInteger())
        return sa.literal(value, sa.Numeric())
    if isinstance(value, dt.date):
        return sa.literal(value, sa.Date())
    if isinstance(value, str):
        return sa.literal(value, sa.String())
    raise AssertionError(f"unexpected literal {value!r}")


class SqlCompiler:
    """Turns rule trees into expressions over the given columns, one per declared field used."""

    def __init__(self, columns: Mapping[str, ColumnElement[Any]], as_of: dt.date, has_tag: TagTest | None) -> None:
        self.columns = columns
        self.as_of = as_of
        self.has_tag = has_tag

    def column(self, field: FieldRef) -> ColumnElement[Any]:
        try:
            return self.columns[field.name]
        except KeyError:
            raise RuleError("no_column", f"no column was given for field '{field.name}'", field.position) from None

    def day(self, count: DayCount, days: Literal) -> dt.date:
        assert isinstance(days.value, int)
        offset = dt.timedelta(days=days.value)
        return self.as_of - offset if count.function == "days_since" else self.as_of + offset

    def compare(self, node: Compare) -> ColumnElement[bool]:
        if isinstance(node.left, DayCount):
            assert isinstance(node.right, Literal)
            column = self.column(node.left.field)
            # days_since(d) op n  <=>  as_of - d op n  <=>  d mirror(op) as_of - n;  days_until keeps op.
            op = _MIRRORED[node.op] if node.left.function == "days_since" else node.op
            return _operate(op, column, sa.literal(self.day(node.left, node.right), sa.Date()))
        left = self.column(node.left)
        right = self.column(node.right) if isinstance(node.right, FieldRef) else _bound(node.right.value)
        return _operate(node.op, left, right)

    def in_list(self, node: InList) -> ColumnElement[bool]:
        values: list[ColumnElement[Any]]
        if isinstance(node.operand, DayCount):
            count = node.operand
            column = self.column(count.field)
            values = [sa.literal(self.day(count, v), sa.Date()) for v in node.values]
        else:
            column = self.column(node.operand)
            values = [_bound(v.value) for v in node.values]
        return column.not_in(values) if node.negated else column.in_(values)

    def build(self, node: Node) -> ColumnElement[bool]:
        """The expression for ``node``."""
        if isinstance(node, Compare):
            return self.compare(node)
        if isinstance(node, InList):
            return self.in_list(node)
        if isinstance(node, IsNull):
            column = self.column(node.field)
            return column.is_not(None) if node.negated else column.is_(None)
        if isinstance(node, Truth):
            return self.column(node.field) == sa.true()
        if isinstance(node, HasTag):
            if self.has_tag is None:
                raise RuleError("no_tag_source", "this rule tests tags: pass has_tag= to build its SQL", node.position)
            return self.has_tag(node.tag)
        if isinstance(node, Constant):
            return sa.true() if node.value else sa.false()
        if isinstance(node, Not):
            return sa.not_(self.build(node.operand))
        if isinstance(node, And):
            return sa.and_(*(self.build(child) for child in node.operands))
        assert isinstance(node, Or)
        return sa.or_(*(self.build(child) for child in node.operands))
