"""Names compared and spelled: the comparison key, toneless pinyin, its initials, the blocking letter.

A name's comparison key folds what differs between the ways tills, apps and exports type one
name (full-width letters, spaces and dots, invisible format characters such as a zero-width
space or a bidi override, case, traditional characters with OpenCC); the golden
record compares names by it and the search by name reads it. The spellings (pypinyin) let a name
be found and matched by its pinyin: 张伟, 張偉 and Zhang Wei all spell zhangwei, initials zw. A
name starts with its surname, and a surname whose reading differs from the character's everyday
one is spelled as a surname (曾刚 zenggang).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable
from functools import cache
from typing import Any, cast

from central.identity.normalizers import drop_format_characters

_SEPARATORS = re.compile(r"[\s·•.\-_'’,，、]+")


@cache
def _converter() -> Any:
    import opencc

    return opencc.OpenCC("t2s")


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


# Names repeat (a chain's members share surnames and given names): remember recent answers.
@functools.lru_cache(maxsize=1 << 16)
def name_key(name: str) -> str:
    """A name in the form used for comparison: 張 三 / 张三 / ＺＨＡＮＧ San all compare by this."""
    text = drop_format_characters(unicodedata.normalize("NFKC", name))
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
        words = _WORDS.findall(drop_format_characters(unicodedata.normalize("NFKC", name)).casefold())
        return "".join(word[:1] for word in words)
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
