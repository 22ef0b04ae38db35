"""Evidence that arrives after its person was erased is stored without what names them.

A store that was offline uploads, days later, a receipt or a member scan observed before an
erasure. The tombstones keep its identifiers from linking anyone (decision 0098); without this the
event itself would still hold the number, card or member id in its envelope, payload and member
scan, in clear, for as long as events are kept. Ingest calls :func:`scrub` in the same transaction,
for the events whose identifiers the tombstones withheld: the envelope keys that name the erased
identifiers go, and their values (as stored, as sent, a phone's national form) are replaced in the
payload and attributes. An event that named no one else is scrubbed as the erasure scrubs the
person's own: no envelope, no attributes, no personal fields.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, select, update

from central.identity.plans import Pair
from central.identity.registry import Registry
from central.ingest.models import Event
from central.members.models import MemberScan
from central.models import table
from central.privacy import mentions, scrubbing

_events = table(Event)
_scans = table(MemberScan)


class Late:
    """One event's erased identifiers: the pairs withheld and the texts that spelled them."""

    def __init__(self, registry: Registry, fact: Any, pairs: Sequence[Pair]) -> None:
        held = mentions.Matcher(registry, pairs, ())
        self.sent = [raw for kind, raw in fact.identifiers if held(kind, raw, fact.app_id)]
        self.matcher = mentions.Matcher(registry, pairs, self.sent)
        strings = {*self.sent, *(value for _, value in pairs)}
        strings |= {value[3:] for kind, value in pairs if kind == "phone" and value.startswith("+86")}
        self.personal = scrubbing.pattern(sorted((s for s in strings if len(s) >= 2), key=len, reverse=True))
        self.member_ids = {value for kind, value in pairs if kind == "member_id"} | {
            raw for kind, raw in fact.identifiers if kind == "member_id" and raw in self.sent
        }


def scrub(conn: Connection, registry: Registry, facts: Sequence[Any], withheld: Mapping[int, Sequence[Pair]]) -> int:
    """Take the withheld identifiers (by fact position) out of the facts' stored events; how many changed."""
    late = {facts[i].event_pk: Late(registry, facts[i], pairs) for i, pairs in withheld.items()}
    rows = conn.execute(
        select(_events.c.id, _events.c.identifiers, _events.c.payload, _events.c.app_id).where(
            _events.c.id.in_(sorted(late))
        )
    ).all()
    done = 0
    for pk, sent, payload, app_id in rows:
        found = late[pk]
        body = payload if isinstance(payload, dict) else {}
        named = mentions.named_pairs(sent, body.get("member"), body.get("member_id"))
        keys = sorted({key for key, kind, raw in named if key is not None and found.matcher(kind, raw, app_id)})
        others = [key for key, kind, raw in named if not found.matcher(kind, raw, app_id)]
        whole = not others
        done += scrubbing.scrub_events(conn, [pk], found.personal, None if whole else {pk: keys})
        if found.member_ids:
            conn.execute(
                update(_scans)
                .where(_scans.c.event_pk == pk, _scans.c.member_id.in_(sorted(found.member_ids)))
                .values(member_id=scrubbing.ERASED)
            )
    return done
