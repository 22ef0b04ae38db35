"""The fields a rule may read: a declared schema of names and types, and nothing else."""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from central.customers.rules.tokens import KEYWORDS

_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}\Z")
FUNCTIONS = ("days_since", "days_until", "has_tag")


class FieldType(enum.Enum):
    """A field's type; it decides which comparisons a rule may make with it."""

    NUMBER = "number"
    STRING = "string"
    DATE = "date"
    BOOL = "bool"


@dataclass(frozen=True, eq=False)
class Schema:
    """Declared customer fields (statistics and attributes) by name, and where the customer's tags are.

    ``tags_field`` is the key of the evaluated mapping that holds the customer's tags (a collection of
    strings) for ``has_tag``; None when rules may not test tags.
    """

    fields: Mapping[str, FieldType]
    tags_field: str | None = "tags"
    withheld: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Fields this schema leaves out on purpose, each with what to use instead (a rule naming one is
    refused as ``withheld_field`` with that advice, not as an unknown field)."""

    def __post_init__(self) -> None:
        for name, kind in self.fields.items():
            if not _NAME.match(name) or name in KEYWORDS or name in FUNCTIONS:
                raise ValueError(f"schema field {name!r}: names are lower-case ASCII words, not keywords or functions")
            if not isinstance(kind, FieldType):
                raise ValueError(f"schema field {name!r}: type must be a FieldType, not {kind!r}")
        if self.tags_field is not None and self.tags_field in self.fields:
            raise ValueError(f"schema: tags field {self.tags_field!r} is also declared as a field")
        object.__setattr__(self, "fields", MappingProxyType(dict(self.fields)))
        object.__setattr__(self, "withheld", MappingProxyType(dict(self.withheld)))

    def type_of(self, name: str) -> FieldType | None:
        """The type of field ``name``, or None if the schema does not declare it."""
        return self.fields.get(name)

    @property
    def names(self) -> tuple[str, ...]:
        """The declared field names, sorted."""
        return tuple(sorted(self.fields))
