"""The campaign pages: triggers with their firings and control groups, coupon campaigns with results.

Admin, marketing and finance: only counts, amounts and rates, never a customer (finance sees no
profiles, and none of these pages shows one). Admin and marketing also get the buttons of
:mod:`central.console.campaign_forms` (create, pause, resume, end). The figures come from set-based SQL in
:mod:`central.campaigns.results`; a trigger's effect and a campaign's figures by tier, which read every
occasion or code, from the snapshots the ``reports`` job keeps (:mod:`central.campaigns.snapshots`),
shown with the time they were computed.
"""

from __future__ import annotations

from typing import Any

from flask import abort, render_template
from flask.typing import ResponseReturnValue

from central import clock
from central.accounts import web
from central.accounts.roles import ADMIN, FINANCE, MARKETING
from central.campaigns import results
from central.campaigns.snapshots import stored_effect, stored_tiers
from central.console import bp
from central.console.campaign_forms import may_edit
from central.db import get_session
from central.jobs import last_runs

CAMPAIGN_ROLES = (ADMIN, MARKETING, FINANCE)
TRIGGERS_JOB = "triggers"


def percent(value: float | None) -> str:
    """A rate as a percentage with one decimal, or a dash when nothing was issued."""
    return "—" if value is None else f"{100 * value:.1f} %"


def _last_trigger_run() -> Any:
    runs = last_runs(get_session(), [TRIGGERS_JOB])[TRIGGERS_JOB]
    return runs[0] if runs else None


@bp.get("/campaigns")
@web.roles(*CAMPAIGN_ROLES)
def campaigns() -> ResponseReturnValue:
    """Triggers (firings, control group, last run) and coupon campaigns (issued, redeemed, conflicts, rate)."""
    db = get_session()
    return render_template(
        "campaigns.html",
        page="campaigns",
        triggers=results.trigger_results(db),
        last_run=_last_trigger_run(),
        coupons=results.coupon_results(db),
        percent=percent,
        editable=may_edit(),
    )


@bp.get("/campaigns/triggers/<int32:trigger_id>")
@web.roles(*CAMPAIGN_ROLES)
def trigger(trigger_id: int) -> ResponseReturnValue:
    """One trigger: its firings split into action and control group, and its effect report."""
    db = get_session()
    found = results.trigger_result(db, trigger_id)
    if found is None:
        abort(404)
    return render_template(
        "trigger.html",
        page="campaigns",
        t=found,
        last_run=_last_trigger_run(),
        effect=stored_effect(db, trigger_id),
        percent=percent,
        editable=may_edit(),
    )


@bp.get("/campaigns/coupons/<int32:campaign_id>")
@web.roles(*CAMPAIGN_ROLES)
def coupon_campaign(campaign_id: int) -> ResponseReturnValue:
    """One coupon campaign: its figures, and its redemption rate by value tier and by store."""
    db = get_session()
    found = results.coupon_results(db, campaign_id)
    if not found:
        abort(404)
    campaign = found[0]
    return render_template(
        "coupon_campaign.html",
        page="campaigns",
        c=campaign,
        tiers=stored_tiers(db, campaign_id),
        stores=results.by_store(db, campaign_id, campaign.issued),
        percent=percent,
        editable=may_edit(),
        # A campaign whose end is not after its start never runs, whenever its end is.
        running=campaign.valid_to > clock.now() and campaign.valid_to > campaign.valid_from,
    )
