"""The store's local calendar: which day and which hour a moment belongs to, in the store's time zone."""

from __future__ import annotations

from datetime import date, datetime, timedelta, tzinfo


class StoreCalendar:
    """Local day and hour windows (as epoch seconds) in one time zone, cached for the hot path."""

    def __init__(self, tz: tzinfo) -> None:
        self.tz = tz
        self._day: tuple[float, float, date] = (0.0, 0.0, date.min)
        self._hour: tuple[float, float] = (0.0, 0.0)

    def local(self, at: float) -> datetime:
        """The moment as a local, offset-aware datetime."""
        return datetime.fromtimestamp(at, self.tz)

    def day(self, at: float) -> date:
        """The local date of a moment."""
        start, end, day = self._day
        if not start <= at < end:
            self.day_window(at)
            day = self._day[2]
        return day

    def day_window(self, at: float) -> tuple[float, float]:
        """Start and end (epoch seconds) of the local day holding ``at``."""
        start, end, _ = self._day
        if start <= at < end:
            return start, end
        moment = self.local(at)
        midnight = datetime(moment.year, moment.month, moment.day, tzinfo=self.tz)
        following = midnight.date() + timedelta(days=1)
        end_at = datetime(following.year, following.month, following.day, tzinfo=self.tz).timestamp()
        self._day = (midnight.timestamp(), end_at, midnight.date())
        return self._day[0], self._day[1]

    def hour_window(self, at: float) -> tuple[float, float]:
        """Start and end (epoch seconds) of the local clock hour holding ``at``."""
        start, end = self._hour
        if start <= at < end:
            return start, end
        floor = self.local(at).replace(minute=0, second=0, microsecond=0).timestamp()
        self._hour = (floor, floor + 3600.0)
        return self._hour
