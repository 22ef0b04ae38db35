"""The golden record: one surviving value per profile attribute, chosen from every observation.

Survivorship per attribute: the value most recently stated by a *verified* source wins; without
one, the value stated most often; then the value from the source ranked first in the registry's
``sources.priority``; then the most recent. Values are compared by a normalized key (names:
full-width folded, spaces, dots and format characters dropped, case folded, traditional
characters simplified with OpenCC: :mod:`central.identity.names`) but stored and shown as a
source sent them, trimmed and without invisible format characters. Each
surviving value remembers its source. The preferred store also counts the customer's receipts per
store.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from central import bulk
from central.customers.models import Receipt
from central.identity.models import AttributeObservation, GoldenAttribute, MatchKey
from central.identity.names import name_initial, name_initials, name_key
from central.identity.normalizers import drop_format_characters, fold
from central.identity.registry import Registry
from central.identity.registry import default_registry as _default_registry
from central.models import table

if TYPE_CHECKING:
    from central.identity.resolve import IdentityFact

ATTRIBUTES = ("name", "gender", "birthday", "city", "postcode", "preferred_store")
MAX_VALUE = 255
# The legacy import's oldest plausible date (central.sources.legacy_formats); a test holds them equal.
OLDEST_BIRTH_YEAR = 1900
# The time zone that reaches each calendar date first (Kiribati's Line Islands).
_FIRST_ZONE = timezone(timedelta(hours=14))
_GENDERS = {
    "f": "female",
    "female": "female",
    "woman": "female",
    "女": "female",
    "m": "male",
    "male": "male",
    "man": "male",
    "男": "male",
}
_observations = table(AttributeObservation)
_golden = table(GoldenAttribute)
_keys = table(MatchKey)
_receipts = table(Receipt)


def read_birthday(raw: str) -> date | None:
    """The calendar date a birthday value names (``1990-03-07``, ``1990/3/7``, ``19900307``, full-width), or None."""
    digits = re.sub(r"[^0-9]", "-", fold(raw)).strip("-")
    parts = [p for p in digits.split("-") if p]
    if len(parts) == 1 and len(parts[0]) == 8:
        parts = [parts[0][:4], parts[0][4:6], parts[0][6:]]
    try:
        return date(int(parts[0]), int(parts[1]), int(parts[2])) if len(parts) == 3 else None
    except ValueError:
        return None


def plausible_birthday(value: date, at: date | datetime) -> bool:
    """Whether ``value`` can be the birthday of a person known at ``at``: in 1900 or later, and not after ``at``.

    The bounds of the legacy import's ``implausible_date`` (:func:`central.sources.legacy_formats.parse_date`
    refuses dates before 1900 and after its day). ``at`` is the time the value was stated (an
    event's ``observed_at``) or a calendar date; a time is read as the date it already is
    somewhere (UTC+14), so that a baby born today in Shanghai is not refused before midnight UTC.
    A placeholder such as 0001-01-01 or 2099-01-01 is implausible; an implausible birthday would
    make an adult a minor (marketing refused) or put a customer in the wrong birthday campaign.
    """
    if isinstance(at, datetime):
        at = (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(_FIRST_ZONE).date()
    return value.year >= OLDEST_BIRTH_YEAR and value <= at


def clean(attribute: str, raw: object, *, at: datetime) -> str | None:
    """An attribute value stated at ``at`` fit to store, or None.

    None for what is not text or is empty, a birthday unreadable or not :func:`plausible_birthday`
    at ``at``, an unknown gender, a name of no letters. Invisible format characters
    (:func:`central.identity.normalizers.drop_format_characters`) are not kept: a bidi override
    would show the value reordered, and a name made of them is no name.
    """
    if not isinstance(raw, str):
        return None
    text = drop_format_characters(raw).strip()[:MAX_VALUE]
    if not text or "\x00" in text:
        return None
    if attribute == "name" and not name_key(text):
        return None
    if attribute == "birthday":
        day = read_birthday(text)
        return day.isoformat() if day is not None and plausible_birthday(day, at) else None
    if attribute == "gender":
        return _GENDERS.get(text.casefold())
    return text


def _search_keys(attribute: str, value: str) -> tuple[str | None, str | None, str | None]:
    """What the search by name compares: a name's comparison key, and its pinyin and initials when they cost nothing.

    A key in Latin letters is its own pinyin; a Han name's spellings are left to the name_pinyin job
    (:func:`central.customers.name_search.fill_pinyin`), off the import's and ingest's path.
    """
    if attribute != "name":
        return None, None, None
    key = name_key(value)[:MAX_VALUE]
    if key.isascii():
        return key, key, name_initials(value)[:MAX_VALUE]
    return key, None, None


def compare_key(attribute: str, value: str) -> str:
    """The key under which two observations of ``attribute`` count as the same value."""
    if attribute == "name":
        return name_key(value)
    return unicodedata.normalize("NFKC", value).strip().casefold()


# An observation as refresh reads it: (customer, attribute, value, source, verified, observed_at).
Observation = tuple[int, str, str, str, bool, datetime]


def observe(
    db: Session, registry: Registry, facts: Sequence[IdentityFact], customer_ids: Sequence[int | None], now: datetime
) -> list[Observation]:
    """Store the attributes of resolved facts; return what was stored (its customers' golden record may change)."""
    rows = []
    for fact, customer in zip(facts, customer_ids, strict=True):
        if customer is None or not fact.attributes:
            continue
        verified = fact.source in registry.verified_sources
        for attribute in ATTRIBUTES:
            value = clean(attribute, fact.attributes.get(attribute), at=fact.observed_at)
            if value is not None:
                rows.append((fact.event_pk, customer, attribute, value, fact.source, verified, fact.observed_at))
    columns = ("event_pk", "customer_id", "attribute", "value", "source", "verified", "observed_at")
    bulk.insert(db.connection(), _observations, columns, rows)
    return [row[1:] for row in rows]


@dataclass
class _Candidate:
    value: str
    source: str
    count: int
    latest: datetime
    latest_verified: datetime | None
    rank: int
    verified: bool


def survivor(
    registry: Registry, attribute: str, observations: Iterable[tuple[str, str, bool, datetime, int]]
) -> _Candidate | None:
    """The winning (value, source, verified, observed_at) among observations of one attribute.

    Each observation comes with how many times it was made (a store's receipts count as one
    observation each, read as one row per store).
    """
    groups: dict[str, _Candidate] = {}
    for value, source, verified, at, times in observations:
        key = compare_key(attribute, value)
        rank = registry.source_rank(source)
        found = groups.get(key)
        if found is None:
            groups[key] = _Candidate(value, source, times, at, at if verified else None, rank, verified)
            continue
        found.count += times
        found.rank = min(found.rank, rank)
        if verified and (found.latest_verified is None or at > found.latest_verified):
            found.latest_verified = at
            found.verified = True
        if at >= found.latest:
            found.latest, found.value, found.source = at, value, source
    if not groups:
        return None
    epoch = datetime.min.replace(tzinfo=None)

    def order(c: _Candidate) -> tuple[Any, ...]:
        verified_at = c.latest_verified.replace(tzinfo=None) if c.latest_verified else epoch
        return (c.latest_verified is not None, verified_at, c.count, -c.rank, c.latest)

    return max(groups.values(), key=order)


def birthday_evidence(raw: str | None, registry: Registry) -> str | None:
    """A golden birthday as matching evidence (``YYYY-MM-DD``): None when unknown, unreadable or a placeholder.

    A placeholder (the registry's ``[matching] placeholder_birthdays``, such as 1970-01-01) stays the
    golden value the source sent; it only never makes two customers look alike.
    """
    day = read_birthday(raw) if raw else None
    if day is None:
        return None
    iso = day.isoformat()
    return None if registry.placeholder_birthday(iso) else iso


def match_block(golden: Mapping[str, str], registry: Registry | None = None) -> str | None:
    """The blocking key for weak matching: birthday and the first letter of the name in pinyin.

    None without a name or a birthday that is evidence (:func:`birthday_evidence`; ``registry``
    defaults to the retail defaults).
    """
    name = golden.get("name")
    birthday = birthday_evidence(golden.get("birthday"), registry or _default_registry())
    if not name or not birthday:
        return None
    initial = name_initial(name)
    return f"{birthday}|{initial}" if initial else None


def _ids_in(conn: Connection, column: str, ids: Sequence[int]) -> tuple[str, tuple[Any, ...]]:
    """``column IN ids`` as driver SQL with one parameter (SQLAlchemy would expand and bind every id)."""
    if conn.dialect.name == "postgresql":
        return f"{column} = ANY(CAST(%s AS bigint[]))", (list(ids),)
    return f"{column} IN (SELECT value FROM json_each(?))", (orjson.dumps(list(ids)).decode(),)  # noqa: S608


def _fetch(conn: Connection, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    if conn.dialect.name == "postgresql":
        return [tuple(row) for row in conn.exec_driver_sql(sql, params).fetchall()]
    return bulk.sqlite_fetch(conn, sql, params)


def _instants() -> Callable[[Any], datetime]:
    """Aware UTC datetimes from what the driver hands back (SQLite: naive UTC text), one object per instant.

    An import's rows share one time, so one object per distinct value also lets ``bulk.insert``
    convert it once.
    """
    seen: dict[Any, datetime] = {}

    def instant(value: Any) -> datetime:
        found = seen.get(value)
        if found is None:
            found = seen[value] = bulk.stored_instant(value)
        return found

    return instant


def refresh(
    db: Session,
    registry: Registry,
    customer_ids: Iterable[int],
    now: datetime,
    *,
    new: Collection[int] = (),
    observed: Iterable[Observation] = (),
) -> None:
    """Recompute the golden record and match keys of ``customer_ids`` from their observations.

    ``new`` names customers created in this transaction, whose every observation is in ``observed``
    (and who have no receipts, golden record or match key yet): theirs are not read back.
    """
    ids = sorted(set(customer_ids))
    if not ids:
        return
    conn = db.connection()
    per: dict[int, dict[str, list[tuple[str, str, bool, datetime, int]]]] = {}
    for cid, attribute, value, source, verified, at in observed:
        if cid in new:
            per.setdefault(cid, {}).setdefault(attribute, []).append((value, source, verified, at, 1))
    stored = [cid for cid in ids if cid not in new]
    if stored:
        _read_stored(conn, stored, per)
    golden_rows = []
    key_rows = []
    for cid in ids:
        chosen: dict[str, str] = {}
        for attribute, observations in per.get(cid, {}).items():
            if len(observations) == 1:  # most customers of an import: one statement, nothing to choose
                value, source, verified, at, _ = observations[0]
                chosen[attribute] = value
                golden_rows.append((cid, attribute, value, source, verified, at, *_search_keys(attribute, value)))
                continue
            best = survivor(registry, attribute, observations)
            if best is not None:
                chosen[attribute] = best.value
                keys = _search_keys(attribute, best.value)
                golden_rows.append((cid, attribute, best.value, best.source, best.verified, best.latest, *keys))
        block = match_block(chosen, registry)
        if block:
            key_rows.append((block, cid))
    columns = (
        "customer_id",
        "attribute",
        "value",
        "source",
        "verified",
        "observed_at",
        "search_key",
        "pinyin_key",
        "initials_key",
    )
    bulk.insert(conn, _golden, columns, golden_rows)
    bulk.insert(conn, _keys, ("block", "customer_id"), key_rows)


def _read_stored(conn: Connection, ids: Sequence[int], per: dict[int, dict[str, list[Any]]]) -> None:
    """Read stored customers' observations and receipt counts into ``per``, and clear their old record."""
    instant = _instants()
    where, params = _ids_in(conn, "customer_id", ids)
    observed = _fetch(
        conn,
        f"SELECT customer_id, attribute, value, source, verified, observed_at FROM {_observations.name}"  # noqa: S608
        f" WHERE {where}",
        params,
    )
    for cid, attribute, value, source, verified, at in observed:
        when = instant(at)
        if attribute == "birthday" and clean(attribute, value, at=when) is None:
            continue  # stored before birthdays were checked: never the golden value
        per.setdefault(cid, {}).setdefault(attribute, []).append((value, source, bool(verified), when, 1))
    stores = _fetch(
        conn,
        f"SELECT customer_id, store_id, count(*), max(observed_at) FROM {_receipts.name}"  # noqa: S608
        f" WHERE {where} GROUP BY customer_id, store_id",
        params,
    )
    for cid, store, count, latest in stores:
        at = instant(latest)
        per.setdefault(cid, {}).setdefault("preferred_store", []).append((store, "receipts", False, at, int(count)))
    conn.exec_driver_sql(f"DELETE FROM {_golden.name} WHERE {where}", params)  # noqa: S608 - our own names
    conn.exec_driver_sql(f"DELETE FROM {_keys.name} WHERE {where}", params)  # noqa: S608 - our own names


def golden_of(db: Session, customer_ids: Iterable[int]) -> dict[int, dict[str, tuple[str, str]]]:
    """attribute -> (value, source) per customer."""
    out: dict[int, dict[str, tuple[str, str]]] = {}
    ids = sorted(set(customer_ids))
    if not ids:
        return out
    rows = db.execute(
        select(_golden.c.customer_id, _golden.c.attribute, _golden.c.value, _golden.c.source).where(
            _golden.c.customer_id.in_(ids)
        )
    )
    for cid, attribute, value, source in rows:
        out.setdefault(cid, {})[attribute] = (value, source)
    return out
