"""The campaign forms: create a coupon campaign or a trigger, pause and resume a trigger, end a campaign,
refresh a trigger's effect report or a campaign's figures by tier now.

Admin and marketing only (finance reads the results, changes nothing). The forms call the same
domain functions as the JSON API and the CLI (:mod:`central.campaigns.coupons`,
:mod:`central.campaigns.triggers`), so a refused form shows the API's own reason, above the form
filled in again with what the user typed. Every change is a POST carrying the CSRF token and is
audited (the coupon functions write their own audit rows, the trigger changes are recorded here).
Times are typed in the chain's local time (``customers.utc_offset_minutes``).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from flask import abort, current_app, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from central import clock
from central.accounts import web
from central.accounts.roles import ADMIN, MARKETING
from central.campaigns import coupons, snapshots, triggers
from central.campaigns.triggers.kinds import Param
from central.clock import offset_text
from central.console import bp, offset_minutes
from central.console.auditing import record_audit
from central.console.customer_labels import N_
from central.console.navigation import ACTION_LABELS, PARAM_LABELS, PURPOSE_LABELS, TRIGGER_KIND_LABELS
from central.console.segments import CHANNEL_LABELS
from central.customers.consent import CHANNELS
from central.db import get_session

EDIT_ROLES = (ADMIN, MARKETING)
# The actions a marketer picks in the console; a webhook (a URL and a shared secret) is declared
# through the API or the CLI.
FORM_ACTIONS = ("coupon", "export")
COUPON_FIELDS = ("name", "value", "valid_from", "valid_to", "max_redemptions", "offline_budget", "stores")
MAX_FIELD = 2000
_WHOLE = re.compile(r"-?\d+")  # any length: the campaign says which range a large one is out of
# The forms' fields by name, as the refusal names the field at fault (a kind's parameters: PARAM_LABELS).
FIELD_LABELS = {
    "name": N_("名称"),
    "value": N_("面额（元）"),
    "valid_from": N_("开始时间"),
    "valid_to": N_("结束时间"),
    "max_redemptions": N_("核销上限"),
    "offline_budget": N_("单店离线核销额度"),
    "stores": N_("门店"),
    "kind": N_("类型"),
    "channel": N_("渠道"),
    "purpose": N_("同意用途"),
    "action": N_("动作"),
    "action_params": N_("动作"),
    "campaign": N_("优惠券活动"),
    "control_percent": N_("对照组比例"),
}
# Why a coupon campaign or a trigger was refused, in the page's words, by the domain's reason code;
# the code follows, labelled, and on English pages the API's own detail too.
PROBLEM_TEXTS = {
    "not_integer": N_("须为整数。"),
    "bad_amount": N_("须为正数金额，最多两位小数，例如 10.00。"),
    "amount_too_large": N_("须小于 1,000,000,000。"),
    "bad_time": N_("不是有效的时间。"),
    "no_offset": N_("时间须带时区（+08:00 或 Z）。"),
    "bad_period": N_("须晚于开始时间。"),
    "bad_max_redemptions": N_("须在 1 到 10^12 之间。"),
    "bad_offline_budget": N_("须在 0 到 1,000,000 之间。"),
    "bad_store": N_("门店编号须为 1-32 个字符：A-Z a-z 0-9 _ . -，以逗号分隔。"),
    "unknown_store": N_("系统中没有这个门店：没有登记的设备、登记令牌或销售记录。请核对编号；新门店请先创建登记令牌。"),
    "period_over": N_("有效期已经结束：结束时间须晚于现在。"),
    "coupon_bad_name": N_("须为 1-128 个字符：A-Z a-z 0-9 _ . -，不含空格。"),
    "coupon_exists": N_("已有同名的优惠券活动，请换一个名称。"),
    "trigger_bad_name": N_("须为 1-64 个小写字母、数字、“_”、“.”或“-”，以字母或数字开头。"),
    "trigger_exists": N_("已有同名的触发规则，请换一个名称。"),
    "bad_kind": N_("没有这个类型。"),
    "bad_channel": N_("没有这个渠道。"),
    "bad_purpose": N_("没有这个同意用途。"),
    "purpose_not_service": N_("“服务”同意只用于跟进投诉，且不能发放优惠券；其他触发规则都是营销，须选“营销”。"),
    "bad_action": N_("没有这个动作。"),
    "bad_action_params": N_("请选择一个进行中的优惠券活动。"),
    "unknown_campaign": N_("没有这个优惠券活动。"),
    "campaign_ended": N_("这个优惠券活动已结束，请选择进行中的活动。"),
    "bad_control": N_("须为 0 到 100 之间的百分比。"),
    "unknown_param": N_("没有这个参数。"),
    "bad_param": N_("取值无效。"),
}
_HAS_OFFSET = re.compile(r"(Z|[+-]\d\d:?\d\d)\Z")
Refusal = dict[str, str]  # a refused form's problem as its template shows it (see _refusal)


def may_edit() -> bool:
    """Whether this console user may create and change campaigns (the pages show the buttons)."""
    active = web.current()
    return active is not None and active.role in EDIT_ROLES


def _actor() -> str:
    active = web.current()
    return active.username if active else "console"


def _form(fields: tuple[str, ...]) -> dict[str, str]:
    return {k: request.form.get(k, "").strip()[:MAX_FIELD] for k in fields}


def _whole(key: str, text: str) -> int:
    """A whole number typed in a form; the API's reason when it is not one."""
    if not _WHOLE.fullmatch(text):
        raise coupons.CouponError(f"{key} must be an integer", "not_integer", key)
    return int(text)


def _local_time(key: str, text: str) -> Any:
    """A time typed in the chain's local time (``2026-12-01T00:00``), or with its own offset."""
    return coupons.parse_time(key, text if _HAS_OFFSET.search(text) else text + offset_text(offset_minutes()))


def _coupon_defaults() -> dict[str, str]:
    local = clock.now() + timedelta(minutes=offset_minutes())
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return {
        "name": "",
        "value": "10.00",
        "valid_from": start.strftime("%Y-%m-%dT%H:%M"),
        "valid_to": (start + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M"),
        "max_redemptions": "1000",
        "offline_budget": "50",
        "stores": "",
    }


def _param_text(kind: str, name: str) -> str | None:
    """What a kind's parameter must be, in the page's language."""
    param = triggers.KINDS[kind].params.get(name) if kind in triggers.KINDS else None
    if param is None:
        return None
    if param.flag:
        return _("须为是或否。")
    if param.choices:
        return _("须为列表中的一项。")
    return _("须为 %(low)d 到 %(high)d 之间的整数。", low=param.low, high=param.high)


def _refusal(exc: coupons.CouponError | triggers.TriggerError, kind: str = "") -> Refusal:
    """A refused form's problem as the page shows it: the field at fault, why in the page's words, the API's text.

    Names and duplicates are worded per form (``coupon_`` or ``trigger_`` before the reason).
    """
    reason = exc.reason
    scoped = ("coupon_" if isinstance(exc, coupons.CouponError) else "trigger_") + reason
    field = exc.field or ""
    text = _param_text(kind, field) if reason == "bad_param" else None
    if text is None:
        message = PROBLEM_TEXTS.get(scoped) or PROBLEM_TEXTS.get(reason)
        text = _(message) if message else ""
    label = FIELD_LABELS.get(field) or PARAM_LABELS.get(field)
    return {"field": _(label) if label else "", "text": text, "detail": str(exc), "reason": reason}


def _coupon_page(form: dict[str, str], problem: Refusal | None = None, status: int = 200) -> ResponseReturnValue:
    offset = offset_text(offset_minutes())
    html = render_template("coupon_form.html", page="campaigns", form=form, problem=problem, offset=offset)
    return html, status


@bp.get("/campaigns/coupons/new")
@web.roles(*EDIT_ROLES)
def new_coupon_campaign() -> ResponseReturnValue:
    """The form for a new coupon campaign."""
    return _coupon_page(_coupon_defaults())


@bp.post("/campaigns/coupons/new")
@web.roles(*EDIT_ROLES)
def create_coupon_campaign() -> ResponseReturnValue:
    """Create the campaign (published to the stores at their next sync), or show why not."""
    form = _form(COUPON_FIELDS)
    db = get_session()
    stores = [s for s in re.split(r"[\s,，]+", form["stores"]) if s]
    try:
        campaign = coupons.create_campaign(
            db,
            name=form["name"],
            value=coupons.parse_value(form["value"]),
            valid_from=_local_time("valid_from", form["valid_from"]),
            valid_to=_local_time("valid_to", form["valid_to"]),
            max_redemptions=_whole("max_redemptions", form["max_redemptions"]),
            offline_budget=_whole("offline_budget", form["offline_budget"]),
            stores=stores or None,
            now=clock.now(),
            actor=_actor(),
            secret=current_app.config["SECRET_KEY"],
        )
    except coupons.CouponError as exc:
        db.rollback()
        return _coupon_page(form, _refusal(exc), 400)
    db.commit()  # create_campaign wrote its audit row (coupons.create), as for the API
    return redirect(url_for("console.coupon_campaign", campaign_id=campaign.id))


@bp.post("/campaigns/coupons/<int32:campaign_id>/end")
@web.roles(*EDIT_ROLES)
def end_coupon_campaign(campaign_id: int) -> ResponseReturnValue:
    """End a campaign now: tills refuse its codes from their next sync."""
    db = get_session()
    try:
        ended = coupons.end_campaign(
            db, str(campaign_id), now=clock.now(), actor=_actor(), secret=current_app.config["SECRET_KEY"]
        )
    except coupons.NotFound:
        abort(404)
    if ended:
        db.commit()  # end_campaign wrote its audit row (coupons.end)
    return redirect(url_for("console.coupon_campaign", campaign_id=campaign_id))


TRIGGER_FIELDS = ("name", "kind", "channel", "purpose", "action", "campaign", "control_percent")


def _kind(requested: str) -> str:
    return requested if requested in triggers.KINDS else next(iter(triggers.KINDS))


def _param_fields(kind: str) -> list[tuple[str, Param]]:
    return list(triggers.KINDS[kind].params.items())


def _trigger_defaults(kind: str) -> dict[str, str]:
    form = {
        "name": "",
        "kind": kind,
        "channel": CHANNELS[0],
        "purpose": triggers.PURPOSES[0],
        "action": FORM_ACTIONS[0],
        "campaign": "",
        "control_percent": f"{triggers.DEFAULT_CONTROL_PERCENT:g}",
    }
    for name, param in _param_fields(kind):
        form[f"param_{name}"] = ("1" if param.default else "") if param.flag else str(param.default)
    return form


def _trigger_page(form: dict[str, str], problem: Refusal | None = None, status: int = 200) -> ResponseReturnValue:
    db = get_session()
    html = render_template(
        "trigger_form.html",
        page="campaigns",
        form=form,
        problem=problem,
        kinds=list(triggers.KINDS),
        params=_param_fields(form["kind"]),
        channels=CHANNELS,
        purposes=triggers.PURPOSES,
        actions=FORM_ACTIONS,
        campaigns=coupons.running_names(db, clock.now()),
        trigger_kind_labels=TRIGGER_KIND_LABELS,
        param_labels=PARAM_LABELS,
        purpose_labels=PURPOSE_LABELS,
        action_labels=ACTION_LABELS,
        channel_labels=CHANNEL_LABELS,
    )
    return html, status


@bp.get("/campaigns/triggers/new")
@web.roles(*EDIT_ROLES)
def new_trigger() -> ResponseReturnValue:
    """The form for a new trigger; ``?kind=`` picks the kind whose parameters it asks for."""
    return _trigger_page(_trigger_defaults(_kind(request.args.get("kind", ""))))


def _params(kind: str, form: dict[str, str]) -> dict[str, Any]:
    """The kind's parameters from the form: numbers as numbers, anything else as typed for the check to refuse."""
    out: dict[str, Any] = {"channel": form["channel"], "purpose": form["purpose"]}
    for name, param in _param_fields(kind):
        text = form[f"param_{name}"]
        if param.flag:
            out[name] = text == "1"
        elif param.choices:
            out[name] = text
        else:
            out[name] = int(text) if _WHOLE.fullmatch(text) else text
    return out


@bp.post("/campaigns/triggers/new")
@web.roles(*EDIT_ROLES)
def create_trigger() -> ResponseReturnValue:
    """Declare the trigger (enabled; the triggers job evaluates it), or show why not."""
    kind = _kind(request.form.get("kind", ""))
    fields = TRIGGER_FIELDS + tuple(f"param_{name}" for name, _ in _param_fields(kind))
    form = {**_form(fields), "kind": kind}
    action_params = {"campaign": form["campaign"]} if form["action"] == "coupon" else {}
    db = get_session()
    try:
        try:
            control = float(form["control_percent"] or triggers.DEFAULT_CONTROL_PERCENT)
        except ValueError:
            raise triggers.TriggerError(
                "control_percent: expected a percentage from 0 to 100", "bad_control", "control_percent"
            ) from None
        declared = triggers.check(form["name"], kind, _params(kind, form), form["action"], action_params, control)
        trigger_id = triggers.declare(db, declared, actor=_actor(), now=clock.now())
    except triggers.TriggerError as exc:
        db.rollback()
        return _trigger_page(form, _refusal(exc, kind), 400)
    record_audit("trigger.declare", f"trigger:{declared.name}", **declared.audited(), id=trigger_id)
    db.commit()
    return redirect(url_for("console.trigger", trigger_id=trigger_id))


def _switch(trigger_id: int, enabled: bool) -> ResponseReturnValue:
    db = get_session()
    if not triggers.set_enabled(db, trigger_id, enabled):
        abort(404)
    record_audit("trigger.resume" if enabled else "trigger.pause", f"trigger:{trigger_id}")
    db.commit()
    return redirect(url_for("console.trigger", trigger_id=trigger_id))


@bp.post("/campaigns/triggers/<int32:trigger_id>/pause")
@web.roles(*EDIT_ROLES)
def pause_trigger(trigger_id: int) -> ResponseReturnValue:
    """Pause a trigger: the triggers job skips it until it is resumed."""
    return _switch(trigger_id, False)


@bp.post("/campaigns/triggers/<int32:trigger_id>/resume")
@web.roles(*EDIT_ROLES)
def resume_trigger(trigger_id: int) -> ResponseReturnValue:
    """Resume a paused trigger; occasions it fired on before stay fired."""
    return _switch(trigger_id, True)


@bp.post("/campaigns/triggers/<int32:trigger_id>/effect")
@web.roles(*EDIT_ROLES)
def refresh_effect(trigger_id: int) -> ResponseReturnValue:
    """Recompute the trigger's effect report now instead of at the ``reports`` job's next run."""
    db = get_session()
    if snapshots.refresh_effect(db, trigger_id, clock.now(), offset_minutes()) is None:
        abort(404)
    record_audit("report.refresh", f"trigger:{trigger_id}", report=snapshots.EFFECT)
    db.commit()
    return redirect(url_for("console.trigger", trigger_id=trigger_id) + "#effect")


@bp.post("/campaigns/coupons/<int32:campaign_id>/tiers")
@web.roles(*EDIT_ROLES)
def refresh_tiers(campaign_id: int) -> ResponseReturnValue:
    """Recompute the campaign's figures by value tier now instead of at the ``reports`` job's next run."""
    db = get_session()
    if snapshots.refresh_tiers(db, campaign_id, clock.now()) is None:
        abort(404)
    record_audit("report.refresh", f"coupon_campaign:{campaign_id}", report=snapshots.TIERS)
    db.commit()
    return redirect(url_for("console.coupon_campaign", campaign_id=campaign_id) + "#by-tier")
