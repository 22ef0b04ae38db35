"""When to try central again: exponential backoff with full jitter, and central's ``Retry-After``.

Full jitter (each wait drawn uniformly below a ceiling that doubles per failure) spreads a fleet
of stores that lost central at the same moment, so they do not all come back in the same second.
When central says how long to wait (``Retry-After`` on a 429 or 503, in seconds or as an HTTP
date), that wait is a floor, stretched by up to a tenth for the same reason.
"""

from __future__ import annotations

import email.utils
import random
from collections.abc import Callable

RETRY_AFTER_LIMIT = 3600.0  # a longer Retry-After is taken as a misconfigured central, not a plan


class Backoff:
    """The wait after each consecutive failure; :meth:`reset` after a success."""

    def __init__(self, minimum: float, maximum: float, rng: Callable[[], float] = random.random) -> None:
        self.minimum = minimum
        self.maximum = maximum
        self._rng = rng
        self.failures = 0

    def ceiling(self) -> float:
        """The largest wait the next failure can draw."""
        return min(self.maximum, self.minimum * 2 ** min(self.failures, 60))

    def next_delay(self, retry_after: float | None = None) -> float:
        """Count a failure and return how long to wait before the next attempt."""
        ceiling = self.ceiling()
        self.failures += 1
        if retry_after is not None:
            return retry_after * (1 + 0.1 * self._rng())
        return ceiling * self._rng()

    def reset(self) -> None:
        self.failures = 0


def parse_retry_after(value: str | None, *, date: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP-date), or None if absent or unreadable.

    An HTTP-date is measured against the reply's own ``Date`` when it has one, so this PC's clock
    does not matter; otherwise against ``now`` (central's time as the agent estimates it).
    """
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return min(float(text), RETRY_AFTER_LIMIT)
    target = _http_date(text)
    if target is None:
        return None
    reference = _http_date(date) if date else None
    delay = target - (reference if reference is not None else now)
    return min(max(delay, 0.0), RETRY_AFTER_LIMIT)


def _http_date(text: str | None) -> float | None:
    """Seconds since the epoch of an HTTP date (RFC 9110 IMF-fixdate and its obsolete forms), or None."""
    if not text:
        return None
    try:
        return email.utils.parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
