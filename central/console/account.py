"""The user's own account page: setting up, and turning off, two-step sign-in (decision 0100).

Setting up takes two forms: one draws a new secret (shown as a QR code and in groups of four), the next
takes a code from the app and only then switches it on, showing the recovery codes once. Turning it off
takes a current code or the password, counted against the login throttle like a login; a user whose role
requires it cannot turn it off (an administrator resets it with ``central-server user reset-two-step``).
"""

from __future__ import annotations

from flask import current_app, g, render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from central import audit, clock
from central.accounts import devices, passwords, sessions, throttle, two_step, web
from central.accounts.roles import EVERYONE
from central.console import bp
from central.console.login import count_failure, secret_key
from central.db import get_session
from central.models import User


def _me() -> tuple[sessions.Active, User]:
    active, user = web.current(), web.current_user()
    assert active is not None and user is not None  # roles() let only a logged-in user in
    return active, user


def _page(error: str | None = None, status: int = 200, codes: list[str] | None = None) -> ResponseReturnValue:
    active, user = _me()
    db = get_session()
    state = two_step.state(db, user.id)
    secret = None if state.enabled else two_step.pending_secret(db, user.id, secret_key=secret_key())
    qr = two_step.qr_data_uri(two_step.provisioning_uri(secret, user.username)) if secret else None
    page = render_template(
        "two_step.html",
        state=state,
        secret=two_step.grouped(secret) if secret else None,
        qr=qr,
        required=web.two_step_required(active.role),
        confined=web.confined(active),
        codes=codes,
        error=error,
    )
    return page, status


@bp.get("/account/two-step", endpoint="two_step")
@web.roles(*EVERYONE, enrolment=True)
def two_step_page() -> ResponseReturnValue:
    """Whether two-step sign-in is on, and the forms to set it up or turn it off."""
    return _page()


@bp.post("/account/two-step/start")
@web.roles(*EVERYONE, enrolment=True)
def two_step_start() -> ResponseReturnValue:
    """Draw a new secret to scan (replacing one not yet confirmed)."""
    _active, user = _me()
    db = get_session()
    try:
        two_step.start(db, user, secret_key=secret_key(), now=clock.now())
    except two_step.TwoStepError:
        return _page(_("两步验证已开启。"), 409)
    db.commit()
    return _page()


@bp.post("/account/two-step/confirm")
@web.roles(*EVERYONE, enrolment=True)
def two_step_confirm() -> ResponseReturnValue:
    """Switch two-step sign-in on once a code from the new secret is typed; show the recovery codes once."""
    active, user = _me()
    db = get_session()
    now = clock.now()
    code = request.form.get("code", "")[:64]
    codes = two_step.confirm(db, user, code, secret_key=secret_key(), now=now, actor=user.username)
    if codes is None:
        db.rollback()
        return _page(_("验证码不对。请检查手机时间是否准确，然后输入验证器上的新验证码。"), 400)
    ended = sessions.passed_two_step(db, active.token_hash, user.id)
    if ended:
        audit.record(db, at=now, actor=user.username, action="two_step.sessions_ended", detail={"sessions": ended})
    db.commit()
    g.pop("console_session", None)  # read again: this session has passed two-step sign-in now
    return _page(codes=codes)


@bp.post("/account/two-step/disable")
@web.roles(*EVERYONE, enrolment=True)
def two_step_disable() -> ResponseReturnValue:
    """Turn two-step sign-in off, given a current code or the password; not for a role that requires it."""
    active, user = _me()
    if web.two_step_required(active.role):
        return _page(_("你的角色必须使用两步验证，不能关闭。丢了手机请找管理员重置。"), 403)
    db = get_session()
    now = clock.now()
    address = request.remote_addr or ""
    rules = throttle.Rules.of(current_app.config["CENTRAL"])
    device = devices.known(user.username)
    if throttle.blocked(db, user.username, address, now=now, rules=rules, device=device):
        throttle.refused(db, user.username, address, now=now, rules=rules, device=device)
        db.commit()
        return _page(_("失败次数过多，请稍后再试。"), 429)
    code, password = request.form.get("code", "")[:64], request.form.get("password", "")[:1024]
    right = (bool(password) and passwords.verify(user.password_hash, password)) or (
        bool(code) and two_step.check_code(db, user.id, code, secret_key=secret_key(), now=now) == "code"
    )
    if not right:
        count_failure(db, user.username, address, rules, device, step="two_step_disable")
        db.commit()
        return _page(_("验证码或密码错误。"), 401)
    two_step.turn_off(db, user.id)
    audit.record(db, at=now, actor=user.username, action="two_step.disable", subject=user.username)
    db.commit()
    return _page()
