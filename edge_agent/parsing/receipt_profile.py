"""Receipt profiles: declarative TOML that says how one POS model's receipt text becomes a sale.

A profile is data, never code: regular expressions and a few field rules. A short one::

    name = "cn-convenience-58"
    require = ['流水号', '应付']          # every pattern must find a line for the profile to apply

    [fields]
    receipt_no = '流水号\\s*[:：]\\s*(?P<value>\\d+)'
    total = '应付\\s*[:：]?\\s*[¥￥]?(?P<value>[\\d,]+\\.\\d{2})'
    datetime = '(?P<year>\\d{4})/(?P<month>\\d\\d)/(?P<day>\\d\\d) (?P<hour>\\d\\d):(?P<minute>\\d\\d)'
    [fields.store_name]
    line = 1                              # the first non-blank line

    [tenders]                             # every payment printed with its amount, in order
    pattern = '^(?P<method>微信支付|现金)\\s*[:：]\\s*(?P<amount>[\\d,]+\\.\\d{2})$'

    [items]
    start = '^-{10,}'                     # items follow the first line matching this
    end = '^-{10,}'                       # and stop at the next line matching this
    [[items.layouts]]                     # an item on two lines
    lines = ['^(?P<name>\\S.*)$', '^\\s+(?P<qty>\\d+) x (?P<unit_price>[\\d.]+)\\s+(?P<amount>[\\d.]+)$']

Loading validates everything and reports the file, line, column and reason of the first error.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from typing import Any

TEXT_FIELDS = ("receipt_no", "store_name", "register", "cashier", "payment_method")
CODE_FIELDS = ("card_last4", "member_card", "member_phone")
AMOUNT_FIELDS = ("total", "paid", "change", "discount_total", "tax_total")
FIELDS = (*TEXT_FIELDS, "datetime", *AMOUNT_FIELDS, *CODE_FIELDS)
PAYMENT_METHODS = ("wechat", "alipay", "cash", "bank_card", "unionpay_qr", "stored_value", "other")
ITEM_GROUPS = ("name", "sku", "qty", "unit_price", "amount")
TENDER_GROUPS = ("method", "amount")
DATE_GROUPS = ("year", "month", "day", "hour", "minute", "second", "ampm")
SECTIONS = ("all", "header", "footer")
COLLECT = ("first", "last", "sum")


class ProfileError(ValueError):
    """A profile that cannot be used: where (file, line, column) and why."""

    def __init__(self, source: str, line: int, column: int, reason: str) -> None:
        super().__init__(f"{source}:{line}:{column}: {reason}")
        self.source, self.line, self.column, self.reason = source, line, column, reason


@dataclass(frozen=True, slots=True)
class FieldRule:
    """Where one sale field is printed: patterns (a named group holds the value) or a line number."""

    name: str
    patterns: tuple[re.Pattern[str], ...] = ()
    line: int | None = None  # 1 is the first non-blank line, -1 the last
    section: str = "all"
    collect: str = "first"


@dataclass(frozen=True, slots=True)
class ItemLayout:
    """An item printed over ``len(lines)`` consecutive lines, each matching its pattern in full."""

    lines: tuple[re.Pattern[str], ...]


@dataclass(frozen=True, slots=True)
class Profile:
    """One POS model's receipt layout."""

    name: str
    source: str
    description: str = ""
    priority: int = 0
    require: tuple[re.Pattern[str], ...] = ()
    required: tuple[str, ...] = ("total",)
    fields: dict[str, FieldRule] = field(default_factory=dict)
    payment_methods: tuple[tuple[str, str], ...] = ()
    tenders: tuple[re.Pattern[str], ...] = ()  # fallbacks, like a field's: the first that finds a line decides
    items_start: re.Pattern[str] | None = None
    items_end: re.Pattern[str] | None = None
    items_skip: tuple[re.Pattern[str], ...] = ()
    layouts: tuple[ItemLayout, ...] = ()


_TOP_KEYS = {
    "name",
    "description",
    "priority",
    "require",
    "required",
    "fields",
    "payment_methods",
    "tenders",
    "items",
}
_RULE_KEYS = {"pattern", "line", "section", "collect"}
_ITEM_KEYS = {"start", "end", "skip", "layouts"}


def parse_profile(text: str, source: str) -> Profile:
    """Parse and validate one profile's TOML text; ``source`` names it in error messages."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        line, column = (int(found.group(1)), int(found.group(2))) if found else (1, 1)
        raise ProfileError(source, line, column, f"invalid TOML: {str(exc).split(' (at line')[0]}") from None
    return _Reader(text, source).profile(doc)


class _Reader:
    """Validates a parsed TOML document, pointing errors at the text they came from."""

    def __init__(self, text: str, source: str) -> None:
        self.lines = text.splitlines()
        self.source = source

    def fail(self, path: tuple[str | int, ...], reason: str, offset: int | None = None) -> ProfileError:
        line, column = _locate(self.lines, path)
        if offset is not None and line <= len(self.lines):
            # Point into the pattern: after the opening quote of the first string on that line.
            text = self.lines[line - 1]
            quote = min((i for i in (text.find("'"), text.find('"')) if i >= 0), default=-1)
            column = quote + 2 + offset if quote >= 0 else column
        dotted = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in path).replace(".[", "[")
        return ProfileError(self.source, line, column, f"{dotted}: {reason}")

    def profile(self, doc: dict[str, Any]) -> Profile:
        self.unknown(doc, _TOP_KEYS, ())
        name = doc.get("name")
        if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,63}", name):
            raise self.fail(("name",), "required: a lower-case name of letters, digits, '-', '_' or '.'")
        priority = doc.get("priority", 0)
        if not isinstance(priority, int) or isinstance(priority, bool):
            raise self.fail(("priority",), "expected an integer")
        required = self.strings(doc.get("required", ["total"]), ("required",))
        for index, item in enumerate(required):
            if item not in FIELDS:
                raise self.fail(("required", index), f"unknown field {item!r}")
        items = self.table(doc, ("items",))
        self.unknown(items, _ITEM_KEYS, ("items",))
        return Profile(
            name=name,
            source=self.source,
            description=str(doc.get("description", "")),
            priority=priority,
            require=self.patterns(doc.get("require", []), ("require",)),
            required=tuple(required),
            fields=self.fields(self.table(doc, ("fields",))),
            payment_methods=self.payment_methods(self.table(doc, ("payment_methods",))),
            tenders=self.tenders(self.table(doc, ("tenders",))),
            items_start=self.pattern(items["start"], ("items", "start")) if "start" in items else None,
            items_end=self.pattern(items["end"], ("items", "end")) if "end" in items else None,
            items_skip=self.patterns(items.get("skip", []), ("items", "skip")),
            layouts=self.layouts(items.get("layouts", []), ("items", "layouts")),
        )

    def unknown(self, table: dict[str, Any], known: set[str], path: tuple[str | int, ...]) -> None:
        for key in table:
            if key not in known:
                raise self.fail((*path, key), f"unknown key (expected one of {', '.join(sorted(known))})")

    def table(self, doc: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
        value = doc.get(path[-1], {})
        if not isinstance(value, dict):
            raise self.fail(path, "expected a table")
        return value

    def strings(self, value: Any, path: tuple[str | int, ...]) -> list[str]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(path, "expected a string or a list of strings")
        return value

    def pattern(self, value: Any, path: tuple[str | int, ...], groups: tuple[str, ...] = ()) -> re.Pattern[str]:
        if not isinstance(value, str):
            raise self.fail(path, "expected a regular expression string")
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise self.fail(path, f"invalid regular expression: {exc.msg} at position {exc.pos}", exc.pos) from None
        for group in compiled.groupindex:
            if group not in groups:
                allowed = ", ".join(groups) if groups else "none here"
                raise self.fail(path, f"unknown group (?P<{group}>...) (allowed: {allowed})")
        return compiled

    def patterns(
        self, value: Any, path: tuple[str | int, ...], groups: tuple[str, ...] = ()
    ) -> tuple[re.Pattern[str], ...]:
        values = self.strings(value, path)
        return tuple(self.pattern(v, (*path, i) if len(values) > 1 else path, groups) for i, v in enumerate(values))

    def fields(self, table: dict[str, Any]) -> dict[str, FieldRule]:
        rules = {}
        for name, raw in table.items():
            path: tuple[str | int, ...] = ("fields", name)
            if name not in FIELDS:
                raise self.fail(path, f"unknown field (expected one of {', '.join(FIELDS)})")
            spec = {"pattern": raw} if isinstance(raw, str | list) else raw
            if not isinstance(spec, dict):
                raise self.fail(path, "expected a pattern or a table with pattern, line, section, collect")
            self.unknown(spec, _RULE_KEYS, path)
            groups = DATE_GROUPS if name == "datetime" else ("value",)
            where = (*path, "pattern") if isinstance(raw, dict) else path
            patterns = self.patterns(spec.get("pattern", []), where, groups)
            for index, compiled in enumerate(patterns):
                needed = {"year", "month", "day", "hour", "minute"} if name == "datetime" else {"value"}
                if missing := needed - set(compiled.groupindex):
                    at = (*where, index) if len(patterns) > 1 else where
                    raise self.fail(at, f"missing group(s) {', '.join(sorted(missing))}")
            line = spec.get("line")
            if line is not None and (not isinstance(line, int) or isinstance(line, bool) or line == 0):
                raise self.fail((*path, "line"), "expected a non-zero integer (1 is the first line, -1 the last)")
            if not patterns and line is None:
                raise self.fail(path, "needs a pattern or a line")
            section, collect = spec.get("section", "all"), spec.get("collect", "first")
            if section not in SECTIONS:
                raise self.fail((*path, "section"), f"expected one of {', '.join(SECTIONS)}")
            if collect not in COLLECT or (collect == "sum" and name not in AMOUNT_FIELDS):
                raise self.fail((*path, "collect"), "expected first or last (sum: amount fields only)")
            rules[name] = FieldRule(name, patterns, line, section, collect)
        return rules

    def payment_methods(self, table: dict[str, Any]) -> tuple[tuple[str, str], ...]:
        for key, value in table.items():
            if value not in PAYMENT_METHODS:
                raise self.fail(("payment_methods", key), f"expected one of {', '.join(PAYMENT_METHODS)}")
        return tuple(table.items())

    def tenders(self, table: dict[str, Any]) -> tuple[re.Pattern[str], ...]:
        self.unknown(table, {"pattern"}, ("tenders",))
        where: tuple[str | int, ...] = ("tenders", "pattern")
        patterns = self.patterns(table.get("pattern", []), where, TENDER_GROUPS)
        for index, compiled in enumerate(patterns):
            if missing := set(TENDER_GROUPS) - set(compiled.groupindex):
                at = (*where, index) if len(patterns) > 1 else where
                raise self.fail(at, f"missing group(s) {', '.join(sorted(missing))}")
        return patterns

    def layouts(self, raw: Any, path: tuple[str | int, ...]) -> tuple[ItemLayout, ...]:
        if not isinstance(raw, list):
            raise self.fail(path, "expected [[items.layouts]] tables")
        layouts = []
        for index, spec in enumerate(raw):
            where = (*path, index)
            if not isinstance(spec, dict):
                raise self.fail(where, "expected a table with lines")
            self.unknown(spec, {"lines"}, where)
            lines = self.patterns(spec.get("lines", []), (*where, "lines"), ITEM_GROUPS)
            seen: list[str] = []
            for compiled in lines:
                if twice := set(seen) & set(compiled.groupindex):
                    raise self.fail((*where, "lines"), f"group {sorted(twice)[0]!r} appears on two lines")
                seen += list(compiled.groupindex)
            if not lines or "name" not in seen or not {"amount", "unit_price"} & set(seen):
                needs = "an item needs (?P<name>...) and (?P<amount>...) or (?P<unit_price>...)"
                raise self.fail((*where, "lines"), needs)
            layouts.append(ItemLayout(lines))
        return tuple(layouts)


def _locate(lines: list[str], path: tuple[str | int, ...]) -> tuple[int, int]:
    """Line and column (1-based) where the key at ``path`` is written, as near as the text shows."""
    keys = [p for p in path if isinstance(p, str)]
    header: list[str] = []
    counts: dict[str, int] = {}
    best = (1, 1)
    for number, text in enumerate(lines, start=1):
        stripped = text.strip()
        if stripped.startswith("["):
            name = stripped.strip("[] ")
            header = [part.strip().strip("\"'") for part in name.split(".")]
            counts[name] = counts.get(name, -1) + 1
            if keys[: len(header)] == header and _index_matches(path, header, counts[name]):
                best = (number, text.index("[") + 1)
            continue
        key = re.match(r"\s*([\"']?)([^\"'=\s]+)\1\s*=", text)
        if (
            key
            and [*header, *key.group(2).split(".")] == keys[: len(header) + 1 + key.group(2).count(".")]
            and len(header) < len(keys)
            and _index_matches(path, header, counts.get(".".join(header), 0))
        ):
            best = (number, text.index(key.group(2)) + 1)
            if len(header) + 1 >= len(keys):
                return best
    return best


def _index_matches(path: tuple[str | int, ...], header: list[str], count: int) -> bool:
    # [[items.layouts]] is an array of tables: the path's index picks which occurrence.
    indexes = [p for p in path[len(header) : len(header) + 1] if isinstance(p, int)]
    return not indexes or indexes[0] == count
