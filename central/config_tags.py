"""The settings of the built-in tags (``tags.*``): every threshold the issue's defaults name, in one place.

A part of :class:`central.config.CentralConfig`, which lists them after the settings before them in
the configuration reference; read them as ``config.tags_loyal_max_days`` like any other.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.settings import setting


@dataclass(frozen=True)
class TagSettings:
    """How the built-in tags are computed: windows, thresholds and shares."""

    tags_rfm_window_days: int = setting(
        "tags.rfm_window_days",
        365,
        "Days of purchases the RFM scores and value tiers look at; customers who bought within it are the"
        " active ones the quintiles rank.",
        minimum=1,
        maximum=3650,
    )
    tags_loyal_max_days: int = setting(
        "tags.loyal_max_days",
        7,
        "Value tier loyal: the last purchase was fewer than this many days ago.",
        minimum=1,
        maximum=3650,
    )
    tags_loyal_min_purchases: int = setting(
        "tags.loyal_min_purchases",
        5,
        "Value tier loyal: at least this many purchases in the RFM window.",
        minimum=1,
        maximum=100_000,
    )
    tags_loyal_min_spent: float = setting(
        "tags.loyal_min_spent",
        300.0,
        "Value tier loyal: at least this much spent in the RFM window.",
        minimum=0.0,
        maximum=1e9,
    )
    tags_potential_max_days: int = setting(
        "tags.potential_max_days",
        30,
        "Value tier potential: the last purchase was fewer than this many days ago.",
        minimum=1,
        maximum=3650,
    )
    tags_potential_min_purchases: int = setting(
        "tags.potential_min_purchases",
        2,
        "Value tier potential: at least this many purchases in the RFM window.",
        minimum=1,
        maximum=100_000,
    )
    tags_potential_max_purchases: int = setting(
        "tags.potential_max_purchases",
        3,
        "Value tier potential: at most this many purchases in the RFM window.",
        minimum=1,
        maximum=100_000,
    )
    tags_dormant_min_days: int = setting(
        "tags.dormant_min_days",
        90,
        "Value tier dormant: the last purchase was more than this many days ago.",
        minimum=1,
        maximum=3650,
    )
    tags_dormant_max_purchases: int = setting(
        "tags.dormant_max_purchases",
        1,
        "Value tier dormant: at most this many purchases in the RFM window.",
        minimum=0,
        maximum=100_000,
    )
    tags_dormant_max_spent: float = setting(
        "tags.dormant_max_spent",
        100.0,
        "Value tier dormant: less than this much spent in the RFM window.",
        minimum=0.0,
        maximum=1e9,
    )
    tags_frequency_window_days: int = setting(
        "tags.frequency_window_days",
        30,
        "Days counted for the high-frequency tag (a month).",
        minimum=1,
        maximum=366,
    )
    tags_frequency_min_purchases: int = setting(
        "tags.frequency_min_purchases",
        3,
        "High frequency: at least this many purchases in tags.frequency_window_days.",
        minimum=1,
        maximum=10_000,
    )
    tags_channel_heavy_share: float = setting(
        "tags.channel_heavy_share",
        0.7,
        "Share of purchases in stores (or online, app and mini-program together) that makes a customer"
        " store-heavy (online-heavy); below it on both sides, omnichannel.",
        minimum=0.5,
        maximum=1.0,
    )
    tags_top_categories: int = setting(
        "tags.top_categories",
        3,
        "Most categories tagged as a customer's top categories.",
        minimum=1,
        maximum=20,
    )
    tags_top_category_min_share: float = setting(
        "tags.top_category_min_share",
        0.2,
        "Least share of a customer's purchases a category needs to be one of their top categories.",
        minimum=0.0,
        maximum=1.0,
    )
    tags_preferred_store_min_share: float = setting(
        "tags.preferred_store_min_share",
        0.5,
        "Least share of a customer's purchases the store they buy at most needs to be their preferred store.",
        minimum=0.0,
        maximum=1.0,
    )
    tags_daypart_min_share: float = setting(
        "tags.daypart_min_share",
        0.5,
        "Least share of purchases in one time of day (night 0-6, morning 6-12, afternoon 12-18, evening"
        " 18-24) to be tagged with it; below it, mixed.",
        minimum=0.0,
        maximum=1.0,
    )
    tags_weekend_min_share: float = setting(
        "tags.weekend_min_share",
        0.6,
        "Weekend shopper: at least this share of purchases on Saturday or Sunday.",
        minimum=0.0,
        maximum=1.0,
    )
    tags_weekend_min_purchases: int = setting(
        "tags.weekend_min_purchases",
        3,
        "Weekend shopper: at least this many purchases in all.",
        minimum=1,
        maximum=10_000,
    )
    tags_lifecycle_new_days: int = setting(
        "tags.lifecycle_new_days",
        30,
        "Lifecycle new: the first purchase was at most this many days ago.",
        minimum=1,
        maximum=3650,
    )
    tags_lifecycle_active_days: int = setting(
        "tags.lifecycle_active_days",
        60,
        "Lifecycle active: the last purchase was at most this many days ago.",
        minimum=1,
        maximum=3650,
    )
    tags_lifecycle_at_risk_days: int = setting(
        "tags.lifecycle_at_risk_days",
        120,
        "Lifecycle at risk: the last purchase was at most this many days ago (and more than the active limit).",
        minimum=1,
        maximum=3650,
    )
    tags_lifecycle_dormant_days: int = setting(
        "tags.lifecycle_dormant_days",
        365,
        "Lifecycle dormant: at most this many days ago; churned beyond it.",
        minimum=1,
        maximum=3650,
    )
    tags_repurchase_min_purchases: int = setting(
        "tags.repurchase_min_purchases",
        3,
        "Purchases of a category needed before its repurchase cycle and next due date are tagged.",
        minimum=2,
        maximum=1000,
    )
    tags_clv_horizon_months: int = setting(
        "tags.clv_horizon_months",
        12,
        "Months of future purchases the predicted lifetime value covers.",
        minimum=1,
        maximum=120,
    )
    tags_clv_monthly_discount: float = setting(
        "tags.clv_monthly_discount",
        0.01,
        "Discount rate per month applied to the predicted lifetime value (0.01 is 1 %).",
        minimum=0.0,
        maximum=1.0,
    )
    tags_clv_fit_customers: int = setting(
        "tags.clv_fit_customers",
        5_000,
        "Most customers the lifetime-value models are fitted on (an even sample by customer id); predictions"
        " still cover everyone.",
        minimum=100,
        maximum=10_000_000,
    )
    tags_high_care_days: int = setting(
        "tags.high_care_days",
        30,
        "Days a customer stays tagged high care after a service.complaint event.",
        minimum=1,
        maximum=3650,
    )
    tags_presence_window_days: int = setting(
        "tags.presence_window_days",
        30,
        "Days of member store visits (attached under location consent) the presence tags look at.",
        minimum=1,
        maximum=366,
    )
    tags_browse_min_visits: int = setting(
        "tags.browse_min_visits",
        2,
        "Visits without purchase: tagged when at least this many store visits in tags.presence_window_days"
        " fell on days the customer bought nothing at that store.",
        minimum=1,
        maximum=1000,
    )
    tags_long_dwell_minutes: int = setting(
        "tags.long_dwell_minutes",
        20,
        "Long dwell: a store visit of at least this many minutes counts; tagged with at least one in"
        " tags.presence_window_days.",
        minimum=1,
        maximum=1440,
    )
    tags_profiling_without_decision: str = setting(
        "tags.profiling_without_decision",
        "refuse",
        "Tags that profile (everything but value.spend and service.high_care) for a customer with no"
        " profiling consent decision: refuse (PIPL: profiling needs consent) or allow (another legal basis"
        " applies). A withdrawal, or a minor without a guardian's grant, refuses them either way.",
        choices=("refuse", "allow"),
    )
