"""Central's clock as the agent sees it: measured from the ``Date`` of central's replies.

Central refuses a signed request whose timestamp is more than a few minutes from its own clock, and
store PCs drift, lose their battery-backed clock, or get set by hand. So the agent signs with its
estimate of central's time instead of its own. Each reply gives a sample: the ``Date`` header
(whole seconds, so the middle of that second) against the midpoint of the request's round trip.
The estimate is anchored to the monotonic clock, so when someone sets this PC's clock back an
hour the signing time does not move; only the reported offset does.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Sample:
    """Central's time (epoch seconds) at a monotonic instant, within ``uncertainty`` seconds."""

    central: float
    monotonic: float
    uncertainty: float


class CentralClock:
    """Estimates central's time; falls back on this PC's clock until central has answered once."""

    def __init__(self, clock: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._monotonic = monotonic
        self.sample: Sample | None = None

    def observe(self, date: str | None, sent: float, received: float) -> bool:
        """Take a reply's ``Date`` header, with the monotonic times the request left and the answer came.

        Returns False if the header is absent or unreadable (the estimate is unchanged).
        """
        if not date:
            return False
        try:
            central = email.utils.parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError, IndexError):
            return False
        # Date is truncated to the second: the middle of that second is the best guess, within half a
        # second, plus half the round trip for not knowing when in it central wrote the header.
        self.sample = Sample(central + 0.5, (sent + received) / 2, 0.5 + (received - sent) / 2)
        return True

    def at(self, monotonic: float) -> float:
        """Central's time at the given monotonic instant (this PC's clock if never measured)."""
        sample = self.sample
        if sample is None:
            return self._clock() + (monotonic - self._monotonic())
        return sample.central + (monotonic - sample.monotonic)

    def now(self) -> float:
        """Central's time now, as far as this agent can tell."""
        return self.at(self._monotonic())

    def offset(self) -> float | None:
        """Central's clock minus this PC's, in seconds (positive: this PC is behind); None until measured."""
        if self.sample is None:
            return None
        return self.now() - self._clock()
