"""One rounding for money wherever it is shown: whole fen, half away from zero, as the statistics count (0102)."""

from decimal import Decimal

import pytest

from central.console import amount
from central.customers.queries import money
from central.customers.sales import cents, fen
from central.customers.timeline import _amount
from central.sources.export import _cell

# Events stored before amounts finer than a fen were refused keep their text ("10.005"): the
# statistics count them in cents half away from zero, and every display must show the same.
STORED = [("10.005", "10.01"), ("10.125", "10.13"), ("10.135", "10.14"), ("0.001", "0.00"), ("-10.005", "-10.01")]


@pytest.mark.parametrize(("stored", "shown"), STORED)
def test_every_display_rounds_as_the_statistics_count(stored: str, shown: str) -> None:
    assert fen(stored) == Decimal(shown) == Decimal(cents(stored)) / 100
    assert money(Decimal(stored)) == shown
    assert amount(stored) == shown
    assert _amount(stored) == Decimal(shown)
    assert _cell(Decimal(stored)) == shown


def test_lines_shown_add_up_to_the_total_shown() -> None:
    """A header summed in cents and lines each shown another way disagreed by a fen (30.27 against 30.26)."""
    totals = ["10.005", "10.125", "10.135"]
    header = amount(sum(cents(t) for t in totals), cents=True)
    assert header == amount(sum(Decimal(amount(t)) for t in totals)) == "30.28"
