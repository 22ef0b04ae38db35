"""Python's cyclic garbage collector paused around a batch of short-lived objects.

A batch of ingest, statistics or import work allocates hundreds of thousands of small objects that
live until the batch is written and form no cycles. With the collector on they set off its passes
and, surviving those, move to the oldest generation, whose growth then sets off full passes over
every long-lived object of the process (pypinyin's phrase dictionary alone holds about 190,000
lists): about a tenth of the batch's CPU time. Freed before the collector is back on, they are never
examined at all; what a batch leaves in cycles is bounded by the batch and collected afterwards.

The switch is process-wide. If another thread has it off already, it stays off here and that
thread turns it back on, so a batch never leaves it off for good.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cycle collector off for the ``with`` block, back on after it (unless it was off before)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
