"""Taking a person out of stored events: their fields dropped, their identifiers and names replaced.

Used by the erasure (decision 0098) on every event that names the person, and by ingest on
evidence that arrives after it (:mod:`central.privacy.late`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, select, update

from central.campaigns.coupon_models import CouponConflict
from central.ingest.models import Event
from central.models import table

ERASED = "[erased]"
# Payload fields that name or describe a person, dropped wherever they stand at the top of a payload
# (and ``member``/``customer`` blocks at any depth); a sale's items and totals have none of these names.
PERSONAL_FIELDS = frozenset(
    {
        "member",
        "customer",
        "identifiers",
        "attributes",
        "name",
        "given_name",
        "family_name",
        "nickname",
        "phone",
        "mobile",
        "email",
        "address",
        "birthday",
        "gender",
        "city",
        "postcode",
        "province",
        "member_id",
        "member_card",
        "card",
        "wechat_openid",
        "wechat_unionid",
        "app_user_id",
        "openid",
        "unionid",
        "text",
        "note",
        "comment",
    }
)
NESTED_PERSONAL = frozenset({"member", "customer", "identifiers", "attributes"})


def scrub(value: Any, personal: re.Pattern[str] | None, *, top: bool = True, fields: bool = True) -> Any:
    """``value`` (a payload) without personal fields, and with every personal text inside replaced.

    With ``fields=False`` (an event of someone else that also names the person) no field is dropped:
    only the person's texts are replaced.
    """
    if isinstance(value, dict):
        dropped = (PERSONAL_FIELDS if top else NESTED_PERSONAL) if fields else frozenset()
        return {k: scrub(v, personal, top=False, fields=fields) for k, v in value.items() if k not in dropped}
    if isinstance(value, list):
        return [scrub(v, personal, top=False, fields=fields) for v in value]
    if isinstance(value, str) and personal is not None:
        return personal.sub(ERASED, value)
    return value


def pattern(strings: Sequence[str]) -> re.Pattern[str] | None:
    return re.compile("|".join(re.escape(s) for s in strings)) if strings else None


def scrub_events(
    conn: Connection,
    event_pks: Sequence[int],
    personal: re.Pattern[str] | None,
    others: dict[int, list[str]] | None = None,
) -> int:
    """Scrub the events: the person's own lose envelope, attributes and personal fields; events of
    someone else (``others``: event -> envelope keys naming the person) lose only what names the person."""
    events = table(Event)
    conflicts = table(CouponConflict)
    whole = others is None
    done = 0
    for start in range(0, len(event_pks), 500):
        chunk = event_pks[start : start + 500]
        rows = conn.execute(
            select(events.c.id, events.c.payload, events.c.identifiers, events.c.attributes).where(
                events.c.id.in_(chunk)
            )
        ).all()
        for pk, payload, sent, attributes in rows:
            values: dict[str, Any] = {"payload": scrub(payload, personal, fields=whole)}
            if others is None:
                values.update(identifiers=None, attributes=None)
            else:
                kept = {k: v for k, v in (sent or {}).items() if k not in others[pk]}
                values.update(identifiers=kept or None, attributes=scrub(attributes, personal, fields=False))
            conn.execute(update(events).where(events.c.id == pk).values(**values))
            done += 1
        for cid, payload in conn.execute(
            select(conflicts.c.id, conflicts.c.payload).where(conflicts.c.event_pk.in_(chunk))
        ).all():
            conn.execute(
                update(conflicts).where(conflicts.c.id == cid).values(payload=scrub(payload, personal, fields=whole))
            )
    return done
