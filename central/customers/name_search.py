"""Search customers by their name or its start: 张 finds every 张…, 张伟 every 张伟…, a page at a time.

The golden record keeps each customer's name as stored (``golden_attributes``, attribute ``name``)
and beside it the name's comparison key (``search_key``, :func:`central.identity.names.name_key`):
full-width letters, spaces and dots, case and traditional characters folded, so 丁 佳, 丁佳 and
丁·佳 are one name, 張 finds 张 and ＺＨＡＮＧ finds Zhang. The search folds what is typed the same way.
A prefix is a range of keys in code-point order, ``[prefix, prefix with its last character raised
by one)``, read from an index in that order, so a surname shared by a tenth of a chain costs one
page of index entries, not a scan:

* SQLite compares text byte by byte (UTF-8 keeps code-point order): the partial index
  ``ix_golden_attributes_name_key`` on ``(attribute, search_key, id) WHERE attribute = 'name'``
  serves range and order. (``attribute`` leads so that the planner, with or without statistics,
  sees more of the query served by it than by ``(attribute, value)``, which would read every name.)
* PostgreSQL compares text by the database's collation, in which a prefix is not always a range
  (zh_CN and en_US sort by language rules). The search compares ``search_key COLLATE "C"``, and
  the same index is built on ``(attribute, search_key COLLATE "C", id)`` there.

What is typed in Latin letters only (``zhangwei``, ``zhang``, ``Li Lei``) is compared with the
names' pinyin instead (``pinyin_key``, indexed the same way): 张伟, 張偉 and Zhang Wei all spell
zhangwei. Spelling a Han name takes about 80 µs, so it stays off the paths that write names: the
``name_pinyin`` job (:func:`fill_pinyin`) spells the names that have none yet, and a name in Latin
letters, its own spelling, gets it when written. Until the job has run, a new Han name is found by
its characters but not yet by its pinyin.

Letters with no vowel (``zw``, ``lxm``) are a name's initials, the first letter of each syllable of
its pinyin, as cashiers type them (``initials_key``, spelled with the pinyin and indexed the same
way): ``zw`` finds 张伟 and 赵薇. ``zh``, ``ch``, ``sh`` and a single letter start pinyin as well, and
are searched as pinyin: they find what their initials would, and more. Initials with a vowel
(``oynn`` for 欧阳娜娜, ``axl``) are searched as initials when no pinyin starts with them.

Pages are keyset-paginated by ``(key, id)``; the cursor is the last row's id only, so no name
travels in a URL (a marketer's URL would otherwise carry the unmasked name).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam, literal, literal_column, select, tuple_
from sqlalchemy.orm import Session

from central.identity.golden import MAX_VALUE
from central.identity.models import Customer, GoldenAttribute
from central.identity.names import name_initials, name_key, name_pinyin
from central.models import table

_golden = table(GoldenAttribute)
# A literal, not a bound value, so that PostgreSQL matches the partial index's predicate.
_NAME: ColumnElement[str] = literal_column("'name'")
_SURROGATES = range(0xD800, 0xE000)
# How what is typed is compared: with the names' comparison keys, their pinyin or their initials.
KEY, PINYIN, INITIALS = "key", "pinyin", "initials"
_VOWELS = frozenset("aeiouv")
# Typed without a vowel, yet the start of some pinyin: searched as pinyin (a superset of the initials' answer).
_PINYIN_STARTS = frozenset({"zh", "ch", "sh", "ng", "hm", "hng"})


def _after(char: str) -> str | None:
    """The next character in code-point order that text can hold, or None after the last one."""
    point = ord(char) + 1
    if point in _SURROGATES:
        point = _SURROGATES.stop
    return None if point > 0x10FFFF else chr(point)


def _column(compared: str) -> ColumnElement[Any]:
    return {KEY: _golden.c.search_key, PINYIN: _golden.c.pinyin_key, INITIALS: _golden.c.initials_key}[compared]


def _key(postgres: bool, compared: str = KEY) -> ColumnElement[Any]:
    column = _column(compared)
    return column.collate("C") if postgres else column


def search_key(typed: str) -> str:
    """What was typed, folded as the names' keys are (empty when nothing is left to search by)."""
    return name_key(typed.strip())


def compared_with(key: str) -> str:
    """What a folded search ``key`` is compared with: names' keys (KEY), pinyin (PINYIN) or initials (INITIALS)."""
    if not key.isascii():
        return KEY
    if len(key) > 1 and key.isalpha() and not _VOWELS & set(key) and key not in _PINYIN_STARTS:
        return INITIALS
    return PINYIN


def prefix_query(
    postgres: bool, prefix: str, limit: int, after: tuple[str, int] | None = None, *, compared: str = KEY
) -> Select[Any]:
    """Names whose key (or pinyin, or initials) starts with ``prefix`` (not empty), in that order, after ``after``."""
    value = _key(postgres, compared)
    query = (
        select(_golden.c.id, _golden.c.customer_id)
        .join(Customer, Customer.id == _golden.c.customer_id)
        .where(_golden.c.attribute == _NAME, value >= prefix, Customer.merged_into.is_(None))
    )
    following = _after(prefix[-1])
    if following is not None:
        query = query.where(value < prefix[:-1] + following)
    if after is not None:
        query = query.where(tuple_(value, _golden.c.id) > tuple_(literal(after[0]), literal(after[1])))
    return query.order_by(value, _golden.c.id).limit(limit)


def _compared(db: Session, postgres: bool, key: str) -> str:
    """:func:`compared_with`, but letters that start no name's pinyin are taken for initials (``oynn``)."""
    compared = compared_with(key)
    if compared != PINYIN or not key.isalpha():
        return compared
    return PINYIN if db.execute(prefix_query(postgres, key, 1, compared=PINYIN)).first() else INITIALS


def find_by_name_prefix(
    db: Session, prefix: str, limit: int = 50, after: int | None = None
) -> tuple[list[int], int | None]:
    """Live customers whose name starts with ``prefix`` (folded), by key then record; and the next page's ``after``."""
    prefix = search_key(prefix)
    if not prefix:
        return [], None
    postgres = db.get_bind().dialect.name == "postgresql"
    compared = _compared(db, postgres, prefix)
    anchor = None
    if after is not None:
        value = db.scalar(select(_column(compared)).where(_golden.c.id == after))
        anchor = None if value is None else (value, after)
    rows = db.execute(prefix_query(postgres, prefix, limit + 1, anchor, compared=compared)).all()
    shown = rows[:limit]
    return [int(r.customer_id) for r in shown], int(shown[-1].id) if len(rows) > limit else None


def find_by_name(db: Session, name: str, limit: int = 50, *, spellings: bool = True) -> list[int]:
    """Live customers whose whole name is ``name`` (folded), at most ``limit``, newest first.

    ``spellings=False`` compares with the names as written only, never with a Han name's pinyin or
    initials: two to four letters of initials, or a few hundred syllables after a known surname, are
    few enough guesses to read a masked name from whether its customer is found.
    """
    key = search_key(name)
    if not key:
        return []
    postgres = db.get_bind().dialect.name == "postgresql"
    compared = _compared(db, postgres, key) if spellings else KEY
    rows = db.scalars(
        select(_golden.c.customer_id)
        .join(Customer, Customer.id == _golden.c.customer_id)
        .where(_golden.c.attribute == _NAME, _key(postgres, compared) == key)
        .where(Customer.merged_into.is_(None))
        .order_by(_golden.c.customer_id.desc())
        .limit(limit)
    )
    return list(rows)


def fill_pinyin(db: Session, batch: int = 5000) -> int:
    """Spell in pinyin, with its initials, every name that has no initials yet, a batch a transaction; how many.

    The name_pinyin job's work. A name that spells to nothing (only symbols) gets empty spellings,
    so it is not read again.
    """
    spelled = 0
    while True:
        rows = db.execute(
            select(_golden.c.id, _golden.c.value)
            .where(_golden.c.attribute == _NAME, _golden.c.initials_key.is_(None))
            .order_by(_golden.c.id)
            .limit(batch)
        ).all()
        if not rows:
            return spelled
        db.execute(
            _golden.update()
            .where(_golden.c.id == bindparam("row_id"))
            .values(pinyin_key=bindparam("spelling"), initials_key=bindparam("letters")),
            [
                {
                    "row_id": row_id,
                    "spelling": name_pinyin(value)[:MAX_VALUE],
                    "letters": name_initials(value)[:MAX_VALUE],
                }
                for row_id, value in rows
            ],
        )
        db.commit()
        spelled += len(rows)
