"""The console's segments page: saved segments, a live count on request, a rule builder with a preview, exports.

The builder previews on the server (a GET form: no script); saving and evaluating are POST forms
carrying the CSRF token. A saved segment opens in the builder to be edited (rule, channel and
description; :func:`central.segments.definitions.revise`, as ``PUT /api/v1/segments/<name>``, audited
as ``segment.update``). Deleting one asks first on a page of its own (:mod:`central.console.confirmation`),
is refused while a webhook export of it is being sent, and keeps its membership history
(:mod:`central.segments.deletion`, as ``DELETE /api/v1/segments/<name>``, audited as ``segment.delete``).
The CSV export is masked for every role but admin and audited.
"""

from __future__ import annotations

import itertools
from typing import Any

from flask import Response, abort, current_app, redirect, render_template, request, stream_with_context, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from central import clock
from central.accounts import web
from central.accounts.roles import ADMIN, MARKETING
from central.console import bp, offset_minutes
from central.console.auditing import record_audit
from central.console.confirmation import ask, confirmed
from central.console.customer_labels import N_
from central.customers.consent import CHANNELS
from central.db import get_session, session_factory
from central.segments import definitions, deletion, evaluation, exports
from central.segments.definitions import Draft, SegmentError
from central.segments.fields import schema_for

ROLES = (ADMIN, MARKETING)
CHANNEL_LABELS = {"sms": "短信", "wechat": "微信", "app_push": "App 推送", "email": "电子邮件"}
MAX_RULE = 4000
# Why a rule or a segment was refused, in the page's words, by reason code (``rule_`` + the rule's
# own code); on English pages the rule's English detail naming the token or field follows it.
PROBLEM_TEXTS = {
    "rule_expected": N_("这里缺少应有的符号或关键字。"),
    "rule_expected_operand": N_("这里需要一个字段、函数或值。"),
    "rule_unexpected_token": N_("这里应是 and、or 或规则的结尾。"),
    "rule_unknown_field": N_("没有这个字段。"),
    "rule_unknown_function": N_("没有这个函数。"),
    "rule_bad_argument": N_("函数的参数不对。"),
    "rule_no_tags": N_("这里不能测试标签。"),
    "rule_null_comparison": N_("判断缺失值请用 is null 或 is not null。"),
    "rule_constant_comparison": N_("这里比较的是两个常量，请比较一个字段。"),
    "rule_not_comparable": N_("has_tag(...)、true 和 false 本身就是条件，不能再比较。"),
    "rule_not_a_condition": N_("这不是完整的条件，请加上比较。"),
    "rule_days_comparison": N_("天数要与天数比较，例如 30d。"),
    "rule_bad_days": N_("天数须为整数，且不超过一百年。"),
    "rule_type_mismatch": N_("两边的类型不一致。"),
    "rule_unordered_type": N_("文本和是/否字段只能用 = 和 != 比较。"),
    "rule_bad_date": N_("不是有效的日期。"),
    "rule_bad_in": N_("in 只用于数字、文本或日期字段，列表中只能是值。"),
    "rule_empty_list": N_("in 列表至少要有一个值。"),
    "rule_too_many_values": N_("in 列表中的值过多。"),
    "rule_bad_null_test": N_("只有字段可以用 is null 判断。"),
    "rule_too_deep": N_("嵌套层数过多。"),
    "rule_too_many_terms": N_("条件过多。"),
    "rule_too_long": N_("规则过长。"),
    "rule_unexpected_character": N_("无法识别的字符。"),
    "rule_unterminated_string": N_("文本缺少结尾的引号。"),
    "rule_bad_escape": N_("文本中的转义无效。"),
    "rule_control_character": N_("规则中有控制字符。"),
    "rule_string_too_long": N_("文本过长。"),
    "rule_bad_number": N_("不是有效的数字。"),
    "rule_number_too_long": N_("数字过长。"),
    "rule_duration_too_long": N_("时长过长。"),
    "rule_no_attributes": N_("字段按名称读取，没有“.”属性。"),
    "rule_withheld_field": N_("您的角色只能看到生日的年份和邮编的前三位：请改用 birth_year 或 postcode_area。"),
    "bad_name": N_("人群名称须为 1-64 个小写字母、数字、“-”或“_”。"),
    "exists": N_("已有同名人群，请换一个名称或更新原人群。"),
    "bad_description": N_("说明最多 500 个字符。"),
    "bad_channel": N_("没有这个渠道。"),
    "bad_webhook": N_("Webhook 地址须为 http:// 或 https:// 开头，最长 2048 个字符。"),
    "not_found": N_("没有这个人群。"),
    "in_use_export": N_("这个人群的 Webhook 导出还在发送中，发送完成（或进入失败队列）后才能删除。"),
}
EXCEL_BOM = "\ufeff"


def _problem(exc: SegmentError) -> dict[str, Any]:
    return exc.to_json()


def _page(status: int = 200, editing: Any = None, **form: Any) -> ResponseReturnValue:
    """The list and the builder; or, ``editing`` a saved segment, the builder holding its rule."""
    db = get_session()
    offset = offset_minutes()
    today = evaluation.local_today(clock.now(), offset)
    # A live count reads every customer: the list shows the stored members of each segment's last
    # evaluation and counts live only the segment asked for (``?count=NAME``), so the page stays
    # quick however many segments a chain keeps.
    counting = request.args.get("count", "")
    rows = []
    for row in [] if editing else definitions.listed(db):
        live: Any = None
        if row.name == counting:
            try:
                live = evaluation.count(db, row.rule, row.channel, today, offset)
            except SegmentError:
                live = None  # a rule saved before a field was retired: shown, not counted
        rows.append((row, live))
    saved = editing or {"rule": "", "channel": CHANNELS[0], "description": ""}
    rule = form.get("rule", request.args.get("rule", saved["rule"]))[:MAX_RULE]
    channel = form.get("channel", request.args.get("channel", saved["channel"]))
    preview = problem = None
    if rule.strip() and "problem" not in form:
        try:
            definitions.check_channel(channel)
            definitions.check_rule(rule, schema_for(web.current_policy().unmasked))
            preview = evaluation.count(db, rule, channel, today, offset)
        except SegmentError as exc:
            problem = _problem(exc)
    html = render_template(
        "segments.html",
        page="segments",
        segments=rows,
        rule=rule,
        channel=channel if channel in CHANNELS else CHANNELS[0],
        channels=CHANNELS,
        channel_labels=CHANNEL_LABELS,
        problem_texts=PROBLEM_TEXTS,
        preview=preview,
        problem=form.get("problem", problem),
        name=form.get("name", ""),
        description=form.get("description", request.args.get("description", saved["description"])),
        saved=request.args.get("saved", ""),
        deleted=request.args.get("deleted", "")[:64],
        editing=editing,
    )
    return html, status


@bp.get("/segments")
@web.roles(*ROLES)
def segments() -> ResponseReturnValue:
    """Saved segments with live counts and last evaluation; the builder previews ``?rule=...&channel=...``."""
    return _page()


@bp.post("/segments")
@web.roles(*ROLES)
def save_segment() -> ResponseReturnValue:
    """Save the builder's rule as a new segment, or refuse it with the reason and position."""
    form = _form("name", "rule", "channel", "description")
    draft = _draft(form["name"].strip(), form)
    db = get_session()
    try:
        definitions.create(db, draft, **_author())
    except SegmentError as exc:
        db.rollback()
        return _page(400, problem=_problem(exc), **form)
    record_audit("segment.create", f"segment:{draft.name}", rule=draft.rule, channel=draft.channel)
    db.commit()
    return redirect(url_for("console.segments", saved=draft.name))


def _form(*fields: str) -> dict[str, str]:
    return {k: request.form.get(k, "")[:MAX_RULE] for k in fields}


def _draft(name: str, form: dict[str, str]) -> Draft:
    """The segment the builder's form describes, under ``name``."""
    return Draft(name, form["rule"], form["channel"], form["description"].strip()[:500])


def _author() -> dict[str, Any]:
    """Who saves a segment, when, and the fields this user's rules may read."""
    active = web.current()
    return {
        "actor": active.username if active else "anonymous",
        "now": clock.now(),
        "schema": schema_for(web.current_policy().unmasked),
    }


def _saved(name: str) -> Any:
    row = definitions.find(get_session(), name[:64])
    if row is None:
        abort(404)
    return row._mapping


@bp.get("/segments/<name>/edit")
@web.roles(*ROLES)
def edit_segment(name: str) -> ResponseReturnValue:
    """A saved segment in the builder, counted; ``?rule=...&channel=...`` previews a change before saving it."""
    return _page(editing=_saved(name))


@bp.post("/segments/<name>/edit")
@web.roles(*ROLES)
def update_segment(name: str) -> ResponseReturnValue:
    """Save the builder's rule, channel and description over a segment's (its name and webhook stay)."""
    saved = _saved(name)
    form = _form("rule", "channel", "description")
    draft = _draft(saved["name"], form)
    db = get_session()
    try:
        version = definitions.revise(db, draft.name, draft, **_author())
    except SegmentError as exc:
        db.rollback()
        return _page(400, editing=saved, problem=_problem(exc), **form)
    record_audit("segment.update", f"segment:{draft.name}", rule=draft.rule, channel=draft.channel, version=version)
    db.commit()
    return redirect(url_for("console.segments", saved=draft.name))


@bp.post("/segments/<name>/delete")
@web.roles(*ROLES)
def delete_segment(name: str) -> ResponseReturnValue:
    """Delete a segment, after a page asking to confirm; refused while its webhook export is being sent."""
    saved = _saved(name)
    if not confirmed():
        what = _(
            "删除人群 %(name)s（%(members)s 位成员）：不再计算和导出；成员记录留下此刻的离开，审计日志留下规则。",
            name=saved["name"],
            members=saved["members"],
        )
        return ask("segments", _("删除人群"), what, url_for("console.segments"), {})
    db = get_session()
    try:
        done = deletion.delete(db, saved["name"], now=clock.now())
    except SegmentError as exc:
        db.rollback()
        return _page(409, problem=_problem(exc))
    record_audit("segment.delete", f"segment:{saved['name']}", **done.to_audit())
    db.commit()
    return redirect(url_for("console.segments", deleted=saved["name"]))


@bp.post("/segments/<name>/evaluate")
@web.roles(*ROLES)
def evaluate_segment(name: str) -> ResponseReturnValue:
    """Evaluate a segment now (the scheduler also does, every ``scheduler.segments_interval``)."""
    db = get_session()
    if definitions.find(db, name) is None:
        abort(404)
    done = evaluation.evaluate(db, name, clock.now(), offset_minutes())
    record_audit("segment.evaluate", f"segment:{name}", **done.to_json())
    db.commit()
    return redirect(url_for("console.segments"))


@bp.get("/segments/<name>/export.csv")
@web.roles(*ROLES)
def export_segment(name: str) -> ResponseReturnValue:
    """The members of the last evaluation as CSV: masked unless admin, withdrawn consents left out, audited."""
    db = get_session()
    row = definitions.find(db, name)
    if row is None:
        abort(404)
    unmasked = web.current_policy().unmasked
    record_audit("segment.export", f"segment:{name}", to="csv", masked=not unmasked, version=row.evaluated_version)
    db.commit()
    today = evaluation.local_today(clock.now(), offset_minutes())
    chunks = exports.csv_chunks(session_factory(current_app), row, today, unmasked=unmasked)
    # A byte order mark first: Excel on a Chinese Windows reads a CSV without one as GBK, and the
    # names come out garbled. The API's export, read by programs, goes without.
    response = Response(stream_with_context(itertools.chain((EXCEL_BOM,), chunks)), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="segment-{name}.csv"'
    return response
