"""The fleet pages: agents and their health, one device in detail, enrollment tokens, source keys.

Who may do what (docs/decisions/0059-console-operations-pages.md):

- admin: everything.
- technician: installs and replaces store PCs, so creates and revokes enrollment tokens and retires
  a device; revoking a device (a stolen PC) and online-source keys (which let a system write
  customer data) stay with admin. Sees the source keys' list (hints only). Retiring and revoking a
  device, which cannot be undone, are confirmed on a page of their own first.
- store_manager: reads the fleet and tokens of their own stores; changes nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import abort, current_app, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from markupsafe import Markup

from central import audit, clock
from central.accounts import web
from central.accounts.roles import ADMIN, TECHNICIAN
from central.console import bp, local_time
from central.console.confirmation import ask, confirmed
from central.console.customer_labels import N_
from central.console.navigation import (
    FLEET_ROLES,
    HEALTH_LABELS,
    HEALTH_STATE_LABELS,
    IGNORED_SETTING_REASONS,
    STATE_LABELS,
    TILL_RECEIPT_LABELS,
    TILL_SCAN_LABELS,
)
from central.db import get_session
from central.fleet.devices import DeviceError, DeviceSummary, set_status
from central.fleet.enrollment import STORE_ID_RE, TokenError, issue_token, page_tokens, revoke_token
from central.fleet.health import find_device, page_devices, readings, snapshot_figures
from central.fleet.models import EnrollToken
from central.fleet.till_quality import WINDOW, till_quality
from central.params import id_limit, whole_number
from central.sources.events import SOURCE_RE
from central.sources.keys import issue_key, list_keys, revoke_key
from shared.sizes import size_words

TOKEN_ROLES = (ADMIN, TECHNICIAN)
RETIRE_ROLES = (ADMIN, TECHNICIAN)
KEY_LIST_ROLES = (ADMIN, TECHNICIAN)
MAX_TTL_HOURS = 24 * 30
MAX_REASON = 255
_SEP = ","
# Why a device or token change was refused, in the page's words, by the domain's reason code; on
# English pages the domain's English detail (which names the command-line equivalent) follows it.
REFUSALS = {
    "unknown_device": N_("没有这台设备。"),
    "bad_transition": N_("这台设备%(status)s，不能改为%(target)s。"),
    "device_changed": N_("这台设备的状态刚被修改，请刷新页面后重试。"),
    "bad_token_id": N_("不是有效的令牌编号。"),
    "unknown_token": N_("没有这个令牌。"),
    "ambiguous_token": N_("不止一个令牌以这个编号开头，请输入更多位。"),
    "token_used": N_("这个令牌已被设备 %(device)s 用于登记，不能再吊销；如需停用，请吊销这台设备。"),
    "token_changed": N_("这个令牌刚被用于登记，没有吊销。"),
}


def _actor() -> str:
    active = web.current()
    return active.username if active else "anonymous"


def _stores() -> list[str] | None:
    """The stores this user may see: theirs for a store manager, every store (None) otherwise."""
    active = web.current()
    if active is not None and web.current_policy().store_scoped:
        return sorted(active.stores)
    return None


def _offline_after() -> float:
    return float(current_app.config["CENTRAL"].fleet_offline_after)


def _cursor(text: str) -> tuple[str, str] | None:
    store, sep, device = text.partition(_SEP)
    return (store, device) if sep and STORE_ID_RE.match(store) and len(device) <= 64 else None


def _problem(message: str, status: int, back: str, exc: DeviceError | TokenError | None = None) -> ResponseReturnValue:
    detail, reason = (str(exc), exc.reason) if exc else (None, None)
    page = render_template("outcome.html", page="fleet", problem=message, detail=detail, reason=reason, back=back)
    return page, status


def _refused(exc: DeviceError | TokenError, status: int, back: str, target: str = "") -> ResponseReturnValue:
    """The page for a refused device or token change: why in the page's words, then the domain's own."""
    known = REFUSALS.get(exc.reason)
    if known is None:
        return _problem(str(exc), status, back)
    state = getattr(exc, "status", None) or ""
    words = _(
        known,
        status=_(STATE_LABELS.get(state, state)) if state else "",
        target=_(STATE_LABELS.get(target, target)) if target else "",
        device=getattr(exc, "device_id", None) or "",
    )
    return _problem(words, status, back, exc)


@bp.get("/fleet")
@web.roles(*FLEET_ROLES)
def fleet() -> ResponseReturnValue:
    """Agents (a page at a time) with state, health readings and downlink version; enrollment tokens."""
    db = get_session()
    now = clock.now()
    stores = _stores()
    after = _cursor(request.args.get("after", ""))
    page = page_devices(db, now, _offline_after(), after=after, stores=stores)
    # A cursor that is not a token id is read as none: the first page.
    before = whole_number(request.args.get("tokens_before", ""), id_limit(EnrollToken.id))
    tokens, older = page_tokens(db, now, before=before, stores=stores)
    return render_template(
        "fleet.html",
        page="fleet",
        devices=[(d, readings(d)) for d in page.devices],
        next_after=_SEP.join(page.next_after) if page.next_after else None,
        first_page=after is None,
        tokens=tokens,
        tokens_before=older,
        now=now,
        may_tokens=_role() in TOKEN_ROLES,
        scoped=stores,
        # The store the empty page's enroll-token hint names: the user's own when they have a scope.
        hint_store=stores[0] if stores else None,
        default_ttl=current_app.config["CENTRAL"].enroll_token_ttl_hours,
    )


def _role() -> str:
    active = web.current()
    return active.role if active else ""


def _visible(device: DeviceSummary | None) -> DeviceSummary:
    stores = _stores()
    if device is None or (stores is not None and device.store_id not in stores):
        abort(404)
    return device


def _figure(key: str, value: Any) -> Any:
    """A health figure as the page shows it: a time local with its offset, as on every page; yes or no; a state;
    a size in decimal units as ``edge-agent status`` shows it, the exact bytes in its title."""
    if isinstance(value, datetime):
        return local_time(value)
    if isinstance(value, bool):
        return _("是") if value else _("否")
    if key.endswith("_bytes") and isinstance(value, int):
        return Markup('<span title="{}">{}</span>').format(_("%(bytes)d 字节", bytes=value), size_words(value))
    if key == "state" and value in HEALTH_STATE_LABELS:
        return _(HEALTH_STATE_LABELS[value])
    return value


def _ignored(device: DeviceSummary) -> str:
    """Central's settings the device does not apply, each with its reason in the page's language."""
    return _("、").join(
        _("%(name)s（%(reason)s）", name=name, reason=_(IGNORED_SETTING_REASONS[code]))
        if code in IGNORED_SETTING_REASONS
        else f"{name} ({code})"
        for name, code in device.settings_ignored.items()
    )


@bp.get("/fleet/devices/<device_id>")
@web.roles(*FLEET_ROLES)
def device(device_id: str) -> ResponseReturnValue:
    """One device: its state, every health figure of its newest heartbeat, its sources, and actions."""
    now = clock.now()
    found = _visible(find_device(get_session(), device_id[:64], now, _offline_after()))
    order = {key: n for n, key in enumerate(HEALTH_LABELS)}
    figures = [
        (key, HEALTH_LABELS.get(key), _ignored(found) if key == "settings_ignored" else _figure(key, value))
        for key, value in sorted(
            snapshot_figures(found.last_heartbeat), key=lambda f: (order.get(f[0], len(order)), f[0])
        )
    ]
    return render_template(
        "device.html",
        page="fleet",
        d=found,
        r=readings(found),
        figures=figures,
        till=till_quality(get_session(), found.device_id, now),
        till_days=WINDOW.days,
        receipt_labels=TILL_RECEIPT_LABELS,
        scan_labels=TILL_SCAN_LABELS,
        now=now,
        may_retire=_role() in RETIRE_ROLES,
        may_revoke=_role() == ADMIN,
    )


def _set_status(device_id: str, status: str) -> ResponseReturnValue:
    db = get_session()
    back = url_for("console.device", device_id=device_id)
    found = _visible(find_device(db, device_id[:64], clock.now(), _offline_after()))
    if not confirmed():
        named = {"store": found.store_id, "device": found.device_id}
        if status == "retired":
            title, what = _("退役设备"), _("退役门店 %(store)s 的设备 %(device)s：它从此不能再连接总部。", **named)
        else:
            title, what = _("吊销设备"), _("吊销门店 %(store)s 的设备 %(device)s：总部从此拒绝它的一切请求。", **named)
        return ask("fleet", title, what, back, {"reason": request.form.get("reason", "")[:MAX_REASON]})
    reason = request.form.get("reason", "").strip()[:MAX_REASON] or "console"
    try:
        set_status(db, device_id, status, reason=reason, now=clock.now(), actor=_actor())
    except DeviceError as exc:
        db.rollback()
        return _refused(exc, 409, back, status)
    db.commit()
    return redirect(back, 303)


@bp.post("/fleet/devices/<device_id>/retire")
@web.roles(*RETIRE_ROLES)
def retire_device(device_id: str) -> ResponseReturnValue:
    """Take a device out of service (it authenticates no more); asks first."""
    return _set_status(device_id, "retired")


@bp.post("/fleet/devices/<device_id>/revoke")
@web.roles(ADMIN)
def revoke_device(device_id: str) -> ResponseReturnValue:
    """Refuse a device from now on (a stolen or compromised PC); asks first."""
    return _set_status(device_id, "revoked")


@bp.post("/fleet/tokens")
@web.roles(*TOKEN_ROLES)
def create_token() -> ResponseReturnValue:
    """Create a single-use enrollment token and show it once (only its digest is kept)."""
    store = request.form.get("store", "").strip()
    back = url_for("console.fleet")
    try:
        ttl = float(request.form.get("ttl_hours", "") or current_app.config["CENTRAL"].enroll_token_ttl_hours)
    except ValueError:
        ttl = -1.0
    if not STORE_ID_RE.match(store):
        return _problem(_("门店编号须为 1-32 个字符：A-Z a-z 0-9 _ . -"), 400, back)
    if not 0 < ttl <= MAX_TTL_HOURS:
        return _problem(_("有效期须在 0 到 %(hours)d 小时之间", hours=MAX_TTL_HOURS), 400, back)
    db = get_session()
    now = clock.now()
    token = issue_token(db, store, ttl, now=now)
    audit.record(
        db, at=now, actor=_actor(), action="enroll_token.create", subject=store, detail={"via": "console", "ttl": ttl}
    )
    db.commit()
    return render_template(
        "outcome.html",
        page="fleet",
        secret=token,
        secret_kind="token",  # noqa: S106 - names the kind of secret shown, not a secret
        store=store,
        ttl=ttl,
        back=back,
    )


@bp.post("/fleet/tokens/<token_id>/revoke")
@web.roles(*TOKEN_ROLES)
def revoke_enroll_token(token_id: str) -> ResponseReturnValue:
    """Revoke an unused enrollment token."""
    db = get_session()
    try:
        revoke_token(db, token_id[:64], now=clock.now(), actor=_actor())
    except TokenError as exc:
        db.rollback()
        return _refused(exc, 409, url_for("console.fleet"))
    db.commit()
    return redirect(url_for("console.fleet"), 303)


@bp.get("/fleet/source-keys")
@web.roles(*KEY_LIST_ROLES)
def source_keys() -> ResponseReturnValue:
    """Online sources' API keys: id, source, the key's first characters, issued, revoked."""
    return render_template("source_keys.html", page="fleet", keys=list_keys(get_session()), may_change=_role() == ADMIN)


@bp.post("/fleet/source-keys")
@web.roles(ADMIN)
def create_source_key() -> ResponseReturnValue:
    """Issue a key for an online source and show it once."""
    source = request.form.get("source", "").strip()
    back = url_for("console.source_keys")
    if not SOURCE_RE.match(source):
        return _problem(
            _("来源名须为 1-57 个字符：a-z 0-9 _ . -，以字母或数字开头，且不能是 console（控制台自用）"), 400, back
        )
    db = get_session()
    now = clock.now()
    key_id, key = issue_key(db, source, now, created_by=_actor())
    audit.record(
        db, at=now, actor=_actor(), action="source_key.create", subject=f"source:{source}", detail={"key_id": key_id}
    )
    db.commit()
    return render_template(
        "outcome.html",
        page="fleet",
        secret=key,
        secret_kind="source_key",  # noqa: S106 - names the kind of secret shown
        store=source,
        back=back,
    )


@bp.post("/fleet/source-keys/<int32:key_id>/revoke")
@web.roles(ADMIN)
def revoke_source_key(key_id: int) -> ResponseReturnValue:
    """Revoke a source key for good."""
    db = get_session()
    now = clock.now()
    info = revoke_key(db, key_id, now)
    if info is None:
        abort(404)
    detail: dict[str, Any] = {"key_id": key_id, "via": "console"}
    audit.record(db, at=now, actor=_actor(), action="source_key.revoke", subject=f"source:{info.source}", detail=detail)
    db.commit()
    return redirect(url_for("console.source_keys"), 303)
