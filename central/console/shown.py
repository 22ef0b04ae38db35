"""What the console shows of a customer, as the logged-in user may see it: masked per role.

Identifiers are always masked; names, birthdays (the year shown), addresses, postcodes (the first
three digits shown) and free text are shown in full to admins only (``web.current_policy().unmasked``).
Gender, city and province, which a campaign targets by and which single out no one, are shown as they are.
"""

from __future__ import annotations

import re
from typing import Any

from central.accounts import web
from central.customers.queries import CustomerSummary
from central.db import get_session
from central.identity import golden
from shared.masking import mask_identifier, mask_name, mask_text

_MASKED_ATTRIBUTES = ("phone", "email", "address")


def role() -> str:
    """The logged-in user's role (the views run behind ``web.roles``, so there is one)."""
    active = web.current()
    return active.role if active else ""


def operator_name() -> str:
    """The name the identity ledger and notes record for this console user."""
    active = web.current()
    return active.username if active else "console"


def unmasked() -> bool:
    """Whether this user sees personal data in full (admins)."""
    return web.current_policy().unmasked


# Bidirectional controls (embeddings, overrides, isolates): typed into a note or sent by a source,
# U+202E makes "ABC" read "CBA". Staff see each one named instead of obeyed.
_BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")


def _visible_controls(text: str) -> str:
    return _BIDI_CONTROLS.sub(lambda m: f"[U+{ord(m.group()):04X}]", text)


def shown_text(value: str | None) -> str:
    """Free text as this user may see it: mobile numbers masked for every role but admin, bidi controls named."""
    return _visible_controls((value or "") if unmasked() else mask_text(value))


def shown_name(value: str | None) -> str:
    """A name as this user may see it: 张* for every role but admin."""
    return _visible_controls((value or "") if unmasked() else mask_name(value))


def shown_attribute(attribute: str, value: str) -> str:
    """A golden-record value as this user may see it."""
    if unmasked():
        return value
    if attribute == "name":
        return mask_name(value)
    if attribute == "birthday":
        return value[:4] + "-**-**"
    if attribute == "postcode":
        return value[:3] + "*" * (len(value) - 3)  # the area (a city's postal district), not the streets
    if attribute in _MASKED_ATTRIBUTES:
        return mask_identifier(attribute, value)
    return mask_text(value)


def customer_rows(summaries: list[CustomerSummary]) -> list[dict[str, Any]]:
    """What a list of customers shows of each: name (masked per role), identifiers (masked), purchases, last contact.

    Also the birthday and city (masked per role), which a reviewer compares two customers by.
    """
    records = golden.golden_of(get_session(), [c.id for c in summaries])

    def attribute(customer_id: int, name: str) -> str:
        value = records.get(customer_id, {}).get(name, ("", ""))[0]
        return shown_attribute(name, value) if value else ""

    return [
        {
            "id": c.id,
            "name": shown_name(records.get(c.id, {}).get("name", ("", ""))[0]),
            "birthday": attribute(c.id, "birthday"),
            "city": attribute(c.id, "city"),
            "identifiers": c.identifiers,
            "purchases": c.purchases,
            "last_seen_at": c.last_seen_at,
        }
        for c in summaries
    ]
