"""The identity envelope any event may carry: who it is about, beside what happened.

``identifiers`` ({type: value}, e.g. ``{"phone": "13812345678", "member_card": "VIP0042"}``),
``app_id`` (the app that scopes app-scoped identifiers such as a WeChat openid) and profile
``attributes`` ({name, gender, birthday, city, ...}). Everything is optional, and bounded so that
one event cannot carry an unbounded amount of personal data. Values are sent raw; central's
identifier registry normalizes them.
"""

from __future__ import annotations

import re
from typing import Any

# Enough for every identifier a member system holds about one person.
MAX_IDENTIFIERS = 16
MAX_IDENTIFIER_CHARS = 128
MAX_ATTRIBUTES = 32
MAX_ATTRIBUTE_NAME_CHARS = 64
MAX_ATTRIBUTE_CHARS = 256
TYPE_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}\Z")
_APP_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}\Z")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")

# Profile attributes a backfill line may give at the top level instead of inside ``attributes``.
ATTRIBUTE_SHORTHAND = ("name", "given_name", "family_name", "gender", "birthday", "city", "postcode", "province")


def identity_fields(
    identifiers: dict[str, str] | None, app_id: str | None, attributes: dict[str, str] | None
) -> dict[str, Any]:
    """The optional identity envelope of an event, leaving out what is absent."""
    fields: dict[str, Any] = {}
    if identifiers is not None:
        fields["identifiers"] = identifiers
    if app_id is not None:
        fields["app_id"] = app_id
    if attributes is not None:
        fields["attributes"] = attributes
    return fields


def envelope_problem(raw: dict[str, Any]) -> str | None:
    """The reason code for a malformed ``identifiers``, ``app_id`` or ``attributes``, or None."""
    identifiers = raw.get("identifiers")
    if identifiers is not None:
        if not isinstance(identifiers, dict) or not 1 <= len(identifiers) <= MAX_IDENTIFIERS:
            return "invalid_identifiers"
        if not _all_text(identifiers, MAX_IDENTIFIER_CHARS):
            for kind, value in identifiers.items():
                if not TYPE_RE.match(kind):
                    return "invalid_identifiers"
                if not is_text(value, MAX_IDENTIFIER_CHARS):
                    return f"invalid_identifier:{kind}"
        if not all(TYPE_RE.match(kind) for kind in identifiers):
            return "invalid_identifiers"
    app_id = raw.get("app_id")
    if app_id is not None and (not isinstance(app_id, str) or not _APP_ID_RE.match(app_id)):
        return "invalid_app_id"
    attributes = raw.get("attributes")
    if attributes is not None:
        if not isinstance(attributes, dict) or len(attributes) > MAX_ATTRIBUTES:
            return "invalid_attributes"
        if not _all_text(attributes, MAX_ATTRIBUTE_CHARS, empty_ok=True) or not _all_names(attributes):
            for name, value in attributes.items():
                if not is_text(name, MAX_ATTRIBUTE_NAME_CHARS):
                    return "invalid_attributes"
                if not isinstance(value, str) or len(value) > MAX_ATTRIBUTE_CHARS or _CONTROL_RE.search(value):
                    return f"invalid_attribute:{name}"
    return None


def _all_text(values: dict[str, Any], longest: int, *, empty_ok: bool = False) -> bool:
    """The fast path: every value a string within bounds, no control character in any of them."""
    texts = list(values.values())
    try:
        joined = "".join(texts)  # a TypeError names a value that is not a string
    except TypeError:
        return False
    if _CONTROL_RE.search(joined) or not (empty_ok or all(texts)):
        return False
    return len(joined) <= longest or max(map(len, texts)) <= longest


def _all_names(values: dict[str, Any]) -> bool:
    names = list(values)
    joined = "".join(names)
    if not all(names) or _CONTROL_RE.search(joined):
        return False
    return len(joined) <= MAX_ATTRIBUTE_NAME_CHARS or max(map(len, names)) <= MAX_ATTRIBUTE_NAME_CHARS


def is_text(value: Any, longest: int) -> bool:
    """A non-empty string of at most ``longest`` characters without control characters."""
    return isinstance(value, str) and 1 <= len(value) <= longest and not _CONTROL_RE.search(value)
