"""Identifiers: UUIDv7 event ids (RFC 9562), time-ordered and unique without coordination."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

_MS_MASK = (1 << 48) - 1
# The variant is the top two bits of the 17th hex digit, 10xx: so that digit is one of 8, 9, a, b.
_VARIANT_DIGIT = {f"{n:x}": f"{0b1000 | (n & 0b11):x}" for n in range(16)}


def _prefix(ms: int) -> str:
    """The timestamp and version part of an id: ``tttttttt-tttt-7``."""
    text = f"{ms & _MS_MASK:012x}"
    return f"{text[:8]}-{text[8:]}-7"


class UUID7:
    """Generates UUIDv7 strings; monotonic within one generator even when the clock stands still.

    The 12-bit ``rand_a`` field is a counter within a millisecond (RFC 9562 section 6.2, method 1);
    if it overflows, the timestamp is advanced by one millisecond rather than going backwards.
    """

    def __init__(
        self,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        urandom: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self._clock_ms = clock_ms
        self._urandom = urandom
        self._lock = threading.Lock()
        self._last_ms = -1
        self._counter = 0

    def __call__(self) -> str:
        return self.many(1)[0]

    def many(self, count: int) -> list[str]:
        """``count`` ids in ascending order, drawing randomness once for all of them."""
        random_hex = self._urandom(8 * count + 1).hex()
        out = []
        with self._lock:
            now = self._clock_ms()
            if now > self._last_ms:
                self._last_ms = now
                self._counter = int(random_hex[-2:], 16)  # a random start that leaves room to count up
            else:
                self._counter += 1
            prefix = _prefix(self._last_ms)
            for i in range(count):
                if self._counter > 0xFFF:
                    self._last_ms += 1
                    self._counter = 0
                    prefix = _prefix(self._last_ms)
                rand = random_hex[16 * i : 16 * i + 16]
                out.append(f"{prefix}{self._counter:03x}-{_VARIANT_DIGIT[rand[0]]}{rand[1:4]}-{rand[4:]}")
                self._counter += 1
            self._counter -= 1
        return out


new_id = UUID7()
"""The process-wide generator; inject a UUID7 of your own where tests need fixed ids."""


def uuid7_time(value: str) -> float:
    """When a UUIDv7 was made, in seconds since the epoch (millisecond precision)."""
    return int(value[:8] + value[9:13], 16) / 1000
