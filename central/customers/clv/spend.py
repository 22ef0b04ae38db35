"""Gamma-Gamma: what a customer's purchases are worth on average.

Fader, Hardie and Lee (2005), "RFM and CLV: Using Iso-Value Curves for Customer Base Analysis",
Journal of Marketing Research 42(4); likelihood and conditional mean as in Fader and Hardie (2013),
"The Gamma-Gamma Model of Monetary Value". Only customers with repeat purchases inform the fit; the
model assumes spend is independent of how often a customer buys.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln

from central.customers.clv.estimation import compress, maximise
from central.customers.clv.histories import ClvError, FloatArray, Histories


@dataclass(frozen=True)
class SpendParams:
    """Gamma-Gamma parameters: a transaction ~ Gamma(p, nu), the customer's nu ~ Gamma(q, gamma)."""

    p: float
    q: float
    gamma: float

    def __post_init__(self) -> None:
        for name in ("p", "q", "gamma"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ClvError("bad_parameter", f"Gamma-Gamma parameter {name} = {value}: must be a positive number")

    @property
    def population_mean(self) -> float:
        """Mean spend per transaction across customers, p gamma / (q - 1); infinite when q <= 1."""
        return self.p * self.gamma / (self.q - 1) if self.q > 1 else float("inf")


@dataclass(frozen=True)
class SpendFit:
    """A fitted Gamma-Gamma model with its total log-likelihood, repeat-customer count and iterations."""

    params: SpendParams
    log_likelihood: float
    customers: int
    iterations: int


def _log_likelihood(p: float, q: float, gamma: float, x: FloatArray, m: FloatArray) -> FloatArray:
    # The density of the mean m of x transactions, in logs throughout so large x cannot overflow.
    px = p * x
    result: FloatArray = (
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * np.log(gamma)
        + (px - 1) * np.log(m)
        + px * np.log(x)
        - (px + q) * np.log(gamma + m * x)
    )
    return result


def _repeaters(histories: Histories) -> tuple[FloatArray, FloatArray]:
    if histories.mean_spend is None:
        raise ClvError("no_spend", "the Gamma-Gamma model needs each customer's mean spend (Histories.mean_spend)")
    repeat = histories.frequency > 0
    return histories.frequency[repeat], histories.mean_spend[repeat]


def spend_log_likelihood(params: SpendParams, histories: Histories) -> FloatArray:
    """The log-likelihood of each customer with repeat purchases (customers without them are left out)."""
    x, m = _repeaters(histories)
    return _log_likelihood(params.p, params.q, params.gamma, x, m)


def fit_spend(histories: Histories, start: SpendParams | None = None) -> SpendFit:
    """Maximum-likelihood Gamma-Gamma parameters from the customers with repeat purchases."""
    x, m = _repeaters(histories)
    if x.size == 0:
        raise ClvError("no_repeat_customers", "cannot fit the Gamma-Gamma model: no customer has a repeat purchase")
    (x_rows, m_rows), weights = compress(x, m)
    # The model does not care about the money unit (amounts times c: gamma times c, p and q as they
    # were), but the optimiser does: from gamma = 1 it stalls on a ridge far from the optimum once
    # amounts run to tens of thousands (CDNOW's dollars times 10^4, or a chain selling in dong or
    # rupiah). So the fit runs in units of the mean repeat spend and gamma is scaled back.
    unit = float(np.average(m_rows, weights=weights))
    scaled = m_rows / unit
    initial = start or SpendParams(1.0, 1.0, unit)

    def log_likelihood(theta: FloatArray) -> FloatArray:
        return _log_likelihood(theta[0], theta[1], theta[2], x_rows, scaled)

    estimate = maximise(log_likelihood, weights, np.array([initial.p, initial.q, initial.gamma / unit]), "Gamma-Gamma")
    p, q, gamma = (float(v) for v in estimate.params)
    # The density of m is that of m / unit divided by unit: one log(unit) less per customer.
    total = estimate.log_likelihood - float(weights.sum()) * np.log(unit)
    return SpendFit(SpendParams(p, q, gamma * unit), total, int(x.size), estimate.iterations)


def expected_mean_spend(params: SpendParams, histories: Histories) -> FloatArray:
    """E[spend per transaction | x, m_x]: a weighted mean of the population mean and the customer's own.

    Customers without repeat purchases get the population mean. Needs q > 1 (a finite mean).
    """
    if params.q <= 1:
        raise ClvError("infinite_mean", f"Gamma-Gamma q = {params.q}: the mean spend is infinite for q <= 1")
    if histories.mean_spend is None:
        raise ClvError("no_spend", "expected spend needs each customer's mean spend (Histories.mean_spend)")
    x = histories.frequency
    own = params.p * x
    weight_own = own / (own + params.q - 1)
    m = np.where(x > 0, histories.mean_spend, 0.0)
    result: FloatArray = (1 - weight_own) * params.population_mean + weight_own * m
    return result
