"""How many inflated batch bytes all requests together may hold at once (``ingest.decode_budget_bytes``).

A gzip body of a few kilobytes can inflate to tens of megabytes; eight of them at once took central
from 87 MB to 812 MB. Each request inflates in chunks and takes every chunk from this process-wide
budget first; a request that finds the budget spent gives back what it holds and is answered 503
with ``Retry-After``, and agents simply send the batch again a little later. Raw bodies, read before
the signature is checked, are bounded separately by ``server.threads`` x ``ingest.max_body_bytes``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask

_EXTENSION = "central.ingest.budget"


class DecodeBudget:
    """A counter of bytes in use, shared by the request threads of one process."""

    def __init__(self, total: int) -> None:
        self.total = total
        self._used = 0
        self._lock = threading.Lock()

    @property
    def used(self) -> int:
        """Bytes currently held by requests."""
        return self._used

    def take(self, amount: int) -> bool:
        """Hold ``amount`` more bytes if the budget allows it; False (and nothing held) otherwise."""
        with self._lock:
            if self._used + amount > self.total:
                return False
            self._used += amount
            return True

    def give(self, amount: int) -> None:
        """Give back bytes taken earlier."""
        with self._lock:
            self._used -= amount

    @contextmanager
    def lease(self) -> Iterator[Lease]:
        """A lease for one request: everything it takes is given back when the block ends."""
        lease = Lease(self)
        try:
            yield lease
        finally:
            self.give(lease.held)


class Lease:
    """What one request holds of the budget."""

    def __init__(self, budget: DecodeBudget) -> None:
        self._budget = budget
        self.held = 0

    def take(self, amount: int) -> bool:
        """Hold ``amount`` more bytes for this request; False if the budget is spent."""
        if not self._budget.take(amount):
            return False
        self.held += amount
        return True


def init_app(app: Flask, total: int) -> None:
    """Give ``app`` its process-wide budget."""
    app.extensions[_EXTENSION] = DecodeBudget(total)


def budget_for(app: Flask) -> DecodeBudget:
    """The app's budget."""
    budget: DecodeBudget = app.extensions[_EXTENSION]
    return budget
