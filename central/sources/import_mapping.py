"""From a legacy member file's columns to the fields of a ``member.signup`` event.

``--map column=field`` names what a column holds. Fields: ``name`` (or ``given_name`` +
``family_name``), ``gender``, ``birthday``, ``address``, ``city``, ``postcode``, ``province``
(profile attributes); ``phone``, ``email``, ``member_card``, ``member_id`` and any other identifier
type of the registry (identifiers); ``external_id`` (the old system's own member id, kept as an
attribute and echoed in the report); ``attr:NAME`` (an extra attribute under another name);
``consent:PURPOSE[:CHANNEL]`` and ``consent_at`` (the member's consent answers and their date,
:mod:`central.sources.import_consent`); ``-`` (drop the column). Any other field (``nmae``) is
refused before anything is read, naming the fields there are. A column not mapped keeps its
place: as the field it is named after when its header is a field name, otherwise as an extra
attribute named by its header.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from central.identity.registry import Registry
from central.sources.import_consent import CONSENT, CONSENT_AT, answered_on, consent_target, read_answer
from central.sources.legacy_formats import (
    FormatError,
    clean_phone,
    clean_text,
    full_name,
    name_key,
    parse_date,
    parse_gender,
)
from shared import wire
from shared.envelope import MAX_ATTRIBUTE_CHARS, MAX_ATTRIBUTES, MAX_IDENTIFIERS, envelope_problem

PROFILE_FIELDS = ("name", "given_name", "family_name", "gender", "birthday", "address", "city", "postcode", "province")
IDENTIFIER_FIELDS = ("phone", "email", "member_card", "member_id")
EXTERNAL_ID = "external_id"
IGNORE = ("-", "ignore")
MAX_EXTERNAL_ID = 128
# The attribute under which a phone that did not link (shared by people of different names) is kept.
UNLINKED_PHONE = "unlinked_phone"


class MappingError(ValueError):
    """A --map that does not fit the file; the message names the column and what to do."""


@dataclass(frozen=True)
class Target:
    """What one column becomes: a profile field, an identifier type, an attribute, or nothing."""

    kind: str  # "profile", "identifier", "attribute", "external_id", "consent", "consent_at" or "ignore"
    name: str = ""


@dataclass(frozen=True)
class Mapping:
    """The file's header and each column's target."""

    header: tuple[str, ...]
    targets: tuple[Target, ...]

    @property
    def id_column(self) -> str | None:
        """The header of the column holding the old system's member id, if one is mapped."""
        for column, target in zip(self.header, self.targets, strict=True):
            if target.kind == EXTERNAL_ID:
                return column
        return None

    @property
    def has_consent(self) -> bool:
        """Whether a column holds consent answers."""
        return any(t.kind == CONSENT for t in self.targets)

    def canonical(self) -> list[list[str]]:
        """The mapping as plain data, for the import's digest."""
        return [[c, t.kind, t.name] for c, t in zip(self.header, self.targets, strict=True)]


def known_fields(identifier_types: Collection[str]) -> list[str]:
    """Every field a column can be mapped to, as ``--map`` spells them, for a registry of these identifier types."""
    others = sorted(set(identifier_types) - set(IDENTIFIER_FIELDS))
    return [
        *PROFILE_FIELDS,
        *IDENTIFIER_FIELDS,
        *others,
        EXTERNAL_ID,
        "attr:NAME",
        f"{CONSENT}:PURPOSE[:CHANNEL]",
        CONSENT_AT,
    ]


def _target(spec: str, identifier_types: Collection[str]) -> Target:
    spec = spec.strip()
    if spec in IGNORE:
        return Target("ignore")
    if spec.startswith("attr:") and spec[5:].strip():
        return Target("attribute", spec[5:].strip())
    if spec in PROFILE_FIELDS:
        return Target("profile", spec)
    if spec == EXTERNAL_ID:
        return Target(EXTERNAL_ID, EXTERNAL_ID)
    if spec == CONSENT_AT:
        return Target(CONSENT_AT, CONSENT_AT)
    if spec.startswith(f"{CONSENT}:"):
        try:
            return Target(CONSENT, consent_target(spec))
        except ValueError as exc:
            raise MappingError(f"consent column {exc}") from None
    if spec in IDENTIFIER_FIELDS or spec in identifier_types:
        return Target("identifier", spec)
    # Not an identifier type of the registry either: read as one, every value would be dropped as unusable.
    fields = known_fields(identifier_types)
    close = difflib.get_close_matches(spec, [f for f in fields if ":" not in f], n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise MappingError(f"unknown field {spec!r}{hint}; the fields are {', '.join(fields)} and - (drop the column)")


def build_mapping(
    header: Sequence[str], specs: Sequence[str], where: str, identifier_types: Collection[str]
) -> Mapping:
    """Each column's target from ``--map column=field`` specs and the header's own names.

    A field must be one of :func:`known_fields` for the registry's ``identifier_types``.
    """
    columns = tuple(clean_text(h) or f"column_{i + 1}" for i, h in enumerate(header))
    if len(set(columns)) != len(columns):
        raise MappingError(f"the header of {where} names a column twice; rename it first")
    given: dict[str, Target] = {}
    for spec in specs:
        column, sep, target = spec.partition("=")
        column = clean_text(column)
        if not sep or not column:
            raise MappingError(f"--map {spec!r} must be COLUMN=FIELD")
        if column not in columns:
            raise MappingError(f"--map {spec!r}: {where} has no column {column!r} (columns: {', '.join(columns)})")
        try:
            given[column] = _target(target, identifier_types)
        except MappingError as exc:
            raise MappingError(f"--map {spec!r}: {exc}") from None
    targets = []
    for column in columns:
        if column in given:
            targets.append(given[column])
        elif column.lower() in (*PROFILE_FIELDS, *IDENTIFIER_FIELDS, EXTERNAL_ID):
            targets.append(_target(column.lower(), identifier_types))
        else:
            targets.append(Target("attribute", column))
    seen: set[tuple[str, str]] = set()
    for column, t in zip(columns, targets, strict=True):
        if t.kind != "ignore" and (t.kind, t.name) in seen:
            raise MappingError(f"{t.name!r} comes from two columns (the second is {column!r}); map one of them to -")
        seen.add((t.kind, t.name))
    kept = sum(1 for t in targets if t.kind in ("attribute", "profile", EXTERNAL_ID)) + 1  # + unlinked_phone
    if kept > MAX_ATTRIBUTES:
        raise MappingError(f"{where} keeps {kept} attributes, more than {MAX_ATTRIBUTES}: drop columns with COLUMN=-")
    if sum(1 for t in targets if t.kind == "identifier") > MAX_IDENTIFIERS:
        raise MappingError(f"more than {MAX_IDENTIFIERS} identifier columns")
    return Mapping(columns, tuple(targets))


@dataclass
class PreparedRow:
    """One row read: the event fields, or why it was rejected, and what was dropped along the way."""

    row: int
    external_id: str | None = None
    identifiers: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    rejected: str | None = None
    phone: str | None = None  # normalized, for the phone + name rule
    name_key: str = ""
    consents: dict[str, bool] = field(default_factory=dict)  # "purpose[:channel]" -> granted
    consent_at: datetime | None = None


def prepare_row(
    row: int,
    values: Sequence[str],
    mapping: Mapping,
    registry: Registry,
    *,
    date_order: str | None,
    today: date,
) -> PreparedRow:
    """Read one data row (numbered from 1) into identifiers and attributes, normalizing what exports vary."""
    out = PreparedRow(row)
    problem = shape_problem(values, len(mapping.header))
    if problem:
        out.rejected = problem
        if problem != "empty_row":
            for value, target in zip(values, mapping.targets, strict=False):
                if target.kind == EXTERNAL_ID:
                    out.external_id = clean_text(value)[:MAX_EXTERNAL_ID] or None
        return out
    profile: dict[str, str] = {}
    attributes = out.attributes
    for value, target in zip(values, mapping.targets, strict=False):
        if not value:
            continue
        kind = target.kind
        if kind == "ignore" or not (text := clean_text(value)):
            continue
        if kind == "attribute":
            if len(text) <= MAX_ATTRIBUTE_CHARS:
                attributes[target.name] = text
            else:
                out.warnings.append(f"too_long:{target.name}")
        elif kind == "profile":
            profile[target.name] = text
        elif kind == "identifier":
            _identifier(out, registry, target.name, text)
        elif kind == CONSENT:
            if (answer := read_answer(text)) is None:
                out.warnings.append(f"invalid_consent:{target.name}")
            else:
                out.consents[target.name] = answer
        elif kind == CONSENT_AT:
            try:
                out.consent_at = answered_on(parse_date(text, order=date_order, today=today))
            except FormatError as exc:
                out.warnings.append(f"{exc.code}:{CONSENT_AT}")
        else:
            out.external_id = text[:MAX_EXTERNAL_ID]
            attributes[EXTERNAL_ID] = text[:MAX_ATTRIBUTE_CHARS]
    _profile(out, profile, date_order, today)
    if not out.identifiers:
        out.rejected = "no_identifier"
    return out


def shape_problem(values: Sequence[str], columns: int) -> str | None:
    """``empty_row``, ``malformed_row:...`` (more or fewer fields than the header), or None."""
    if len(values) == columns:
        return None if any(values) and any(v.strip() for v in values) else "empty_row"
    if not any(v.strip() for v in values):
        return "empty_row"
    if len(values) < columns or any(v.strip() for v in values[columns:]):
        return f"malformed_row:{len(values)}_fields_for_{columns}_columns"
    return None


def phone_and_name(values: Sequence[str], mapping: Mapping, registry: Registry) -> tuple[str, str] | None:
    """The normalized phone and name key of a row, as :func:`prepare_row` finds them (the cheap first pass)."""
    if shape_problem(values, len(mapping.header)):
        return None
    parts = {}
    for value, target in zip(values, mapping.targets, strict=False):
        if value and ((target.name in _NAME_FIELDS and target.kind == "profile") or target.name == "phone"):
            parts[target.name] = value
    if "phone" not in parts or not (phone := registry.normalize("phone", clean_phone(parts["phone"]), None)):
        return None
    name = full_name(parts.get("name", ""), parts.get("given_name", ""), parts.get("family_name", ""))
    return (phone, name_key(name)) if name else None


_NAME_FIELDS = ("name", "given_name", "family_name")


def _identifier(out: PreparedRow, registry: Registry, kind: str, raw: str) -> None:
    value = clean_phone(raw) if kind == "phone" else clean_text(raw)
    normalized = registry.normalize(kind, value, None)
    if normalized is None:
        out.warnings.append(f"unusable:{kind}")
        return
    out.identifiers[kind] = value
    if kind == "phone":
        out.phone = normalized


def _attribute(out: PreparedRow, name: str, text: str) -> None:
    if len(text) > MAX_ATTRIBUTE_CHARS:
        out.warnings.append(f"too_long:{name}")
    else:
        out.attributes[name] = text


def _profile(out: PreparedRow, profile: dict[str, str], date_order: str | None, today: date) -> None:
    name = full_name(profile.get("name", ""), profile.get("given_name", ""), profile.get("family_name", ""))
    if name:
        _attribute(out, "name", name)
        out.name_key = name_key(name)
    if "gender" in profile:
        try:
            if gender := parse_gender(profile["gender"]):
                out.attributes["gender"] = gender
        except FormatError as exc:
            out.warnings.append(f"{exc.code}:gender")
    if "birthday" in profile:
        try:
            out.attributes["birthday"] = parse_date(profile["birthday"], order=date_order, today=today).isoformat()
        except FormatError as exc:
            out.warnings.append(f"{exc.code}:birthday")
    for key in ("address", "city", "postcode", "province"):
        if key in profile:
            _attribute(out, key, profile[key])


class PhoneNames:
    """The phone + name rule: a phone typed for people of different names links none of them."""

    def __init__(self) -> None:
        self._first: dict[str, str] = {}
        self.shared: set[str] = set()

    def add(self, phone: str, key: str) -> None:
        """Note that ``phone`` was given for a person whose name compares as ``key``."""
        first = self._first.setdefault(phone, key)
        if first != key:
            self.shared.add(phone)

    def apply(self, row: PreparedRow) -> None:
        """Withhold a shared phone from ``row``'s identifiers, keeping it as an attribute."""
        if row.phone in self.shared and "phone" in row.identifiers:
            row.attributes[UNLINKED_PHONE] = row.identifiers.pop("phone")
            row.warnings.append("phone_shared_by_other_names")


def event_of(prepared: PreparedRow, event_id: str, observed_at: str) -> wire.Event | str:
    """The ``member.signup`` event a prepared row becomes, or the envelope's reason to refuse it."""
    fields: dict[str, Any] = {}
    if prepared.identifiers:
        fields["identifiers"] = prepared.identifiers
    if prepared.attributes:
        fields["attributes"] = prepared.attributes
    # The row's values were read and bounded above; the envelope's own check still has the last word.
    problem = envelope_problem(fields)
    if problem:
        return problem
    return wire.Event(
        event_id=event_id,
        seq=0,
        kind="member.signup",
        observed_at=observed_at,
        store_id="",
        payload={"import_row": prepared.row},
        identifiers=fields.get("identifiers"),
        attributes=fields.get("attributes"),
    )
