"""The naive baseline for identity scoring: merge on any shared value, as central did before the registry.

Every normalized identifier joins everything it appears with: no blocked values, no unique types,
no limits, no suspicion, no undo. ``naive_clusters`` gives the customer each fact would end up
with, so a scorer can print this figure beside the engine's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from shared.identifiers import normalize_card, normalize_phone

_NORMALIZE = {"phone": normalize_phone, "member_card": normalize_card}


def naive_key(kind: str, raw: str, app_id: str | None = None) -> tuple[str, str] | None:
    """The old step's normalization: phones and cards as before, anything else trimmed as sent."""
    normalize = _NORMALIZE.get(kind)
    value = normalize(raw) if normalize else (raw.strip() or None)
    if value is None:
        return None
    return (kind, f"{app_id}:{value}" if app_id and kind in ("wechat_openid", "app_user_id") else value)


def naive_clusters(facts: Sequence[Iterable[tuple[str, str]]]) -> list[int | None]:
    """A cluster number per fact (None: no usable identifier), merging on any shared value."""
    parent: dict[tuple[str, str], tuple[str, str]] = {}

    def find(key: tuple[str, str]) -> tuple[str, str]:
        root = key
        while parent.get(root, root) != root:
            root = parent[root]
        while key != root:
            parent[key], key = root, parent.get(key, key)
        return root

    keyed: list[list[tuple[str, str]]] = []
    for identifiers in facts:
        keys = [k for k in (naive_key(kind, raw) for kind, raw in identifiers) if k is not None]
        keyed.append(keys)
        for key in keys:
            parent.setdefault(key, key)
        for other in keys[1:]:
            a, b = find(keys[0]), find(other)
            if a != b:
                parent[max(a, b)] = min(a, b)
    numbers: dict[tuple[str, str], int] = {}
    out: list[int | None] = []
    for keys in keyed:
        out.append(numbers.setdefault(find(keys[0]), len(numbers)) if keys else None)
    return out
