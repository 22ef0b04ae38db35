"""Rules as HQ saves them: parsed once, with a normalised text, a fingerprint and a version."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.sql.elements import ColumnElement

from central.customers.rules.closure import Predicate, compile_predicate
from central.customers.rules.errors import DEFAULT_LIMITS, Limits, RuleError
from central.customers.rules.parser import Parser
from central.customers.rules.schema import Schema
from central.customers.rules.sql import SqlCompiler, TagTest
from central.customers.rules.tokens import tokenize
from central.customers.rules.tree import Node, normalise

_RULE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}\Z")
# Evaluation dates a rule may be given: day-count bounds (at most a century either side) stay valid dates.
_EARLIEST, _LATEST = dt.date(1900, 1, 1), dt.date(9000, 12, 31)


def _checked_day(as_of: dt.date) -> dt.date:
    if not isinstance(as_of, dt.date) or isinstance(as_of, dt.datetime) or not _EARLIEST <= as_of <= _LATEST:
        raise RuleError("bad_as_of", f"rules are evaluated on a date between {_EARLIEST} and {_LATEST}, not {as_of!r}")
    return as_of


@dataclass(frozen=True, eq=False)
class Rule:
    """A parsed and checked rule: evaluate it in Python or in SQL; ``fingerprint`` names its meaning."""

    source: str
    tree: Node
    schema: Schema

    @property
    def normalised(self) -> str:
        """The rule in its one canonical spelling."""
        return normalise(self.tree)

    @property
    def fingerprint(self) -> str:
        """sha256 of the normalised text: equal for rules that differ only in spelling, spacing or comments."""
        return "sha256:" + hashlib.sha256(self.normalised.encode("utf-8")).hexdigest()

    def predicate(self, as_of: dt.date) -> Predicate:
        """A function of one customer's fields (a mapping) that tells whether the rule holds on ``as_of``."""
        return compile_predicate(self.tree, self.schema, _checked_day(as_of))

    def sql(
        self, columns: Mapping[str, ColumnElement[Any]], *, as_of: dt.date, has_tag: TagTest | None = None
    ) -> ColumnElement[bool]:
        """The rule as a SQL condition over ``columns`` (field name to column) for a WHERE clause.

        ``has_tag(name)`` builds the condition that a row's customer carries tag ``name`` (for example
        an EXISTS over a tags table); it is needed only by rules that test tags.
        """
        return SqlCompiler(columns, _checked_day(as_of), has_tag).build(self.tree)


def parse_rule(source: str, schema: Schema, limits: Limits = DEFAULT_LIMITS) -> Rule:
    """Parse and check ``source`` against ``schema``; raises :class:`RuleError` with position and reason."""
    if not isinstance(source, str):
        raise RuleError("not_text", f"a rule is text, not {type(source).__name__}")
    tree = Parser(tokenize(source, limits), schema, limits).parse()
    return Rule(source, tree, schema)


@dataclass(frozen=True)
class RuleDefinition:
    """A named rule as stored: its source, a version that changes only when its meaning does, and the
    fingerprint of that meaning."""

    name: str
    version: int
    source: str
    fingerprint: str

    @classmethod
    def create(cls, name: str, source: str, schema: Schema) -> RuleDefinition:
        """Version 1 of a new rule; raises :class:`RuleError` if the name or the rule is invalid."""
        if not _RULE_NAME.match(name):
            raise RuleError("bad_name", f"rule name {name!r}: 1-64 lower-case letters, digits, '-' or '_'")
        return cls(name, 1, source, parse_rule(source, schema).fingerprint)

    def revise(self, source: str, schema: Schema) -> RuleDefinition:
        """The definition after an edit: the same version if only spelling changed, else the next one."""
        fingerprint = parse_rule(source, schema).fingerprint
        version = self.version if fingerprint == self.fingerprint else self.version + 1
        return RuleDefinition(self.name, version, source, fingerprint)

    def rule(self, schema: Schema) -> Rule:
        """The stored rule, parsed again; refused if it no longer means what was saved."""
        rule = parse_rule(self.source, schema)
        if rule.fingerprint != self.fingerprint:
            raise RuleError(
                "definition_changed",
                f"rule '{self.name}' version {self.version} now normalises to {rule.fingerprint}, "
                f"not the saved {self.fingerprint}: review it and save it again as a new version",
            )
        return rule
