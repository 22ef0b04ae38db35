"""BG/NBD: how many purchases a customer will make, and whether they are still a customer.

Fader, Hardie and Lee (2005), "'Counting Your Customers' the Easy Way: An Alternative to the
Pareto/NBD Model", Marketing Science 24(2). Equation numbers below are the paper's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.linalg import eigh_tridiagonal
from scipy.special import betaln, expit, gammaln, hyp2f1, roots_jacobi

from central.customers.clv.estimation import compress, maximise
from central.customers.clv.histories import ClvError, FloatArray, Histories

_NODES = 64
"""Gauss-Jacobi nodes for the expectation where the hypergeometric form fails; exact for polynomials of degree 127."""


@dataclass(frozen=True)
class PurchaseParams:
    """BG/NBD parameters: purchase rate ~ Gamma(r, alpha); drop-out probability ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float

    def __post_init__(self) -> None:
        for name in ("r", "alpha", "a", "b"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ClvError("bad_parameter", f"BG/NBD parameter {name} = {value}: must be a positive number")


@dataclass(frozen=True)
class PurchaseFit:
    """A fitted BG/NBD model with its total log-likelihood, customer count and optimiser iterations."""

    params: PurchaseParams
    log_likelihood: float
    customers: int
    iterations: int


def _log_likelihood(
    r: float, alpha: float, a: float, b: float, x: FloatArray, t_x: FloatArray, t: FloatArray
) -> FloatArray:
    # Equation (6) in logs: the two terms are combined with logaddexp so neither the Gamma-function
    # ratio nor (alpha + T)^-(r + x) is ever formed outside log space, whatever x and T are.
    log_beta_ab = betaln(a, b)
    shared = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    still_alive = betaln(a, b + x) - log_beta_ab - (r + x) * np.log(alpha + t)
    repeat = x > 0
    # For x = 0 the second term is absent; b + x - 1 may then be negative, so give it a harmless value.
    dropped_out = np.where(
        repeat,
        betaln(a + 1, np.where(repeat, b + x - 1, 1.0)) - log_beta_ab - (r + x) * np.log(alpha + t_x),
        -np.inf,
    )
    result: FloatArray = shared + np.logaddexp(still_alive, dropped_out)
    return result


def purchase_log_likelihood(params: PurchaseParams, histories: Histories) -> FloatArray:
    """Each customer's log-likelihood under ``params`` (equation 6)."""
    p = params
    return _log_likelihood(p.r, p.alpha, p.a, p.b, histories.frequency, histories.recency, histories.age)


def fit_purchases(histories: Histories, start: PurchaseParams | None = None) -> PurchaseFit:
    """Maximum-likelihood BG/NBD parameters for ``histories``."""
    if len(histories) == 0:
        raise ClvError("no_customers", "cannot fit the BG/NBD model to no customers")
    if not np.any(histories.frequency > 0):
        raise ClvError("no_repeat_customers", "cannot fit the BG/NBD model: no customer has a repeat purchase")
    (x, t_x, t), weights = compress(histories.frequency, histories.recency, histories.age)
    initial = start or PurchaseParams(1.0, 1.0, 1.0, 1.0)

    def log_likelihood(theta: FloatArray) -> FloatArray:
        return _log_likelihood(theta[0], theta[1], theta[2], theta[3], x, t_x, t)

    estimate = maximise(log_likelihood, weights, np.array([initial.r, initial.alpha, initial.a, initial.b]), "BG/NBD")
    r, alpha, a, b = (float(v) for v in estimate.params)
    return PurchaseFit(PurchaseParams(r, alpha, a, b), estimate.log_likelihood, len(histories), estimate.iterations)


def _log_dropout_odds(params: PurchaseParams, histories: Histories) -> FloatArray:
    """log of (a / (b + x - 1)) ((alpha + T) / (alpha + t_x))^(r + x); -inf for x = 0."""
    p, x = params, histories.frequency
    repeat = x > 0
    log_odds = (
        np.log(p.a)
        - np.log(np.where(repeat, p.b + x - 1, 1.0))
        + (p.r + x) * (np.log(p.alpha + histories.age) - np.log(p.alpha + histories.recency))
    )
    result: FloatArray = np.where(repeat, log_odds, -np.inf)
    return result


def probability_alive(params: PurchaseParams, histories: Histories) -> FloatArray:
    """P(still a customer | x, t_x, T) (equation 11); 1 for customers without repeat purchases."""
    # 1 / (1 + odds) as expit(-log odds): no overflow when the odds are astronomically large.
    result: FloatArray = expit(-_log_dropout_odds(params, histories))
    return result


def expected_purchases_if_alive(params: PurchaseParams, histories: Histories, horizon: npt.ArrayLike) -> FloatArray:
    """Expected purchases in the next ``horizon`` time units for a customer known to be still active.

    Equation (10) is this times :func:`probability_alive`; ``horizon`` is a scalar or one value per customer.
    """
    t = np.asarray(horizon, dtype=np.float64)
    if np.any(~np.isfinite(t)) or np.any(t < 0):
        raise ClvError("bad_horizon", f"horizon {horizon!r}: must be zero or a positive finite number")
    p, x = params, histories.frequency
    # a = 1 is a removable singularity of (a + b + x - 1) / (a - 1); step off it by a negligible amount.
    a = p.a if abs(p.a - 1.0) > 1e-7 else 1.0 + 1e-7
    z = t / (p.alpha + histories.age + t)
    # Euler's transformation 2F1(A, B; C; z) = (1 - z)^(C - A - B) 2F1(C - A, C - B; C; z) takes the
    # customer's x out of the upper parameters: ((alpha + T) / (alpha + T + t))^(r + x) 2F1(r + x, b + x;
    # a + b + x - 1; z) becomes (1 - z)^(a - 1) 2F1(a + b - 1 - r, a - 1; a + b + x - 1; z), which stays
    # finite where the untransformed series overflows (large x and T).
    series = hyp2f1(a + p.b - 1 - p.r, a - 1, a + p.b + x - 1, z)
    log_power = (a - 1) * np.log1p(-z)
    # 1 - (1 - z)^(a - 1) 2F1(...): in logs (expm1) while the series is positive, which keeps the small
    # forecasts of a long-silent heavy buyer exact; directly where it is not, as it can be for a
    # customer without repeat purchases when a + b < 1 (C = a + b - 1 is then negative).
    positive = series > 0
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        in_logs = -np.expm1(log_power + np.log(np.where(positive, series, 1.0)))
        direct = 1.0 - np.exp(log_power) * series
    unconditional = np.where(positive, in_logs, direct)
    with np.errstate(invalid="ignore"):
        result: FloatArray = (a + p.b + x - 1) / (a - 1) * unconditional
    failed = ~np.isfinite(result)
    if failed.any():
        # Large a and b (a fit saying customers almost never drop out) make the series overflow while
        # (1 - z)^(a - 1) underflows; their product is fine, so take it from the model's integral instead.
        horizons = np.broadcast_to(t, x.shape)
        result[failed] = _by_quadrature(params, x[failed], histories.age[failed], horizons[failed])
    return result


def _by_quadrature(params: PurchaseParams, x: FloatArray, age: FloatArray, horizon: FloatArray) -> FloatArray:
    """E[X(t) | alive] as the model's integral: the mean over the drop-out probability q ~ Beta(a, b + x)
    of (1 - (1 + q t / (alpha + T))^-(r + x)) / q, by Gauss-Jacobi quadrature (bounded and smooth in q)."""
    out = np.empty(x.size)
    ratio = horizon / (params.alpha + age)
    for value in np.unique(x):
        rows = x == value
        # Jacobi weight (1 - u)^(b + x - 1) (1 + u)^(a - 1) on [-1, 1] is the Beta(a, b + x) density of q = (1 + u) / 2.
        u, weights = _jacobi_nodes(params.b + value - 1, params.a - 1)
        q = (1 + u) / 2
        remaining = -np.expm1(-(params.r + value) * np.log1p(np.outer(ratio[rows], q))) / q
        out[rows] = remaining @ (weights / weights.sum())
    return out


def _jacobi_nodes(alpha: float, beta: float) -> tuple[FloatArray, FloatArray]:
    """Gauss-Jacobi nodes on [-1, 1] and weights proportional to the true ones (only their ratios are used)."""
    with np.errstate(over="ignore", invalid="ignore"):
        u, weights = roots_jacobi(_NODES, alpha, beta)
    if np.all(np.isfinite(weights)) and weights.sum() > 0:
        return u, weights
    # Large a and b + x: roots_jacobi scales its weights by the weight function's integral,
    # 2^(alpha + beta + 1) B(alpha + 1, beta + 1), which overflows. The nodes are the eigenvalues of the
    # Jacobi matrix of the orthonormal polynomials and the relative weights the squared first components
    # of its eigenvectors (Golub and Welsch 1969), neither of which needs that integral.
    k = np.arange(_NODES, dtype=np.float64)
    s = 2 * k + alpha + beta
    diagonal = (beta**2 - alpha**2) / (s * (s + 2))
    n = k[1:]
    sn = s[1:]
    off = np.sqrt(4 * n * (n + alpha) * (n + beta) * (n + alpha + beta) / (sn**2 * (sn + 1) * (sn - 1)))
    nodes, vectors = eigh_tridiagonal(diagonal, off)
    relative: FloatArray = vectors[0] ** 2
    return np.asarray(nodes, dtype=np.float64), relative


def expected_purchases(params: PurchaseParams, histories: Histories, horizon: npt.ArrayLike) -> FloatArray:
    """Expected purchases in the next ``horizon`` time units, given each customer's history (equation 10).

    ``horizon`` is a scalar or one value per customer. With ``frequency = recency = age = 0`` this is
    the expectation for a customer who has just made a first purchase (equation 9).
    """
    result: FloatArray = expected_purchases_if_alive(params, histories, horizon) * probability_alive(params, histories)
    return result
