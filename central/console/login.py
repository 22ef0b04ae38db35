"""Logging in (the password, then a one-time code for users with two-step sign-in) and out, and the language.

A wrong code counts against the login throttle and is audited as a failed login, as a wrong password
is; a right password followed by a code does not clear the throttle until the code passes, or a known
password would buy endless guesses at the code.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import current_app, g, make_response, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import RequestRedirect

from central import audit, clock
from central.accounts import devices, sessions, throttle, two_step, users, web
from central.accounts.roles import EVERYONE
from central.config import CentralConfig
from central.console import LANGUAGE_COOKIE, LANGUAGES, bp
from central.db import get_session

LANGUAGE_MAX_AGE = 365 * 24 * 3600


def _safe_next(target: str | None) -> str:
    # Only same-site paths, so the login form cannot be used to bounce users to another site.
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return _page_for(target)
    return url_for("console.index")


def _answers_get(path: str) -> bool | None:
    """Whether a GET of ``path`` reaches a view: True, False (it takes other methods only), None (no view)."""
    adapter = current_app.url_map.bind_to_environ(request.environ)
    try:
        adapter.match(path, method="GET")
    except RequestRedirect:
        return True
    except MethodNotAllowed:
        return False
    except HTTPException:
        return None
    return True


def _page_for(target: str) -> str:
    """``target``, or the nearest page above it when it takes POST only.

    A page shown in answer to a form (an enrollment token, a refusal, a confirmation) has the form's
    address, and going back there by GET would be a 405: the language switch on it goes to the
    section's page instead (``/console/fleet/tokens`` to ``/console/fleet``). A path no view serves
    is kept, so that its 404 shows in the new language.
    """
    path = urlsplit(target).path
    if _answers_get(path) is not False:
        return target
    parts = path.rstrip("/").split("/")  # "", "console", section, ...
    for end in range(len(parts) - 1, 2, -1):
        above = "/".join(parts[:end])
        if _answers_get(above):
            return above
    return url_for("console.index")


def _rules(config: CentralConfig) -> throttle.Rules:
    return throttle.Rules.of(config)


def _minutes(rules: throttle.Rules) -> int:
    return int(rules.window.total_seconds() // 60)


def _attempt(db: Session, username: str, address: str) -> tuple[str, dict[str, Any]]:
    """The actor and detail a failed login's audit rows carry.

    A name no account has is never stored: it may be a password typed into the wrong field or a
    phone number, and the audit log cannot be erased. Its keyed hash (HMAC-SHA256 under the
    server's secret key, cut to 16 hex digits) still shows repeated tries of one name.
    """
    if username and users.exists(db, username):
        return username, {"remote_addr": address, "account_exists": True}
    detail: dict[str, Any] = {"remote_addr": address, "account_exists": False}
    if not username:
        return "(empty)", detail
    return "(unknown)", {**detail, "name_hash": throttle.name_hash(current_app.config["SECRET_KEY"], username)}


def count_failure(
    db: Session, username: str, address: str, rules: throttle.Rules, device: str | None, step: str = ""
) -> None:
    """Count a failed login (or a wrong code: ``step``) against the throttle and audit it; the caller commits."""
    now = clock.now()
    reached = throttle.failed(db, username, address, now=now, rules=rules, device=device)
    actor, detail = _attempt(db, username, address)
    if step:
        detail = {**detail, "step": step}
    audit.record(db, at=now, actor=actor, action="login_failed", detail=detail)
    for key in reached:
        limit = rules.per_address if throttle.kind(key) == "address" else rules.per_account
        throttled = {**detail, "by": throttle.kind(key), "failures": limit, "minutes": _minutes(rules)}
        audit.record(db, at=now, actor=actor, action="login_throttled", detail=throttled)


def _too_many(rules: throttle.Rules) -> str:
    return _("登录失败次数过多，请 %(minutes)d 分钟后再试，或请管理员重置密码。", minutes=_minutes(rules))


def secret_key() -> bytes:
    """The server's secret key (two-step secrets are sealed under a key derived from it)."""
    key = current_app.config["SECRET_KEY"]
    return key if isinstance(key, bytes) else str(key).encode()


@bp.route("/login", methods=["GET", "POST"])
@web.public
def login() -> ResponseReturnValue:
    """The login form. Unknown names and wrong passwords get one message; too many failures, another."""
    if request.method == "GET":
        if web.current() is not None:
            return redirect(_safe_next(request.args.get("next")))
        return render_template("login.html", error=None)
    username = request.form.get("username", "").strip()[:64]
    password = request.form.get("password", "")[:1024]
    address = request.remote_addr or ""
    rules = _rules(current_app.config["CENTRAL"])
    db = get_session()
    now = clock.now()
    device = devices.known(username)  # a browser this account logged in from before counts on its own
    if throttle.blocked(db, username, address, now=now, rules=rules, device=device):
        # Counted in login_failures, not one audit row each: the row came when the block began.
        throttle.refused(db, username, address, now=now, rules=rules, device=device)
        db.commit()
        return render_template("login.html", error=_too_many(rules)), 429
    user = users.check_login(db, username, password) if username and password else None
    if user is None:
        count_failure(db, username, address, rules, device)
        db.commit()
        return render_template("login.html", error=_("用户名或密码错误。")), 401
    web.purge_expired(db)
    if two_step.state(db, user.id).enabled:
        # Not logged in yet: the code comes next, and the throttle is cleared only when it passes.
        g.pending_cookie = sessions.start_pending(db, user, now=now, remote_addr=address)
        db.commit()
        return redirect(url_for("console.login_code", next=request.args.get("next") or None))
    user.last_login_at = now
    throttle.succeeded(db, username, device)
    web.begin(user)
    audit.record(db, at=now, actor=user.username, action="login", detail={"remote_addr": address})
    db.commit()
    if web.two_step_required(user.role):  # not set up yet: that first, and nothing else until it is
        response = redirect(url_for("console.two_step"))
    else:
        response = redirect(_safe_next(request.args.get("next")))
    devices.remember(response, username, device)
    return response


@bp.route("/login/code", methods=["GET", "POST"])
@web.public
def login_code() -> ResponseReturnValue:
    """The second step: a one-time code from the authenticator app, or a recovery code."""
    db = get_session()
    now = clock.now()
    token = request.cookies.get(web.pending_cookie_name(current_app.config["CENTRAL"]), "")
    user = sessions.pending_user(db, token, now=now)
    if user is None:
        g.pending_cookie = ""
        message = _("登录已超时，请重新输入用户名和密码。")
        return render_template("login.html", error=message), 401 if request.method == "POST" else 200
    if request.method == "GET":
        return render_template("login_code.html", error=None)
    address = request.remote_addr or ""
    rules = _rules(current_app.config["CENTRAL"])
    device = devices.known(user.username)
    if throttle.blocked(db, user.username, address, now=now, rules=rules, device=device):
        throttle.refused(db, user.username, address, now=now, rules=rules, device=device)
        db.commit()
        return render_template("login_code.html", error=_too_many(rules)), 429
    how = two_step.check_code(db, user.id, request.form.get("code", "")[:64], secret_key=secret_key(), now=now)
    if how is None:
        count_failure(db, user.username, address, rules, device, step="two_step")
        db.commit()
        return render_template("login_code.html", error=_("验证码错误或已用过，请输入验证器上的新验证码。")), 401
    sessions.finish_pending(db, token)
    g.pending_cookie = ""
    user.last_login_at = now
    throttle.succeeded(db, user.username, device)
    web.begin(user, two_step=True)
    detail = {"remote_addr": address, "two_step": how}
    audit.record(db, at=now, actor=user.username, action="login", detail=detail)
    db.commit()
    # A recovery code spent: the two-step page says how many are left and lets them set up a new phone.
    target = url_for("console.two_step") if how == "recovery" else _safe_next(request.args.get("next"))
    response = redirect(target)
    devices.remember(response, user.username, device)
    return response


@bp.post("/logout")
@web.roles(*EVERYONE, enrolment=True)
def logout() -> ResponseReturnValue:
    """End the session everywhere (its row goes), not just in this browser."""
    db = get_session()
    active = web.current()
    web.finish()
    if active is not None:
        audit.record(db, at=clock.now(), actor=active.username, action="logout")
    db.commit()
    return redirect(url_for("console.login"))


@bp.post("/language")
@web.public
def language() -> ResponseReturnValue:
    """Switch the console's language (a cookie), then go back to the page."""
    chosen = request.form.get("lang", "")
    response = make_response(redirect(_safe_next(request.form.get("next"))))
    if chosen in LANGUAGES:
        secure = bool(current_app.config["CENTRAL"].console_secure_cookie)
        response.set_cookie(
            LANGUAGE_COOKIE, chosen, max_age=LANGUAGE_MAX_AGE, path="/", secure=secure, samesite="Strict", httponly=True
        )
    return response
