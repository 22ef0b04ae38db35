"""Lifetime value: fit time on the CDNOW sample and prediction throughput for 1,000,000 customers.

The CDNOW summary is the one the ``lifetimes`` package ships (installed with the test extra). The
million customers are drawn with replacement from it, so their histories look like real ones.
Run with ``python -m bench clv`` or ``python -m bench.clv``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.common import line, median
from central.customers.clv import (
    Histories,
    expected_mean_spend,
    expected_purchases,
    fit_purchases,
    fit_spend,
    lifetime_value,
    probability_alive,
)


def cdnow() -> Histories:
    """The CDNOW sample (2,357 customers, weeks) with mean repeat spend, from the lifetimes package."""
    try:
        dist = importlib.metadata.distribution("lifetimes")
    except importlib.metadata.PackageNotFoundError:
        raise SystemExit(
            "bench clv: the CDNOW data come from the 'lifetimes' package: pip install -e '.[test]'"
        ) from None
    path = Path(str(dist.locate_file("lifetimes/datasets/cdnow_customers_summary_with_transactions.csv")))
    data = np.genfromtxt(path, delimiter=",", names=True)
    return Histories.of(data["x"], data["t_x"], data["T"], data["zbar"])


def _timed(runs: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return median(times)


def main(runs: int = 5, customers: int = 1_000_000) -> None:
    """Print fit times and per-customer prediction rates."""
    sample = cdnow()
    print(f"Lifetime value (BG/NBD + Gamma-Gamma), medians of {runs} runs")
    purchases = fit_purchases(sample)
    spend = fit_spend(sample)
    p, s = purchases.params, spend.params
    line("BG/NBD on CDNOW (r, alpha, a, b)", f"{p.r:.3f}, {p.alpha:.3f}, {p.a:.3f}, {p.b:.3f}")
    line("Gamma-Gamma on CDNOW (p, q, gamma)", f"{s.p:.2f}, {s.q:.2f}, {s.gamma:.2f}")
    line("BG/NBD fit, 2,357 customers", f"{_timed(runs, lambda: fit_purchases(sample)) * 1000:.0f} ms")
    line("Gamma-Gamma fit, 946 repeat customers", f"{_timed(runs, lambda: fit_spend(sample)) * 1000:.0f} ms")

    rng = np.random.default_rng(20050101)
    pick = rng.integers(0, len(sample), customers)
    assert sample.mean_spend is not None
    columns = (sample.frequency[pick], sample.recency[pick], sample.age[pick], sample.mean_spend[pick])
    many = Histories.of(*columns)
    print(f"  predictions for {customers:,} customers drawn from CDNOW:")

    def rate(label: str, work: Callable[[], object]) -> None:
        seconds = _timed(runs, work)
        line(label, f"{seconds:.2f} s  ({customers / seconds:,.0f} customers/s)")

    rate("  check the histories", lambda: Histories.of(*columns))
    rate("  expected purchases in 52 weeks", lambda: expected_purchases(p, many, 52.0))
    rate("  probability alive", lambda: probability_alive(p, many))
    rate("  expected spend per purchase", lambda: expected_mean_spend(s, many))
    rate(
        "  CLV, 12 monthly periods, 1 %/month",
        lambda: lifetime_value(p, s, many, periods=12, period_length=52 / 12, discount_rate=0.01),
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="bench.clv")
    parser.add_argument("--runs", type=int, default=5, help="repetitions; medians are reported")
    parser.add_argument("--customers", type=int, default=1_000_000, help="customers to predict for")
    arguments = parser.parse_args()
    main(runs=arguments.runs, customers=arguments.customers)
