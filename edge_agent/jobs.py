"""The agent's periodic jobs (sync, heartbeat, presence tick), each on its own thread, timed by the monotonic clock.

A store PC's wall clock steps: NTP corrects an hour's drift, a technician sets the time by hand, a
dead CMOS battery starts it in 2009. Jobs timed by the wall clock (APScheduler's interval trigger
computes each next run as a date) sleep through a backward step for as long as it was, so an agent
stopped syncing and sending heartbeats for an hour after a one-hour correction. Here a job waits
``interval`` seconds of elapsed time between the end of one run and the start of the next, whatever
the wall clock does; a run never overlaps itself; a run that raises is logged and the job goes on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Repeating:
    """``job`` run now (or after one interval), then every ``interval`` seconds until :meth:`stop`."""

    def __init__(self, name: str, job: Callable[[], object], interval: float, *, run_first: bool = True) -> None:
        self.name = name
        self.interval = interval
        self._job = job
        self._run_first = run_first
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"job-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def reschedule(self, interval: float) -> None:
        """Run every ``interval`` seconds from now on; a wait under way is cut short to the new interval."""
        self.interval = interval
        self._wake.set()

    def stop(self, timeout: float | None = None) -> None:
        """No further run; wait for a run under way to finish."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _loop(self) -> None:
        if not self._run_first:
            self._wait()
        while not self._stop.is_set():
            try:
                self._job()
            except Exception:
                log.exception("the %s job failed; it runs again in %.0f s", self.name, self.interval)
            self._wait()

    def _wait(self) -> None:
        """Sleep ``interval`` seconds of elapsed time (Event.wait is timed by the monotonic clock)."""
        while not self._stop.is_set():
            self._wake.clear()
            if not self._wake.wait(self.interval):
                return
            # Woken by reschedule: wait the new interval from now.
