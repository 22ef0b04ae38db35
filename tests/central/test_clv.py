"""Lifetime value: the published CDNOW fits, simulated customers, and the numerically hard corners."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.special import betaln, hyp2f1

from central.customers.clv import (
    ClvError,
    Histories,
    PurchaseParams,
    SpendParams,
    expected_mean_spend,
    expected_purchases,
    expected_purchases_if_alive,
    fit_purchases,
    fit_spend,
    lifetime_value,
    probability_alive,
    purchase_log_likelihood,
    spend_log_likelihood,
)

# Fader, Hardie and Lee (2005), "Counting Your Customers the Easy Way", section 5, and "RFM and CLV".
PUBLISHED_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
PUBLISHED_GAMMA_GAMMA = {"p": 6.25, "q": 3.74, "gamma": 15.44}
PAPER = PurchaseParams(**PUBLISHED_BGNBD)


def _lifetimes_dataset(name: str) -> Path:
    """A CSV the ``lifetimes`` package (test extra) ships; we read the file and never import the package."""
    try:
        dist = importlib.metadata.distribution("lifetimes")
    except importlib.metadata.PackageNotFoundError:
        pytest.fail("the CDNOW data come from the 'lifetimes' package: install the test extra (pip install -e .[test])")
    path = Path(str(dist.locate_file(f"lifetimes/datasets/{name}")))
    assert path.is_file(), f"{path} is missing from the installed lifetimes package"
    return path


@pytest.fixture(scope="module")
def cdnow() -> Histories:
    """The CDNOW sample: 2,357 customers, 39 weeks of calibration (frequency, recency, T in weeks)."""
    data = np.genfromtxt(_lifetimes_dataset("cdnow_customers_summary.csv"), delimiter=",", names=True)
    return Histories.of(data["frequency"], data["recency"], data["T"])


@pytest.fixture(scope="module")
def cdnow_spend() -> Histories:
    """The same customers with their mean repeat-purchase spend in dollars."""
    data = np.genfromtxt(_lifetimes_dataset("cdnow_customers_summary_with_transactions.csv"), delimiter=",", names=True)
    return Histories.of(data["x"], data["t_x"], data["T"], data["zbar"])


def test_bgnbd_reproduces_the_published_cdnow_fit(cdnow: Histories) -> None:
    fit = fit_purchases(cdnow)
    assert len(cdnow) == 2357 and fit.customers == 2357
    for name, published in PUBLISHED_BGNBD.items():
        assert getattr(fit.params, name) == pytest.approx(published, rel=0.01), name
    assert fit.log_likelihood == pytest.approx(-9582.4, abs=0.1)  # the paper's LL


def test_gamma_gamma_reproduces_the_published_cdnow_fit(cdnow_spend: Histories) -> None:
    fit = fit_spend(cdnow_spend)
    assert fit.customers == 946  # customers with at least one repeat purchase
    for name, published in PUBLISHED_GAMMA_GAMMA.items():
        assert getattr(fit.params, name) == pytest.approx(published, rel=0.01), name


def test_conditional_expectation_of_the_papers_example_customer() -> None:
    # x = 2, t_x = 30.43, T = 38.86: the paper reports 1.226 purchases in the next 39 weeks.
    one = Histories.of([2], [30.43], [38.86])
    assert expected_purchases(PAPER, one, 39)[0] == pytest.approx(1.226, abs=0.002)


def _direct_expectation(p: PurchaseParams, t: float, x: float, t_x: float, age: float) -> float:
    """Equation (10) exactly as printed, fine where its hypergeometric term does not overflow."""
    z = t / (p.alpha + age + t)
    head = (p.a + p.b + x - 1) / (p.a - 1)
    tail = 1 - ((p.alpha + age) / (p.alpha + age + t)) ** (p.r + x) * hyp2f1(p.r + x, p.b + x, p.a + p.b + x - 1, z)
    odds = (p.a / (p.b + x - 1)) * ((p.alpha + age) / (p.alpha + t_x)) ** (p.r + x) if x > 0 else 0.0
    return float(head * tail / (1 + odds))


@pytest.mark.parametrize(
    ("x", "t_x", "age", "t"),
    [(0, 0, 38.86, 39), (1, 1.71, 38.86, 39), (7, 35, 38, 10), (20, 70, 78, 52), (3, 5, 60, 200), (0, 0, 0, 39)],
)
def test_the_transformed_expectation_equals_the_printed_formula(x: float, t_x: float, age: float, t: float) -> None:
    got = expected_purchases(PAPER, Histories.of([x], [t_x], [age]), t)[0]
    assert got == pytest.approx(_direct_expectation(PAPER, t, x, t_x, age), rel=1e-9)


def _simulate(params: PurchaseParams, customers: int, until: float, rng: np.random.Generator) -> list[np.ndarray]:
    """Purchase times per customer after a first purchase at 0, drawn from the BG/NBD story."""
    rates = rng.gamma(params.r, 1 / params.alpha, customers)
    dropout = rng.beta(params.a, params.b, customers)
    times: list[np.ndarray] = []
    for rate, p in zip(rates, dropout, strict=True):
        # Repeat purchases at Poisson times; after each one the customer drops out with probability p.
        purchases = rng.geometric(p)
        gaps = rng.exponential(1 / rate, min(purchases, 10_000))
        moments = np.cumsum(gaps)
        times.append(moments[moments <= until])
    return times


def test_fit_and_holdout_forecast_on_simulated_customers() -> None:
    rng = np.random.default_rng(20050601)
    truth = PurchaseParams(r=0.5, alpha=8.0, a=0.7, b=3.0)
    calibration, holdout = 52.0, 26.0
    starts = rng.uniform(0, 12, 8000)
    stories = _simulate(truth, 8000, calibration + holdout, rng)
    age = calibration - starts
    x = np.array([np.sum(s <= a) for s, a in zip(stories, age, strict=True)], dtype=float)
    t_x = np.array([s[s <= a].max() if np.any(s <= a) else 0.0 for s, a in zip(stories, age, strict=True)])
    later = np.array([np.sum((s > a) & (s <= a + holdout)) for s, a in zip(stories, age, strict=True)])
    histories = Histories.of(x, t_x, age)

    fit = fit_purchases(histories)
    assert fit.params.r == pytest.approx(truth.r, rel=0.15)
    assert fit.params.alpha == pytest.approx(truth.alpha, rel=0.25)
    assert fit.params.a == pytest.approx(truth.a, rel=0.25)
    assert fit.params.b == pytest.approx(truth.b, rel=0.35)
    forecast = expected_purchases(fit.params, histories, holdout)
    assert forecast.sum() == pytest.approx(later.sum(), rel=0.08)
    # Customers the model calls likely gone buy less in the holdout than those it calls alive.
    alive = probability_alive(fit.params, histories)
    assert later[alive < 0.3].mean() < later[alive > 0.9].mean()


def test_gamma_gamma_recovers_simulated_parameters() -> None:
    rng = np.random.default_rng(1)
    truth = SpendParams(p=4.0, q=5.0, gamma=30.0)
    x = rng.integers(1, 15, 6000).astype(float)
    nu = rng.gamma(truth.q, 1 / truth.gamma, x.size)
    means = np.array([rng.gamma(truth.p, 1 / n, int(k)).mean() for n, k in zip(nu, x, strict=True)])
    histories = Histories.of(x, np.ones_like(x), np.full_like(x, 2.0), means)
    fit = fit_spend(histories)
    assert fit.params.p == pytest.approx(truth.p, rel=0.15)
    assert fit.params.q == pytest.approx(truth.q, rel=0.15)
    assert fit.params.gamma == pytest.approx(truth.gamma, rel=0.2)


def test_zero_repeat_customers_are_alive_and_expect_the_new_customer_forecast() -> None:
    histories = Histories.of([0, 0, 0], [0, 0, 0], [0, 10, 1000])
    assert np.all(probability_alive(PAPER, histories) == 1.0)
    assert np.all(np.isfinite(purchase_log_likelihood(PAPER, histories)))
    forecast = expected_purchases(PAPER, histories, 52)
    assert forecast[0] > forecast[1] > forecast[2] > 0  # the longer without a purchase, the lower the rate
    # Equation (9): a customer who has just made a first purchase.
    z = 52 / (PAPER.alpha + 52)
    head = (PAPER.a + PAPER.b - 1) / (PAPER.a - 1)
    eq9 = head * (
        1 - (PAPER.alpha / (PAPER.alpha + 52)) ** PAPER.r * hyp2f1(PAPER.r, PAPER.b, PAPER.a + PAPER.b - 1, z)
    )
    assert forecast[0] == pytest.approx(eq9, rel=1e-10)


def test_large_frequencies_and_ages_stay_finite() -> None:
    x = np.array([1e3, 1e4, 1e5, 1e6, 1e6, 50, 3])
    t_x = np.array([3e3, 1e5, 1e6, 1e7, 1.0, 10, 1e-9])
    age = np.array([3e3, 1e5, 1e6, 1e7, 1e7, 300, 1e6])
    histories = Histories.of(x, t_x, age)
    for horizon in (0.0, 1.0, 52.0, 1e6):
        forecast = expected_purchases(PAPER, histories, horizon)
        assert np.all(np.isfinite(forecast)) and np.all(forecast >= 0), (horizon, forecast)
    alive = probability_alive(PAPER, histories)
    assert np.all((alive >= 0) & (alive <= 1))
    assert alive[4] == 0.0 and alive[3] > 0.99  # silent for 1e7 after 1e6 purchases: gone; recent: alive
    assert np.all(np.isfinite(purchase_log_likelihood(PAPER, histories)))
    # An active heavy buyer keeps buying at about their own rate: x / T per unit of time.
    assert expected_purchases(PAPER, histories, 52.0)[3] == pytest.approx(52.0 * 1e6 / 1e7, rel=0.01)
    spend = SpendParams(6.25, 3.74, 15.44)
    heavy = Histories.of(x, t_x, age, np.full(x.size, 20.0))
    assert np.all(np.isfinite(spend_log_likelihood(spend, heavy)))
    assert expected_mean_spend(spend, heavy)[3] == pytest.approx(20.0, rel=1e-4)


@pytest.mark.parametrize("unit", [1e2, 1e4, 1e7])
def test_the_gamma_gamma_fit_does_not_depend_on_the_money_unit(cdnow_spend: Histories, unit: float) -> None:
    # The same purchases in cents, in units of 1e-4 dollars, or at 10^7 a purchase: p and q stay, gamma scales.
    base = fit_spend(cdnow_spend)
    s = cdnow_spend
    assert s.mean_spend is not None
    fit = fit_spend(Histories.of(s.frequency, s.recency, s.age, s.mean_spend * unit))
    assert fit.params.p == pytest.approx(base.params.p, rel=1e-3)
    assert fit.params.q == pytest.approx(base.params.q, rel=1e-3)
    assert fit.params.gamma == pytest.approx(base.params.gamma * unit, rel=1e-3)
    assert fit.log_likelihood == pytest.approx(base.log_likelihood - fit.customers * np.log(unit), abs=1e-3)


def _expected_by_integration(params: PurchaseParams, x: float, age: float, horizon: float) -> float:
    """E[X(horizon) | alive] straight from the model: (1 - E[exp(-lambda p t)]) / p averaged over p ~ Beta(a, b + x)."""
    a, b, shape, scale = params.a, params.b + x, params.r + x, params.alpha + age
    log_beta = betaln(a, b)

    mean = a / (a + b)
    spread = 60 * np.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
    top = min(1.0, mean + spread)

    def remaining(p: float) -> float:
        """(1 - E[exp(-lambda p t)]) / p."""
        if p == 0.0:
            return shape * horizon / scale  # the limit: the rate's mean times the horizon
        return float(-np.expm1(-shape * np.log1p(p * horizon / scale)) / p)

    if a >= 1 and b >= 1:
        # No singular end: the whole integrand in logs, over the part of [0, 1] that holds the mass
        # (beyond 60 standard deviations the Beta density holds nothing a double can see).
        def integrand(p: float) -> float:
            density = np.exp((a - 1) * np.log(p) + (b - 1) * np.log1p(-p) - log_beta) if 0 < p < 1 else 0.0
            return remaining(p) * float(density)

        low = max(0.0, mean - spread)
        value, _ = quad(integrand, low, top, points=[mean], limit=400, epsabs=0.0, epsrel=1e-10)
        return float(value)
    # QUADPACK's algebraic weight takes the density's p^(a - 1) (singular at 0 when a < 1) and, over the
    # whole of [0, 1], its (1 - p)^(b - 1) (singular at 1 when b < 1).
    whole = top == 1.0

    def weighted(p: float) -> float:
        return remaining(p) if whole else remaining(p) * float(np.exp((b - 1) * np.log1p(-p)))

    limits = (a - 1, b - 1 if whole else 0.0)
    value, _ = quad(weighted, 0.0, top, weight="alg", wvar=limits, limit=400, epsabs=0.0, epsrel=1e-10)
    value *= np.exp(-log_beta)
    return float(value)


@pytest.mark.parametrize(
    "params",
    [
        PurchaseParams(2.0, 5.0, 0.3, 0.2),
        PurchaseParams(0.7, 120.0, 0.6, 0.3),
        PAPER,
        PurchaseParams(1.2, 40.0, 3.0, 9),
        PurchaseParams(2.64, 13.8, 675.0, 1982.0),  # the generated bench chain's fit: the series overflowed
        # The bench chain's fit at 30,000 customers: the quadrature's normalising constant overflowed too.
        PurchaseParams(4.13, 28.3, 3990.0, 11424.0),
    ],
)
def test_the_forecast_equals_the_model_integrated_over_the_dropout_probability(params: PurchaseParams) -> None:
    # a + b < 1 makes the hypergeometric series negative for customers without repeat purchases (a NaN
    # once), large a and b make it overflow (NaN too); heavy and long-silent buyers test the other end.
    x = np.array([0.0, 0.0, 1.0, 20.0, 4999.0, 4999.0])
    t_x = np.array([0.0, 0.0, 30.0, 300.0, 3640.0, 1000.0])
    age = np.array([0.0, 700.0, 400.0, 700.0, 3650.0, 3650.0])
    forecast = expected_purchases_if_alive(params, Histories.of(x, t_x, age), 365.0)
    expected = [_expected_by_integration(params, x[i], age[i], 365.0) for i in range(x.size)]
    assert forecast == pytest.approx(expected, rel=1e-6)


def test_lifetime_values_of_extreme_histories_are_finite_and_follow_the_money_unit() -> None:
    # A chain whose heaviest buyers made 5,000 purchases over ten years, at 10^7 a purchase.
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.poisson(4, 3000), np.full(40, 4999)]).astype(float)
    age = np.concatenate([rng.uniform(30, 3650, 3000), np.full(40, 3650.0)])
    t_x = np.where(x > 0, age * np.concatenate([rng.uniform(0, 1, 3000), np.linspace(0.2, 1.0, 40)]), 0.0)
    spend = np.where(x > 0, rng.gamma(4.0, 50.0, x.size), 0.0)
    values = {}
    for unit in (1.0, 1e7 / 200):
        histories = Histories.of(x, t_x, age, spend * unit)
        purchases, fitted_spend = fit_purchases(histories).params, fit_spend(histories).params
        values[unit] = lifetime_value(
            purchases, fitted_spend, histories, periods=12, period_length=30.44, discount_rate=0.01
        )
        assert np.all(np.isfinite(values[unit])) and np.all(values[unit] >= 0)
    assert values[1e7 / 200] == pytest.approx(values[1.0] * 1e7 / 200, rel=1e-3)
    # The heaviest buyer still buying keeps buying at about their own rate (5,000 in 10 years), at their own spend.
    heaviest = values[1.0][-1] / spend[-1]
    assert heaviest == pytest.approx(4999 / 3650 * 365 * np.mean(0.99 ** np.arange(1, 13)), rel=0.1)


def test_forecasts_grow_with_the_horizon(cdnow: Histories) -> None:
    previous = np.zeros(len(cdnow))
    for horizon in (1, 4, 13, 39, 78, 520):
        forecast = expected_purchases(PAPER, cdnow, horizon)
        assert np.all(forecast >= previous)
        previous = forecast


def test_expected_spend_shrinks_towards_the_population_mean() -> None:
    spend = SpendParams(6.25, 3.74, 15.44)
    histories = Histories.of([0, 1, 10, 100], [0, 5, 30, 38], [38, 38, 38, 38], [0, 100, 100, 100])
    expected = expected_mean_spend(spend, histories)
    assert expected[0] == pytest.approx(spend.population_mean)
    assert spend.population_mean < expected[1] < expected[2] < expected[3] < 100


def test_lifetime_value_discounts_each_period() -> None:
    spend = SpendParams(6.25, 3.74, 15.44)
    histories = Histories.of([2, 0], [30.43, 0], [38.86, 38.86], [22.35, 0])
    per_purchase = expected_mean_spend(spend, histories)
    one = lifetime_value(PAPER, spend, histories, periods=1, period_length=39, discount_rate=0.0)
    assert one == pytest.approx(per_purchase * expected_purchases(PAPER, histories, 39))
    undiscounted = lifetime_value(PAPER, spend, histories, periods=12, period_length=4.35, discount_rate=0.0)
    assert undiscounted == pytest.approx(per_purchase * expected_purchases(PAPER, histories, 12 * 4.35))
    discounted = lifetime_value(PAPER, spend, histories, periods=12, period_length=4.35, discount_rate=0.01)
    assert np.all(discounted < undiscounted) and np.all(discounted > undiscounted / 1.01**12)
    margin = lifetime_value(PAPER, spend, histories, periods=12, period_length=4.35, discount_rate=0.01, margin=0.3)
    assert margin == pytest.approx(0.3 * discounted)
    assert np.all(lifetime_value(PAPER, spend, histories, periods=0, period_length=4.35, discount_rate=0.01) == 0)


def test_lifetime_values_of_many_customers_equal_each_customers_own() -> None:
    # Customers sharing repeat purchases and age (computed once) but not recency or spend.
    histories = Histories.of([2, 2, 0, 2, 5], [30, 10, 0, 30, 20], [40, 40, 40, 60, 40], [22.35, 9.0, 0, 22.35, 14])
    spend = SpendParams(6.25, 3.74, 15.44)
    together = lifetime_value(PAPER, spend, histories, periods=12, period_length=4.35, discount_rate=0.01)
    for i in range(len(histories)):
        one = Histories.of(
            histories.frequency[i : i + 1],
            histories.recency[i : i + 1],
            histories.age[i : i + 1],
            None if histories.mean_spend is None else histories.mean_spend[i : i + 1],
        )
        alone = lifetime_value(PAPER, spend, one, periods=12, period_length=4.35, discount_rate=0.01)
        assert together[i] == pytest.approx(alone[0], rel=1e-12)
    assert together[0] != together[1]  # same repeat purchases and age, other recency and spend


@pytest.mark.parametrize(
    ("columns", "reason"),
    [
        (([1, -1], [1, 0], [2, 2]), "negative_frequency"),
        (([1.5], [1], [2]), "fractional_frequency"),
        (([1], [3], [2]), "recency_after_age"),
        (([0], [1], [2]), "recency_without_repeat"),
        (([1], [1], [-2]), "negative_age"),
        (([1], [float("nan")], [2]), "not_finite"),
        (([1, 2], [1], [2]), "length_mismatch"),
        ((["a"], [1], [2]), "not_numeric"),
        (([[1]], [[1]], [[2]]), "not_one_dimensional"),
        (([1], [1], [2], [0]), "zero_spend"),
        (([1], [1], [2], [-3]), "negative_spend"),
    ],
)
def test_bad_histories_are_refused_with_a_reason(columns: tuple[list[object], ...], reason: str) -> None:
    with pytest.raises(ClvError) as caught:
        Histories.of(*columns)  # type: ignore[arg-type]
    assert caught.value.reason == reason


def test_fits_refuse_data_that_cannot_identify_them() -> None:
    nobody_returned = Histories.of([0, 0], [0, 0], [5, 6], [0, 0])
    with pytest.raises(ClvError, match="no customer has a repeat purchase"):
        fit_purchases(nobody_returned)
    with pytest.raises(ClvError, match="no customer has a repeat purchase"):
        fit_spend(nobody_returned)
    with pytest.raises(ClvError, match="mean spend"):
        fit_spend(Histories.of([1], [1], [2]))
    with pytest.raises(ClvError) as caught:
        PurchaseParams(r=0.0, alpha=1, a=1, b=1)
    assert caught.value.reason == "bad_parameter"
    with pytest.raises(ClvError) as caught:
        expected_purchases(PAPER, Histories.of([1], [1], [2]), -1)
    assert caught.value.reason == "bad_horizon"


def test_fitting_on_grouped_histories_equals_fitting_on_each_customer(cdnow: Histories) -> None:
    # The fit groups identical histories; the grouped likelihood must be the customers' total.
    fit = fit_purchases(cdnow)
    assert float(purchase_log_likelihood(fit.params, cdnow).sum()) == pytest.approx(fit.log_likelihood, rel=1e-12)
    doubled = Histories.of(*(np.concatenate([c, c]) for c in (cdnow.frequency, cdnow.recency, cdnow.age)))
    again = fit_purchases(doubled)
    assert again.log_likelihood == pytest.approx(2 * fit.log_likelihood, rel=1e-9)
    assert again.params.r == pytest.approx(fit.params.r, rel=1e-4)
