"""Lifetime value: expected purchases per future period times expected spend, discounted."""

from __future__ import annotations

import numpy as np

from central.customers.clv.histories import ClvError, FloatArray, Histories
from central.customers.clv.purchases import PurchaseParams, expected_purchases_if_alive, probability_alive
from central.customers.clv.spend import SpendParams, expected_mean_spend


def lifetime_value(
    purchases: PurchaseParams,
    spend: SpendParams,
    histories: Histories,
    *,
    periods: int,
    period_length: float,
    discount_rate: float,
    margin: float = 1.0,
) -> FloatArray:
    """Discounted value of each customer's next ``periods`` periods of ``period_length`` time units.

    CLV = margin * E[spend] * sum over i = 1..periods of (E[X(i L)] - E[X((i - 1) L)]) / (1 + d)^i,
    with X from BG/NBD given the history, E[spend] from Gamma-Gamma and d = ``discount_rate`` per
    period (for example 0.01 a month). Purchases in period i are discounted to its end, as the two
    models give no timing within a period.
    """
    if periods < 0:
        raise ClvError("bad_periods", f"periods = {periods}: must be zero or more")
    if not (np.isfinite(period_length) and period_length > 0):
        raise ClvError("bad_period_length", f"period_length = {period_length}: must be a positive number")
    if not (np.isfinite(discount_rate) and discount_rate > -1):
        raise ClvError("bad_discount_rate", f"discount_rate = {discount_rate}: must be above -1 (0.01 is 1 %)")
    if not np.isfinite(margin):
        raise ClvError("bad_margin", f"margin = {margin}: must be a finite number")
    per_purchase = margin * expected_mean_spend(spend, histories)
    # The forecast of a customer known to be active depends on the repeat purchases and the age alone
    # (the recency tells only whether the customer is active), so each distinct pair is forecast once:
    # counted in days, a million customers have a few thousand.
    keys = np.stack((histories.frequency, histories.age))
    distinct, inverse = np.unique(keys, axis=1, return_inverse=True)
    each = Histories(distinct[0], np.zeros(distinct.shape[1]), distinct[1])
    # Whether the customer is still active does not depend on the period: weigh by it once.
    total = np.zeros(len(each))
    before = np.zeros(len(each))
    for i in range(1, periods + 1):
        after = expected_purchases_if_alive(purchases, each, i * period_length)
        total += (after - before) / (1.0 + discount_rate) ** i
        before = after
    result: FloatArray = per_purchase * probability_alive(purchases, histories) * total[inverse.reshape(-1)]
    return result
