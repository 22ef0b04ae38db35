"""Keyed hashes of erased customers' identifiers, and the check that keeps late evidence from bringing them back.

An erased customer's identifiers leave central; what stays of each is an HMAC-SHA256 of its type
and stored form under a random key kept in ``erasure_key`` (decision 0098), with the erasure's
time. An event that names such an identifier and was observed at or before that time (a store that
was offline uploading its receipts a week late) links nothing through it; one observed later is a
new person giving that number, and links as any other.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import Connection, insert, select

from central.identity.plans import Fact, Pair
from central.models import table
from central.privacy.models import ErasedIdentifier, ErasureKey

_keys = table(ErasureKey)
_erased = table(ErasedIdentifier)


def key(conn: Connection) -> bytes | None:
    """The database's erasure key, None before the first erasure."""
    found = conn.execute(select(_keys.c.key).where(_keys.c.id == 1)).scalar_one_or_none()
    return bytes.fromhex(found) if found is not None else None


def key_for_erasure(conn: Connection, now: datetime) -> bytes:
    """The erasure key, drawn and stored at the first erasure (in its transaction)."""
    found = key(conn)
    if found is None:
        found = secrets.token_bytes(32)
        conn.execute(insert(_keys).values(id=1, key=found.hex(), created_at=now))
    return found


def digest(secret: bytes, kind: str, value: str) -> str:
    """The keyed hash of one identifier in its stored form."""
    return hmac.new(secret, kind.encode() + b"\0" + value.encode(), hashlib.sha256).hexdigest()


def erased_before(conn: Connection, pairs: Iterable[Pair]) -> dict[Pair, datetime]:
    """Of ``pairs``, those an erasure removed, each with the time of its latest erasure."""
    wanted = set(pairs)
    secret = key(conn) if wanted else None
    if secret is None:
        return {}
    by_digest = {digest(secret, kind, value): (kind, value) for kind, value in wanted}
    found: dict[Pair, datetime] = {}
    rows = conn.execute(
        select(_erased.c.digest, _erased.c.erased_at).where(_erased.c.digest.in_(list(by_digest)))
    ).all()
    for hashed, at in rows:
        pair = by_digest[hashed]
        if pair not in found or at > found[pair]:
            found[pair] = at
    return found


def withhold(conn: Connection, facts: Sequence[Fact]) -> tuple[list[Fact], dict[int, tuple[Pair, ...]]]:
    """``facts`` without the identifiers an erasure removed after (or when) each fact was observed,
    and, by the fact's position, the identifiers withheld from it (empty when nothing was)."""
    erased = erased_before(conn, {p for f in facts for p in (*f.strong, *f.weak)})
    if not erased:
        return list(facts), {}
    kept = []
    withheld: dict[int, tuple[Pair, ...]] = {}
    for index, fact in enumerate(facts):

        def live(pair: Pair, at: datetime = fact.observed_at) -> bool:
            until = erased.get(pair)
            return until is None or at > until

        strong, weak = tuple(filter(live, fact.strong)), tuple(filter(live, fact.weak))
        if len(strong) + len(weak) < len(fact.strong) + len(fact.weak):
            withheld[index] = tuple(p for p in (*fact.strong, *fact.weak) if not live(p))
        kept.append(Fact(fact.observed_at, strong, weak))
    return kept, withheld
