"""The overview (``/console/``): members, new members per store with drop alerts, sales by value tier, the RFM
grid, footfall and fleet health, each as a chart and as a plain table.

What a role sees: the technician (and any role without customer figures) only fleet health; finance
the aggregates and amounts, never a profile (nothing here names or links a customer); a store
manager every figure limited to their stores. Charts are drawn by ``static/overview.js`` with the
vendored ECharts from a JSON data block (the CSP allows no inline script); the tables carry the same
numbers for readers without JavaScript.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import current_app, render_template
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from central import clock
from central.accounts import web
from central.accounts.roles import EVERYONE
from central.config import CentralConfig
from central.console import bp
from central.console.navigation import MEDIUM_LABELS
from central.customers import alerts, dashboard
from central.db import get_session
from central.fleet.devices import list_devices

DAYS_SHOWN = 28
PRESENCE_HOURS = 24


def tier_labels() -> dict[str, str]:
    """The value tiers' names in the page's language."""
    return {"loyal": _("忠诚"), "potential": _("潜力"), "dormant": _("沉睡"), "other": _("其他")}


def _fleet_states(stores: tuple[str, ...] | None) -> list[tuple[str, int]]:
    config: CentralConfig = current_app.config["CENTRAL"]
    states: dict[str, int] = {}
    for device in list_devices(get_session(), clock.now(), config.fleet_offline_after):
        if stores is None or device.store_id in stores:
            states[device.state] = states.get(device.state, 0) + 1
    return sorted(states.items())


def _members(config: CentralConfig, stores: tuple[str, ...] | None) -> dict[str, Any]:
    db = get_session()
    offset = config.customers_utc_offset_minutes
    today = dashboard.local_today(clock.now(), offset)
    first, last = alerts.window(today)
    series = dashboard.new_members(db, first, last, offset, stores)
    days = [today - timedelta(days=n) for n in range(DAYS_SHOWN - 1, -1, -1)]
    found = alerts.drops(
        series,
        alerts.last_full_day(today),
        drop_percent=config.overview_alert_drop_percent,
        min_baseline=config.overview_alert_min_baseline,
    )
    store_ids = sorted(set(series) | set(stores or ()))
    return {
        "total": dashboard.members_total(db, stores),
        "days": days,
        "stores": store_ids,
        "counts": {s: [series.get(s, {}).get(d, 0) for d in days] for s in store_ids},
        "drops": found,
    }


def _chart_data(members: dict[str, Any], tiers: list[Any], grid: list[Any], footfall: list[Any]) -> dict[str, Any]:
    """What overview.js draws, labels already in the page's language."""
    names = tier_labels()
    return {
        "labels": {
            "new_members": _("新会员"),
            "customers": _("客户数"),
            "spent": _("消费额（元）"),
            "recency": _("最近购买（R 分）"),
            "frequency": _("购买频次（F 分）"),
            "visits": _("到访次数"),
            "passes": _("路过次数"),
        },
        "days": [d.isoformat() for d in members["days"]],
        "new_members": members["counts"],
        "tiers": [{"name": names.get(t.tier, t.tier), "customers": t.customers, "spent": t.spent / 100} for t in tiers],
        "rfm": [[c.f - 1, c.r - 1, c.customers] for c in grid],
        "footfall": [
            {"store": f"{f.store_id} ({MEDIUM_LABELS.get(f.medium, f.medium)})", "visits": f.visits, "passes": f.passes}
            for f in footfall
        ],
    }


@bp.get("/")
@web.roles(*EVERYONE)
def index() -> ResponseReturnValue:
    """The overview: fleet health for everyone; the member, sales and footfall figures for roles that may see them."""
    active = web.current()
    policy = web.current_policy()
    stores = tuple(sorted(active.stores)) if active is not None and policy.store_scoped else None
    context: dict[str, Any] = {
        "page": "overview",
        "fleet_states": _fleet_states(stores),
        "figures": False,
        "stores": stores or (),
    }
    if policy.customers or policy.amounts:
        config: CentralConfig = current_app.config["CENTRAL"]
        db = get_session()
        members = _members(config, stores)
        tiers = dashboard.tier_sales(db, stores)
        grid = dashboard.rfm_grid(db, stores)
        now = clock.now()
        footfall_stores = list(stores) if stores is not None else dashboard.known_stores(db)
        footfall = dashboard.footfall(db, now - timedelta(hours=PRESENCE_HOURS), now, footfall_stores)
        db.commit()
        context.update(
            figures=True,
            amounts=policy.amounts,
            members=members,
            tiers=tiers,
            tier_names=tier_labels(),
            grid={(c.r, c.f): c for c in grid},
            tags_at=dashboard.figures_computed_at(db),
            scores=dashboard.SCORES,
            footfall=footfall,
            alert_day=alerts.last_full_day(dashboard.local_today(now, config.customers_utc_offset_minutes)),
            chart=_chart_data(members, tiers if policy.amounts else [], grid, footfall),
        )
    return render_template("overview.html", **context)
