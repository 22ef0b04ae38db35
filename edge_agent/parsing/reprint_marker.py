"""Whether a printed receipt says it is a reprint: the till's marker line, e.g. ``*** 重打印 ***``.

Pure: the receipt's text lines in, a yes or no out. Only a short line that is nothing but the marker
and its decoration counts, so an item named after a reprint does not. Central decides what a
reprint is by its receipt number (decision 0085); the marker only lets it flag a reprint whose first
copy it never received.
"""

from __future__ import annotations

from collections.abc import Iterable

MARKERS = ("重打印", "重新打印", "补打", "补打印", "重印", "REPRINT", "RE-PRINT", "DUPLICATE")
_DECORATION = " \t*-=#[]()【】（）<>《》:：!！"


def is_reprint(lines: Iterable[str]) -> bool:
    """True if one of ``lines`` is a reprint marker line."""
    for line in lines:
        bare = line.strip(_DECORATION).upper()
        if bare in MARKERS or bare.removesuffix("小票") in MARKERS or bare.removesuffix("COPY").strip() in MARKERS:
            return True
    return False
