"""Customer lifetime value: BG/NBD for how many purchases, Gamma-Gamma for how much each is worth.

The purchase model is the beta-geometric/negative-binomial distribution (BG/NBD) of
Peter S. Fader, Bruce G. S. Hardie and Ka Lok Lee, "'Counting Your Customers' the Easy Way: An
Alternative to the Pareto/NBD Model", *Marketing Science* 24(2), 2005, pp. 275-284. While alive, a
customer buys at a Poisson rate drawn from Gamma(r, alpha); after each purchase they drop out with a
probability drawn from Beta(a, b).

The spend model is the Gamma-Gamma model of Fader, Hardie and Lee, "RFM and CLV: Using Iso-Value
Curves for Customer Base Analysis", *Journal of Marketing Research* 42(4), 2005, pp. 415-430 (its
likelihood as written up in Fader and Hardie, "The Gamma-Gamma Model of Monetary Value", 2013).
Each transaction's value is Gamma(p, nu) with nu drawn from Gamma(q, gamma) per customer, and is
independent of the purchase process.

Inputs are the usual RFM summary per customer, all in one time unit chosen by the caller (days or
weeks): ``frequency`` x, the number of *repeat* purchases; ``recency`` t_x, the age at the last
purchase (0 when x is 0); ``age`` T, the time since the first purchase; and for spend the mean
value of the repeat purchases. Everything is vectorised over numpy arrays.
"""

from central.customers.clv.histories import ClvError, Histories
from central.customers.clv.purchases import (
    PurchaseFit,
    PurchaseParams,
    expected_purchases,
    expected_purchases_if_alive,
    fit_purchases,
    probability_alive,
    purchase_log_likelihood,
)
from central.customers.clv.spend import SpendFit, SpendParams, expected_mean_spend, fit_spend, spend_log_likelihood
from central.customers.clv.value import lifetime_value

__all__ = [
    "ClvError",
    "Histories",
    "PurchaseFit",
    "PurchaseParams",
    "SpendFit",
    "SpendParams",
    "expected_mean_spend",
    "expected_purchases",
    "expected_purchases_if_alive",
    "fit_purchases",
    "fit_spend",
    "lifetime_value",
    "probability_alive",
    "purchase_log_likelihood",
    "spend_log_likelihood",
]
