"""Sizes as people read them, in decimal units as disks are sold: the agent's status and the console agree."""

from __future__ import annotations


def size_words(value: int | None) -> str:
    """A size as people read it: 82.0 GB, 512.3 kB, 17 bytes (decimal units, as disks are sold)."""
    if value is None:
        return "unknown"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value} bytes"
