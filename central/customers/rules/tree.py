"""The checked rule as a tree of frozen nodes, and its normalised text (the basis of its fingerprint)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from central.customers.rules.errors import Position
from central.customers.rules.schema import FieldType

# A literal's value: Decimal for numbers, int for a count of days, str, datetime.date or bool.
Value = Decimal | int | str | dt.date | bool


@dataclass(frozen=True)
class FieldRef:
    """A declared field of the customer."""

    name: str
    type: FieldType
    position: Position = dataclasses.field(compare=False)


@dataclass(frozen=True)
class DayCount:
    """days_since(field) or days_until(field): whole days between a date field and the evaluation date."""

    function: str
    field: FieldRef
    position: Position = dataclasses.field(compare=False)


@dataclass(frozen=True)
class Literal:
    """A constant; ``days`` marks a whole number of days compared with a DayCount."""

    value: Value
    days: bool = False


@dataclass(frozen=True)
class Compare:
    """left op right, with op one of = != < <= > >=."""

    op: str
    left: FieldRef | DayCount
    right: FieldRef | Literal


@dataclass(frozen=True)
class InList:
    """operand [not] in (values), the values distinct and sorted."""

    operand: FieldRef | DayCount
    values: tuple[Literal, ...]
    negated: bool


@dataclass(frozen=True)
class IsNull:
    """field is [not] null."""

    field: FieldRef
    negated: bool


@dataclass(frozen=True)
class Truth:
    """A bool field used on its own as a condition."""

    field: FieldRef


@dataclass(frozen=True)
class HasTag:
    """has_tag("name"): the customer carries this tag."""

    tag: str
    position: Position = dataclasses.field(compare=False)


@dataclass(frozen=True)
class Constant:
    """true or false."""

    value: bool
    position: Position = dataclasses.field(compare=False)


@dataclass(frozen=True)
class Not:
    """not operand."""

    operand: Node


@dataclass(frozen=True)
class And:
    """All operands hold (two or more, none of them an And)."""

    operands: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    """Any operand holds (two or more, none of them an Or)."""

    operands: tuple[Node, ...]


Node = Compare | InList | IsNull | Truth | HasTag | Constant | Not | And | Or


def literal_text(literal: Literal) -> str:
    """A literal as the normalised rule writes it."""
    value = literal.value
    if literal.days:
        return f"{value}d"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return str(int(value)) if value == value.to_integral_value() else format(value.normalize(), "f")
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
        return f'"{escaped}"'
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _operand_text(operand: FieldRef | DayCount | Literal) -> str:
    if isinstance(operand, FieldRef):
        return operand.name
    if isinstance(operand, DayCount):
        return f"{operand.function}({operand.field.name})"
    return literal_text(operand)


def _grouped(node: Node, inside: type) -> str:
    text = normalise(node)
    # 'and' binds tighter than 'or', 'not' tighter than both: only a looser child needs parentheses.
    looser = (Or,) if inside is And else (And, Or) if inside is Not else ()
    return f"({text})" if isinstance(node, looser) else text


def normalise(node: Node) -> str:
    """The rule in one canonical spelling: lower-case keywords, single spaces, minimal parentheses,
    numbers without redundant digits, durations in days, in-lists sorted and without repeats."""
    if isinstance(node, Compare):
        return f"{_operand_text(node.left)} {node.op} {_operand_text(node.right)}"
    if isinstance(node, InList):
        values = ", ".join(literal_text(v) for v in node.values)
        return f"{_operand_text(node.operand)} {'not in' if node.negated else 'in'} ({values})"
    if isinstance(node, IsNull):
        return f"{node.field.name} is {'not null' if node.negated else 'null'}"
    if isinstance(node, Truth):
        return node.field.name
    if isinstance(node, HasTag):
        return f"has_tag({literal_text(Literal(node.tag))})"
    if isinstance(node, Constant):
        return "true" if node.value else "false"
    if isinstance(node, Not):
        return f"not {_grouped(node.operand, Not)}"
    if isinstance(node, And):
        return " and ".join(_grouped(child, And) for child in node.operands)
    return " or ".join(_grouped(child, Or) for child in node.operands)
