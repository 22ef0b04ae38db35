"""The golden record: one surviving value per profile attribute, chosen from every observation.

Survivorship per attribute: the value most recently stated by a *verified* source wins; without
one, the value stated most often; then the value from the source ranked first in the registry's
``sources.priority``; then the most recent. Values are compared by a normalized key (names:
full-width folded, spaces and dots dropped, case folded, traditional characters simplified with
OpenCC) but stored and shown exactly as a source sent them. Each surviving value remembers its
source. The preferred store also counts the customer's receipts per store.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from typing import TYPE_CHECKING, Any, cast

import orjson
from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from central import bulk
from central.customers.models import Receipt
from central.identity.models import AttributeObservation, GoldenAttribute, MatchKey
from central.identity.registry import Registry
from central.models import table

if TYPE_CHECKING:
    from central.identity.resolve import IdentityFact

ATTRIBUTES = ("name", "gender", "birthday", "city", "postcode", "preferred_store")
MAX_VALUE = 255
_SEPARATORS = re.compile(r"[\s·•.\-_'’,，、]+")
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


@cache
def _converter() -> Any:
    import opencc

    return opencc.OpenCC("t2s")


# Names repeat (a chain's members share surnames and given names): remember recent answers.
_WORDS = re.compile(r"[^\W_]+")
# Surnames read otherwise than the character's everyday reading, which pypinyin gives (曾 is zeng as a
# surname, ceng in 曾经): the name's first character is spelled so. Only surnames whose everyday
# reading is not also a common surname reading are listed (覃 qin/tan, 乐 yue/le stay as pypinyin
# reads them). Readings as the surname entries of the Xiandai Hanyu Cidian give them; see
# https://zh.wikipedia.org/wiki/百家姓 for the surnames with their pinyin.
SURNAME_READINGS = {
    "曾": "zeng", "单": "shan", "解": "xie", "仇": "qiu", "区": "ou", "查": "zha", "朴": "piao",
    "召": "shao", "繁": "po", "员": "yun", "翟": "zhai", "缪": "miao", "祭": "zhai", "秘": "bi",
    "种": "chong", "阚": "kan", "隗": "wei", "句": "gou", "藏": "zang", "薄": "bo", "都": "du",
    "洗": "xian", "黑": "he", "能": "nai", "折": "she",
}  # fmt: skip
# Compound surnames that begin with one of those characters and keep pypinyin's reading (单于 chanyu).
_COMPOUND_SURNAMES = ("单于",)


@functools.lru_cache(maxsize=1 << 16)
def name_key(name: str) -> str:
    """A name in the form used for comparison: 張 三 / 张三 / ＺＨＡＮＧ San all compare by this."""
    text = unicodedata.normalize("NFKC", name)
    text = _SEPARATORS.sub("", text).casefold()
    return str(_converter().convert(text))


def _surname_reading(key: str) -> str | None:
    """How a name's first character reads as a surname, where that differs from pypinyin's reading."""
    reading = SURNAME_READINGS.get(key[:1])
    return None if reading is None or key.startswith(_COMPOUND_SURNAMES) else reading


@functools.lru_cache(maxsize=1 << 16)
def _syllables(name: str) -> tuple[str, ...]:
    """The comparison key spelled in toneless pinyin, a syllable an item (a run of other letters: one item).

    The first character is read as a surname (:data:`SURNAME_READINGS`): 曾刚 is zeng gang.
    """
    from pypinyin import lazy_pinyin

    key = name_key(name)
    surname = _surname_reading(key)
    if surname is not None:
        return (surname, *(s.casefold() for s in lazy_pinyin(key[1:]) if s))
    return tuple(s.casefold() for s in lazy_pinyin(key) if s)


def name_pinyin(name: str) -> str:
    """The comparison key spelled in toneless pinyin, so that 张三 and Zhang San meet."""
    return "".join(_syllables(name))


def name_initials(name: str) -> str:
    """The first letters of a name's syllables (张伟 -> zw, 欧阳娜娜 -> oynn), or of its Latin words (Li Lei -> ll).

    What cashiers and customer service type for a Chinese name when the pinyin is long: the first
    letter of each character's reading. A name in Latin letters has no syllables to cut, so its
    words, as written, give the letters.
    """
    if name_key(name).isascii():
        return "".join(word[:1] for word in _WORDS.findall(unicodedata.normalize("NFKC", name).casefold()))
    return "".join(syllable[:1] for syllable in _syllables(name))


@functools.lru_cache(maxsize=1 << 14)
def _first_letters(char: str) -> frozenset[str]:
    """The first letters of every reading of one character; empty when pypinyin has none (not Han)."""
    from pypinyin import Style, pinyin

    found = pinyin(char, style=Style.NORMAL, heteronym=True, errors="ignore")
    return frozenset(reading.casefold()[:1] for reading in found[0]) if found and found[0] else frozenset()


@functools.lru_cache(maxsize=1 << 14)
def _word_initial(word: str) -> str:
    """The first letter of one word (a phrase of pypinyin's dictionary, or one character) spelled alone."""
    from pypinyin import lazy_pinyin

    return "".join(lazy_pinyin(word)).casefold()[:1]


def name_initial(name: str) -> str:
    """The first letter of :func:`name_pinyin`, found from the first character or the first word alone.

    A chain's names are mostly distinct, so a cache of names does not help, and spelling one costs
    about 80 µs (most of it pypinyin turning readings into the requested style, not segmenting).
    A surname read as a surname (曾 zeng, 单 shan: :data:`SURNAME_READINGS`) gives its letter at
    once. Only another polyphonic first character whose readings start with different letters
    needs the name's context, and of that only the first word pypinyin cuts the name into: it
    spells each word on its own (a phrase from its dictionary, else character by character).
    Those first words are few (mostly a surname alone), so their letters are kept.
    """
    key = name_key(name)
    if not key:
        return ""
    surname = _surname_reading(key)
    if surname is not None:
        return surname[0]
    letters = _first_letters(key[0])
    if len(letters) == 1:
        return next(iter(letters))
    return _word_initial(_segmenter()(key)[0]) or name_pinyin(name)[:1]


@cache
def _segmenter() -> Callable[[str], list[str]]:
    """pypinyin's word segmentation, as its spelling functions cut a text (imported once, on first need)."""
    from pypinyin.seg.simpleseg import seg

    return cast(Callable[[str], list[str]], seg)


def clean(attribute: str, raw: object) -> str | None:
    """An attribute value fit to store, or None (wrong type, empty, unreadable date or gender)."""
    if not isinstance(raw, str):
        return None
    text = raw.strip()[:MAX_VALUE]
    if not text or "\x00" in text:
        return None
    if attribute == "birthday":
        digits = re.sub(r"[^\d]", "-", unicodedata.normalize("NFKC", text)).strip("-")
        parts = [p for p in digits.split("-") if p]
        if len(parts) == 1 and len(parts[0]) == 8:
            parts = [parts[0][:4], parts[0][4:6], parts[0][6:]]
        try:
            return date(int(parts[0]), int(parts[1]), int(parts[2])).isoformat() if len(parts) == 3 else None
        except ValueError:
            return None
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
            value = clean(attribute, fact.attributes.get(attribute))
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


def match_block(golden: Mapping[str, str]) -> str | None:
    """The blocking key for weak matching: birthday and the first letter of the name in pinyin."""
    name, birthday = golden.get("name"), golden.get("birthday")
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
        block = match_block(chosen)
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
        per.setdefault(cid, {}).setdefault(attribute, []).append((value, source, bool(verified), instant(at), 1))
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
