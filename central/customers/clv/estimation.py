"""Maximum likelihood over positive parameters, searched on their logarithms."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from central.customers.clv.histories import ClvError, FloatArray

# exp(+-25) spans 1e-11 .. 7e10: wider than any parameter a real customer base yields; an optimum
# on this edge means the data do not pin the model down, which we report instead of returning it.
_LOG_BOUND = 25.0
_EDGE = _LOG_BOUND - 1e-3
# What the optimiser sees where the likelihood is not a finite number (it must stay finite for L-BFGS-B).
_PENALTY = 1e100


@dataclass(frozen=True)
class Estimate:
    """The maximising parameters, the total log-likelihood there and the optimiser's iterations."""

    params: FloatArray
    log_likelihood: float
    iterations: int


def maximise(
    log_likelihood: Callable[[FloatArray], FloatArray], weights: FloatArray, start: FloatArray, model: str
) -> Estimate:
    """Maximise ``sum(weights * log_likelihood(params))`` over positive ``params``."""
    total = float(weights.sum())

    def negative_mean(theta: FloatArray) -> float:
        with np.errstate(all="ignore"):
            value = -float(np.dot(weights, log_likelihood(np.exp(theta)))) / total
        return value if np.isfinite(value) else _PENALTY

    bounds = [(-_LOG_BOUND, _LOG_BOUND)] * start.size
    result = minimize(negative_mean, np.log(start), method="L-BFGS-B", bounds=bounds)
    iterations = int(result.nit)
    if not result.success or result.fun >= _PENALTY:
        # L-BFGS-B stops on a line-search failure where the surface is flat or ragged; the simplex
        # method needs no gradient and finishes the job from where it stopped.
        result = minimize(
            negative_mean,
            np.clip(result.x, -_LOG_BOUND, _LOG_BOUND),
            method="Nelder-Mead",
            bounds=bounds,
            options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 20_000},
        )
        iterations += int(result.nit)
    if not result.success or result.fun >= _PENALTY:
        raise ClvError("fit_failed", f"the {model} fit did not converge: {result.message}")
    if np.any(np.abs(result.x) >= _EDGE):
        raise ClvError(
            "not_identified",
            f"the {model} fit ran to the edge of the parameter space ({np.exp(result.x)}): "
            "the histories do not pin the model down; fit on more customers or a longer period",
        )
    return Estimate(np.exp(result.x), -float(result.fun) * total, iterations)


def compress(*columns: FloatArray) -> tuple[list[FloatArray], FloatArray]:
    """The distinct rows of ``columns`` and how often each occurs (the likelihood depends on rows only)."""
    # One lexsort and a scan: several times faster than np.unique(axis=0) on a million rows.
    order = np.lexsort(columns[::-1])
    ordered = [column[order] for column in columns]
    starts = np.zeros(order.size, dtype=bool)
    starts[:1] = True
    for column in ordered:
        starts[1:] |= column[1:] != column[:-1]
    first = np.flatnonzero(starts)
    counts = np.diff(np.append(first, order.size)).astype(np.float64)
    return [column[first] for column in ordered], counts
