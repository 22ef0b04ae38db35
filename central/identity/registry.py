"""The identifier registry: which identifier types exist and how each value is normalized.

Types: ``phone`` (mainland mobiles as 11 digits, others E.164), ``member_card``, ``member_id``,
``email``, ``wechat_unionid``, ``wechat_openid`` and ``app_user_id`` (scoped by ``app_id``), and
``device_hash`` (weak: it never joins two customers). Known test numbers and all-same-digit
numbers are blocked.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shared.identifiers import normalize_card, normalize_phone

MAX_VALUE = 64
_SPACE = re.compile(r"\s+")
_BLOCKED_PHONES = frozenset({"13800138000", "12345678901", "13888888888", "13900139000"})
_BLOCKED_WORDS = frozenset({"null", "none", "anonymous", "0", "-", "n/a", "unknown"})


def _plain(raw: str) -> str | None:
    text = _SPACE.sub("", raw)
    return text or None


def _email(raw: str) -> str | None:
    text = raw.strip().lower()
    return text if "@" in text and " " not in text else None


def _phone(raw: str) -> str | None:
    value = normalize_phone(raw)
    if value is None or value in _BLOCKED_PHONES or len(set(value.lstrip("+"))) == 1:
        return None
    return value


@dataclass(frozen=True)
class IdentifierType:
    """One identifier type: its normalizer and whether it is app-scoped, unique or weak."""

    name: str
    normalize: Callable[[str], str | None]
    scoped: bool = False
    unique: bool = False
    weak: bool = False


DEFAULT_TYPES = (
    IdentifierType("member_id", _plain, unique=True),
    IdentifierType("member_card", normalize_card),
    IdentifierType("phone", _phone),
    IdentifierType("email", _email),
    IdentifierType("wechat_unionid", _plain, unique=True),
    IdentifierType("wechat_openid", _plain, scoped=True),
    IdentifierType("app_user_id", _plain, scoped=True),
    IdentifierType("device_hash", _plain, weak=True),
)


@dataclass
class Registry:
    """Identifier types by name."""

    types: dict[str, IdentifierType] = field(default_factory=lambda: {t.name: t for t in DEFAULT_TYPES})

    def normalize(self, type: str, value: str, app_id: str | None) -> str | None:
        """The stored form of ``value`` as a ``type``; None if unusable, blocked or of an unknown type."""
        kind = self.types.get(type)
        if kind is None or value.strip().lower() in _BLOCKED_WORDS:
            return None
        normalized = kind.normalize(value)
        if normalized is None:
            return None
        if kind.scoped:
            if not app_id:
                return None
            normalized = f"{app_id}:{normalized}"
        return normalized if len(normalized) <= MAX_VALUE else None

    def is_weak(self, type: str) -> bool:
        """True for types that may attach to a customer but never join two."""
        kind = self.types.get(type)
        return kind is not None and kind.weak


def load_registry(config: Any = None) -> Registry:
    """The registry for ``config`` (the retail defaults)."""
    return Registry()
