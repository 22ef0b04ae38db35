"""The identifier registry: which identifier types exist and how each may link customers.

Configuration, not code: the retail defaults below apply unless ``identity.registry_file`` names a
TOML file that changes them (any key may be left out)::

    [review]
    suspicious_per_day = 5     # a value that brings more new identifiers than this to its customer
    suspicious_total = 50      # in one day, or in all, stops linking and goes to review

    [blocked]
    staff_phones = ["13900001111", "021-62345678"]   # the stores' and staff's own numbers

    [sources]
    priority = ["source:crm", "source:member_app"]   # earlier wins a survivorship tie
    verified = ["source:crm"]                        # attributes from these count as verified

    [matching]
    placeholder_birthdays = ["1900-01-01", "1970-01-01", "2000-01-01"]   # "--01-01": any year's
    block_limit = 30              # a match block with more customers is too common to pair within
    suggestions_per_customer = 3  # the best few weak matches a customer is offered

    [types.phone]
    limit = 3                  # most distinct phones one customer may hold ...
    window_days = 365          # ... seen within this many days
    blocked = ["13800138000"]
    blocked_patterns = ['^\\+86170\\d{8}$']

    [types.loyalty_no]         # a custom type
    normalizer = "upper"
    priority = 75
    unique = true

Errors name the file, the line and the key: ``registry.toml:14: types.phone.limit: must be a
positive integer``.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

from central.identity import normalizers
from shared.settings import key_line, section_line

WEAK = "weak"
TYPE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}\Z")
MAX_APP_ID = 32
MEMO_SIZE = 200_000
# usable(): (strong pairs strongest first, weak pairs sorted, reasons of the values left out).
Usable = tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...], tuple[str, ...]]


class RegistryError(ValueError):
    """A registry file that cannot be used: where (file, line, key) and why."""

    def __init__(self, source: str, line: int | None, key: str, reason: str) -> None:
        self.source, self.line, self.key, self.reason = source, line, key, reason
        where = f"{source}:{line}" if line else source
        super().__init__(f"{where}: {key}: {reason}" if key else f"{where}: {reason}")


@dataclass(frozen=True)
class IdentifierType:
    """How one identifier type is normalized and how it may link customers."""

    name: str
    normalizer: str
    priority: int
    unique: bool = False
    weak: bool = False
    scoped: bool = False
    limit: int | None = None
    window_days: int | None = None
    reassign_after_days: int | None = None
    blocked: frozenset[str] = frozenset()
    blocked_patterns: tuple[re.Pattern[str], ...] = ()


_DEFAULT_TYPES = (
    IdentifierType("member_id", "text", 100, unique=True),
    IdentifierType("wechat_unionid", "token", 90, unique=True),
    IdentifierType("member_card", "card", 80, limit=3),
    IdentifierType("app_user_id", "text", 70, scoped=True, limit=2),
    IdentifierType("wechat_openid", "token", 60, scoped=True, limit=4),
    IdentifierType("phone", "phone", 50, limit=3, window_days=365, reassign_after_days=90),
    IdentifierType("email", "email", 40, limit=3),
    IdentifierType("device_hash", "device", 10, weak=True, limit=10),
)
# Numbers typed at tills when the customer gives none: operator service numbers, documentation
# examples and keyboard runs that the junk rules (same digits, sequences) do not already catch.
DEFAULT_TEST_PHONES = ("13800138000", "12345678901", "13800001111", "13912345678", "18612345678", "13012345678")
# Birthdays that legacy tills, CRMs and spreadsheets fill in when nobody gave one: the zero dates of
# Excel and SQL Server (1900-01-01), Unix time (1970-01-01) and many forms (2000-01-01). The first of
# January of other years is not among them: real people are born then, and a date that a chain's
# data overuses is caught by the match block limit without losing everyone's real birthday.
DEFAULT_PLACEHOLDER_BIRTHDAYS = ("1900-01-01", "1970-01-01", "2000-01-01")
# A match block (birthday and name initial) with more customers than this is no evidence.
DEFAULT_BLOCK_LIMIT = 30
DEFAULT_SUGGESTIONS_PER_CUSTOMER = 3
_ANY_YEAR = re.compile(r"^--(\d\d)-(\d\d)\Z")
_ISO_DATE = re.compile(r"^(\d{4})-(\d\d)-(\d\d)\Z")


def placeholder_birthday_problem(entry: str) -> str | None:
    """Why ``entry`` cannot name a placeholder birthday (``YYYY-MM-DD`` or ``--MM-DD``), or None."""
    if match := _ANY_YEAR.match(entry):
        year, month, day = 2000, int(match.group(1)), int(match.group(2))  # a leap year: --02-29 exists
    elif match := _ISO_DATE.match(entry):
        year, month, day = (int(g) for g in match.groups())
    else:
        return f"{entry!r} is neither a date (1970-01-01) nor a day of any year (--01-01)"
    try:
        date(year, month, day)
    except ValueError:
        return f"{entry!r} is not a calendar date"
    return None


@dataclass(frozen=True)
class Registry:
    """Every identifier type plus the thresholds and source rankings resolution uses."""

    types: Mapping[str, IdentifierType]
    suspicious_per_day: int = 5
    suspicious_total: int = 50
    source_priority: tuple[str, ...] = ()
    verified_sources: frozenset[str] = frozenset()
    staff_phones: frozenset[str] = field(default_factory=frozenset)
    placeholder_birthdays: frozenset[str] = frozenset(DEFAULT_PLACEHOLDER_BIRTHDAYS)
    block_limit: int = DEFAULT_BLOCK_LIMIT
    suggestions_per_customer: int = DEFAULT_SUGGESTIONS_PER_CUSTOMER
    # Recent answers of check(): the same phones and cards come back batch after batch.
    _memo: dict[tuple[str, str, str | None], tuple[str | None, str | None]] = field(
        default_factory=dict, init=False, compare=False, hash=False, repr=False
    )
    # Recent answers of usable(): a customer's events name the same identifiers again and again.
    _usable_memo: dict[tuple[Any, str | None], Usable] = field(
        default_factory=dict, init=False, compare=False, hash=False, repr=False
    )

    def check(self, kind: str, raw: str, app_id: str | None = None) -> tuple[str | None, str | None]:
        """``(normalized, None)`` for a usable value, else ``(None, reason)``.

        Reasons: ``unknown_type``, ``placeholder``, ``invalid``, ``missing_app_id``, ``blocked``,
        ``staff_phone``, ``same_digits``, ``sequential``.
        """
        if not isinstance(raw, str) or not isinstance(app_id, str | None):
            return None, "placeholder"
        key = (kind, raw, app_id)
        found = self._memo.get(key)
        if found is None:
            if len(self._memo) >= MEMO_SIZE:
                self._memo.clear()
            found = self._memo[key] = self._check(kind, raw, app_id)
        return found

    def _check(self, kind: str, raw: str, app_id: str | None) -> tuple[str | None, str | None]:
        spec = self.types.get(kind)
        if spec is None:
            return None, "unknown_type"
        if not isinstance(raw, str) or raw.strip().casefold() in normalizers.PLACEHOLDERS:
            return None, "placeholder"
        value = normalizers.NORMALIZERS[spec.normalizer](raw)
        if value is None:
            return None, "invalid"
        junk = normalizers.junk_reason(spec.normalizer, value)
        if junk:
            return None, junk
        if value in spec.blocked or any(p.search(value) for p in spec.blocked_patterns):
            return None, "blocked"
        if spec.normalizer == "phone" and value in self.staff_phones:
            return None, "staff_phone"
        if spec.scoped:
            if not app_id or len(app_id) > MAX_APP_ID or not re.match(r"^[A-Za-z0-9_.\-]+\Z", app_id):
                return None, "missing_app_id"
            value = f"{app_id}:{value}"
        return value, None

    def usable(self, identifiers: tuple[tuple[str, str], ...], app_id: str | None = None) -> Usable:
        """An event's usable identifiers, normalized: strong ones strongest first, weak ones sorted,
        and the reason each unusable one was left out (in the order given)."""
        key = (identifiers, app_id)
        try:
            found = self._usable_memo.get(key)
        except TypeError:  # a value that is not text (rejected by check() as a placeholder)
            return self._usable(identifiers, app_id)
        if found is None:
            if len(self._usable_memo) >= MEMO_SIZE:
                self._usable_memo.clear()
            found = self._usable_memo[key] = self._usable(identifiers, app_id)
        return found

    def _usable(self, identifiers: tuple[tuple[str, str], ...], app_id: str | None) -> Usable:
        strong: dict[tuple[str, str], int] = {}
        weak: dict[tuple[str, str], int] = {}
        reasons: list[str] = []
        for kind, raw in identifiers:
            value, reason = self.check(kind, raw, app_id)
            if value is None:
                if reason is not None:
                    reasons.append(reason)
                continue
            spec = self.types[kind]
            (weak if spec.weak else strong)[(kind, value)] = spec.priority
        order = tuple(strong) if len(strong) < 2 else tuple(sorted(strong, key=lambda p: (-strong[p], p)))
        return order, tuple(sorted(weak)), tuple(reasons)

    def normalize(self, kind: str, raw: str, app_id: str | None = None) -> str | None:
        """The stored form of a value, or None when it cannot identify anyone (invalid or blocked)."""
        return self.check(kind, raw, app_id)[0]

    def placeholder_birthday(self, iso: str) -> bool:
        """Whether a birthday (``YYYY-MM-DD``) is a default that sources fill in, no evidence of anyone."""
        return iso in self.placeholder_birthdays or f"--{iso[5:]}" in self.placeholder_birthdays

    def source_rank(self, source: str) -> int:
        """Lower is preferred; sources not listed rank after every listed one."""
        try:
            return self.source_priority.index(source)
        except ValueError:
            return len(self.source_priority)


def _default_types() -> dict[str, IdentifierType]:
    types = {t.name: t for t in _DEFAULT_TYPES}
    phones = frozenset(v for v in (normalizers.phone(p) for p in DEFAULT_TEST_PHONES) if v)
    types["phone"] = replace(types["phone"], blocked=phones)
    return types


def default_registry() -> Registry:
    """The retail defaults."""
    return Registry(types=_default_types())


class _Reader:
    """Validates one parsed TOML document, reporting errors at the key's line in the file."""

    def __init__(self, source: str, text: str) -> None:
        self.source = source
        self.text = text

    def line_of(self, table: str, key: str | None) -> int | None:
        """The line that sets ``table.key`` (or opens ``[table]``), as a key or a table of its own."""
        dotted = ".".join(p for p in (table, key) if p)
        return (key_line(self.text, dotted) if key is not None else None) or section_line(self.text, dotted)

    def fail(self, table: str, key: str | None, reason: str) -> RegistryError:
        dotted = ".".join(p for p in (table, key) if p)
        return RegistryError(self.source, self.line_of(table, key), dotted, reason)

    def table(self, doc: Mapping[str, Any], name: str, allowed: set[str]) -> Mapping[str, Any]:
        value = doc.get(name, {})
        if not isinstance(value, dict):
            raise self.fail("", name, "must be a table")
        for key in value:
            if key not in allowed:
                raise self.fail(name, key, f"unknown key (expected one of {', '.join(sorted(allowed))})")
        return value

    def integer(self, table: str, values: Mapping[str, Any], key: str, *, minimum: int = 1) -> int | None:
        if key not in values:
            return None
        value = values[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise self.fail(table, key, f"must be an integer of at least {minimum}")
        return value

    def boolean(self, table: str, values: Mapping[str, Any], key: str) -> bool | None:
        if key not in values:
            return None
        if not isinstance(values[key], bool):
            raise self.fail(table, key, "must be true or false")
        return bool(values[key])

    def strings(self, table: str, values: Mapping[str, Any], key: str) -> list[str] | None:
        if key not in values:
            return None
        value = values[key]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(table, key, "must be a list of strings")
        return value


_TYPE_KEYS = {
    "normalizer",
    "priority",
    "unique",
    "weak",
    "scoped",
    "limit",
    "window_days",
    "reassign_after_days",
    "blocked",
    "blocked_patterns",
}


def _read_type(reader: _Reader, name: str, values: Any, base: IdentifierType | None) -> IdentifierType:
    table = f"types.{name}"
    if not TYPE_NAME.match(name):
        raise reader.fail(table, None, "a type name is 1-32 of a-z, 0-9 and _, starting with a letter")
    if not isinstance(values, dict):
        raise reader.fail("types", name, "must be a table")
    for key in values:
        if key not in _TYPE_KEYS:
            raise reader.fail(table, key, f"unknown key (expected one of {', '.join(sorted(_TYPE_KEYS))})")
    normalizer = values.get("normalizer", base.normalizer if base else None)
    if normalizer is None:
        raise reader.fail(table, None, "a custom type needs a normalizer")
    if normalizer not in normalizers.NORMALIZERS:
        raise reader.fail(
            table, "normalizer", f"unknown normalizer (one of {', '.join(sorted(normalizers.NORMALIZERS))})"
        )
    spec = base or IdentifierType(name, normalizer, 50)
    changes: dict[str, Any] = {"normalizer": normalizer}
    for key in ("priority", "limit", "window_days", "reassign_after_days"):
        number = reader.integer(table, values, key, minimum=0 if key == "priority" else 1)
        if number is not None:
            changes[key] = number
    for key in ("unique", "weak", "scoped"):
        flag = reader.boolean(table, values, key)
        if flag is not None:
            changes[key] = flag
    blocked = reader.strings(table, values, "blocked")
    if blocked is not None:
        normalize = normalizers.NORMALIZERS[normalizer]
        changes["blocked"] = spec.blocked | {v for v in (normalize(raw) for raw in blocked) if v}
    patterns = reader.strings(table, values, "blocked_patterns")
    if patterns is not None:
        compiled = []
        for pattern in patterns:
            try:
                compiled.append(re.compile(pattern))
            except re.error as exc:
                raise reader.fail(table, "blocked_patterns", f"bad regular expression {pattern!r}: {exc}") from None
        changes["blocked_patterns"] = (*spec.blocked_patterns, *compiled)
    result = replace(spec, **changes)
    if result.unique and result.weak:
        raise reader.fail(table, "weak", "a type cannot be both unique and weak")
    if result.window_days is not None and result.limit is None:
        raise reader.fail(table, "window_days", "window_days needs a limit")
    return result


def parse_registry(text: str, source: str = "<registry>") -> Registry:
    """The registry described by a TOML document, on top of the defaults; raise RegistryError."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        raise RegistryError(source, int(match.group(1)) if match else None, "", f"not valid TOML: {exc}") from None
    reader = _Reader(source, text)
    for key in doc:
        if key not in {"review", "blocked", "sources", "matching", "types"}:
            raise reader.fail("", key, "unknown section (expected review, blocked, sources, matching or types)")
    base = default_registry()
    review = reader.table(doc, "review", {"suspicious_per_day", "suspicious_total"})
    blocked = reader.table(doc, "blocked", {"staff_phones"})
    sources = reader.table(doc, "sources", {"priority", "verified"})
    matching = reader.table(doc, "matching", {"placeholder_birthdays", "block_limit", "suggestions_per_customer"})
    placeholders = reader.strings("matching", matching, "placeholder_birthdays")
    for entry in placeholders or ():
        if problem := placeholder_birthday_problem(entry):
            raise reader.fail("matching", "placeholder_birthdays", problem)
    types = dict(base.types)
    raw_types = doc.get("types", {})
    if not isinstance(raw_types, dict):
        raise reader.fail("", "types", "must be a table of types")
    for name, values in raw_types.items():
        types[name] = _read_type(reader, name, values, types.get(name))
    staff = set()
    for raw in reader.strings("blocked", blocked, "staff_phones") or []:
        value = normalizers.phone(raw)
        if value is None:
            raise reader.fail("blocked", "staff_phones", f"{raw!r} is not a phone number")
        staff.add(value)
    return Registry(
        types=types,
        suspicious_per_day=reader.integer("review", review, "suspicious_per_day") or base.suspicious_per_day,
        suspicious_total=reader.integer("review", review, "suspicious_total") or base.suspicious_total,
        source_priority=tuple(reader.strings("sources", sources, "priority") or ()),
        verified_sources=frozenset(reader.strings("sources", sources, "verified") or ()),
        staff_phones=frozenset(staff),
        # A list replaces the defaults, so that a chain whose members are born on one of them can say so.
        placeholder_birthdays=base.placeholder_birthdays if placeholders is None else frozenset(placeholders),
        block_limit=reader.integer("matching", matching, "block_limit", minimum=2) or base.block_limit,
        suggestions_per_customer=reader.integer("matching", matching, "suggestions_per_customer")
        or base.suggestions_per_customer,
    )


def load_registry(config: Any) -> Registry:
    """The registry for central's settings (``identity.registry_file``; empty means the defaults)."""
    path = getattr(config, "identity_registry_file", "") or ""
    if not path:
        return default_registry()
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise RegistryError(str(file), None, "", f"cannot read the identifier registry: {exc.strerror}") from None
    return parse_registry(text, str(file))
