"""The single writer thread: every event reaches the outbox through here, in grouped commits.

Sources hand records to :meth:`OutboxWriter.put` and go back to their device at once. The writer
collects whatever arrives within ``commit_interval`` (or until ``max_group`` records) and commits
the group in one transaction: one fsync for many events. If a commit fails (disk full, I/O
error) the group is kept and retried with backoff; nothing is dropped. The failure is logged once
with its real cause and the file ("disk full writing /var/lib/edge-agent/outbox.db"), and a full
disk is reported to ``on_disk_full`` (which releases the disk reserve, see diskspace.py).

Each record is checked against its kind's payload schema by :meth:`OutboxWriter.put`, on the
caller's thread (payload_gate.py): what does not fit is quarantined and counted in the same commit.

Between groups, and at least every ``housekeeping_interval`` seconds when idle, the writer runs
``housekeeping`` (quotas, shedding, purges: outbox_policy.py) on its own thread, because shedding
appends an ``agent.gap`` event and only the writer assigns sequence numbers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from edge_agent.diskspace import describe_write_error, is_disk_full
from edge_agent.outbox import Outbox, Record
from edge_agent.payload_gate import REFUSED_COUNTER, admit, is_refusal

log = logging.getLogger(__name__)


class OutboxWriter:
    """Owns the outbox's write side on a thread of its own."""

    def __init__(
        self,
        outbox: Outbox,
        *,
        commit_interval: float = 0.2,
        max_group: int = 2000,
        on_commit: Callable[[dict[str, int]], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_retry_delay: float = 30.0,
        on_disk_full: Callable[[str], None] | None = None,
        housekeeping: Callable[[], None] | None = None,
        housekeeping_interval: float = 5.0,
        gate: Callable[[Record], Record] = admit,
    ) -> None:
        self.outbox = outbox
        self.commit_interval = commit_interval
        self.max_group = max_group
        self._on_commit = on_commit
        self._clock = clock
        self._max_retry_delay = max_retry_delay
        self._on_disk_full = on_disk_full
        self._housekeeping = housekeeping
        self._housekeeping_interval = housekeeping_interval
        self._gate = gate
        self._next_housekeeping = 0.0
        self._housekeeping_error: str | None = None
        self._cond = threading.Condition()
        self._pending: list[Record] = []
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="outbox-writer", daemon=True)
        self.committed = 0
        self.commits = 0
        self.failed_commits = 0
        self.last_error: str | None = None  # the cause of the commit failures going on now, if any

    def start(self) -> None:
        self._thread.start()

    def put(self, record: Record) -> None:
        """Check ``record`` against its payload schema, then queue it for the next group commit.

        Safe from any thread; the check runs on the caller's, not the writer's.
        """
        record = self._gate(record)
        with self._cond:
            self._pending.append(record)
            # Wake the writer for the first record of a group, and when a group is full.
            if len(self._pending) == 1 or len(self._pending) == self.max_group:
                self._cond.notify()

    def backlog(self) -> int:
        """Records waiting for a commit."""
        return len(self._pending)

    def stop(self, timeout: float = 30.0) -> None:
        """Commit what is queued, then end the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(timeout)

    def _take(self) -> tuple[list[Record], bool]:
        """Wait for a record, then until the group is full or the interval is over; (group, last?)."""
        with self._cond:
            while not self._pending and not self._stopping:
                if self._housekeeping is None:
                    self._cond.wait()
                elif not self._cond.wait(max(0.0, self._next_housekeeping - self._clock())):
                    return [], False  # idle: time for housekeeping
            deadline = self._clock() + self.commit_interval
            while len(self._pending) < self.max_group and not self._stopping:
                remaining = deadline - self._clock()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            group = self._pending[: self.max_group]
            del self._pending[: self.max_group]
            return group, self._stopping and not self._pending

    def _run(self) -> None:
        while True:
            group, last = self._take()
            if group:
                self._commit(group)
            if self._housekeeping is not None and self._clock() >= self._next_housekeeping:
                self._housekeep()
            if last:
                break
        self.outbox.close()

    def _stop_requested(self, delay: float) -> bool:
        """Sleep ``delay`` seconds unless stop() is called; True if it was."""
        with self._cond:
            if not self._stopping:
                self._cond.wait(delay)
            return self._stopping

    def _commit(self, group: list[Record]) -> None:
        delay = 0.5
        refused = sum(1 for record in group if is_refusal(record))
        while True:
            try:
                offsets = self.outbox.append(group, count={REFUSED_COUNTER: refused} if refused else None)
            except Exception as exc:  # sqlite3 and OS errors alike: keep the group, retry
                self.failed_commits += 1
                message = describe_write_error(exc, self.outbox.path)
                if message != self.last_error:
                    log.error("outbox commit of %d records failed, will retry: %s", len(group), message)
                self.last_error = message
                if is_disk_full(exc) and self._on_disk_full is not None:
                    self._on_disk_full(message)
                if self._stop_requested(delay) and delay >= self._max_retry_delay:
                    log.error("outbox writer stopping with %d records uncommitted", len(group))
                    return
                delay = min(delay * 2, self._max_retry_delay)
                continue
            if self.last_error is not None:
                log.info("outbox commits are working again")
                self.last_error = None
            self.committed += len(group)
            self.commits += 1
            if self._on_commit is not None and offsets:
                self._on_commit(offsets)
            return

    def _housekeep(self) -> None:
        self._next_housekeeping = self._clock() + self._housekeeping_interval
        assert self._housekeeping is not None
        try:
            self._housekeeping()
        except Exception as exc:  # never let housekeeping stop the writer; it runs again next interval
            message = describe_write_error(exc, self.outbox.path)
            if message != self._housekeeping_error:
                log.error("outbox housekeeping failed, will retry: %s", message)
            self._housekeeping_error = message
            if is_disk_full(exc) and self._on_disk_full is not None:
                self._on_disk_full(message)
            return
        self._housekeeping_error = None
