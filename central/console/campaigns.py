"""The campaign pages: triggers with their firings and control groups, coupon campaigns with results.

Admin, marketing and finance: only counts, amounts and rates, never a customer (finance sees no
profiles, and none of these pages shows one). Admin and marketing also get the buttons of
:mod:`central.console.campaign_forms` (create, pause, resume, end). The figures come from set-based SQL in
:mod:`central.campaigns.results`; a trigger's effect and a campaign's figures by tier, which read every
occasion or code, from the snapshots the ``reports`` job keeps (:mod:`central.campaigns.snapshots`),
shown with the time they were computed.

Each coupon campaign also shows what its codes still owe (:mod:`central.campaigns.liability`, decision
0104): issued, redeemed, revoked, outstanding with their face value, expired unredeemed, and the
redemptions in a period of local days (this month by default) for the monthly close, with a totals row
and a CSV download, audited as ``coupons.export`` as every export is.
"""

from __future__ import annotations

import io
from datetime import date, datetime, timedelta
from typing import Any

from flask import Response, abort, render_template
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from central import clock
from central.accounts import web
from central.accounts.roles import ADMIN, FINANCE, MARKETING
from central.campaigns import liability, results
from central.campaigns.snapshots import stored_effect, stored_tiers
from central.console import bp, offset_minutes
from central.console.auditing import record_audit
from central.console.campaign_forms import may_edit
from central.console.dates import days_asked
from central.console.segments import EXCEL_BOM
from central.csvfiles import SpreadsheetWriter
from central.customers.dashboard import local_midnight, local_today
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


def _this_month() -> tuple[date, date]:
    today = local_today(clock.now(), offset_minutes())
    first = today.replace(day=1)
    following = (first + timedelta(days=31)).replace(day=1)
    return first, following - timedelta(days=1)


def _period() -> tuple[date, date, str | None]:
    """The redemption period's local days (this month by default) and what is wrong with them, if anything."""
    first, last, problem = days_asked(_this_month())
    if problem:
        return first, last, problem
    if last < first:
        return *_this_month(), _("结束日期不能早于开始日期。")
    return first, last, None


def _owed(first: date, last: date) -> list[liability.Liability]:
    """Every campaign's liability as of now, with its redemptions from ``first`` to ``last`` (local days, both in)."""
    minutes = offset_minutes()
    instants: tuple[datetime, datetime] = (
        local_midnight(first, minutes),
        local_midnight(last + timedelta(days=1), minutes),
    )
    return liability.liabilities(get_session(), clock.now(), instants)


@bp.get("/campaigns")
@web.roles(*CAMPAIGN_ROLES)
def campaigns() -> ResponseReturnValue:
    """Triggers (firings, control group, last run) and coupon campaigns (issued, redeemed, conflicts, rate, owed)."""
    db = get_session()
    first, last, problem = _period()
    owed = _owed(first, last)
    page = render_template(
        "campaigns.html",
        page="campaigns",
        triggers=results.trigger_results(db),
        last_run=_last_trigger_run(),
        coupons=results.coupon_results(db),
        owed=owed,
        owed_total=liability.totals(owed),
        first=first,
        last=last,
        problem=problem,
        percent=percent,
        editable=may_edit(),
    )
    return page, 400 if problem else 200


@bp.get("/campaigns/coupons.csv")
@web.roles(*CAMPAIGN_ROLES)
def coupons_csv() -> ResponseReturnValue:
    """The liability table as CSV (one row per campaign, amounts in yuan as numbers), audited as an export."""
    first, last, problem = _period()
    if problem:
        abort(400, problem)
    rows = _owed(first, last)
    out = io.StringIO()
    out.write(EXCEL_BOM)  # Excel on a Chinese Windows reads a CSV without one as GBK
    writer = SpreadsheetWriter(out, lineterminator="\r\n")
    writer.writerow(liability.CSV_HEADER)
    for row in rows:
        writer.writerow(liability.csv_row(row, offset_minutes(), (first, last)))
    record_audit(
        "coupons.export", "coupons:liability", **{"from": first.isoformat(), "to": last.isoformat()}, rows=len(rows)
    )
    get_session().commit()
    response = Response(out.getvalue(), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="coupons-{first}-{last}.csv"'
    return response


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
