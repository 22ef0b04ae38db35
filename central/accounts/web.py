"""Console sessions on the web: the cookie, role checks on every route, CSRF, and security headers.

- The session cookie is ``__Host-cdp-session`` (Secure, HttpOnly, SameSite=Strict, Path=/) holding a
  random token whose hash names a ``console_sessions`` row (``central.accounts.sessions``). With
  ``console.secure_cookie = false`` (a plain-HTTP demo only) it is ``cdp-session`` without Secure,
  since browsers refuse ``__Host-`` cookies that are not Secure.
- Every console view declares who may call it with ``@roles(...)``; a test walks the URL map and
  fails on any console route without a declaration. Not logged in: a redirect to the login page
  (401 JSON under /api/); logged in with another role: 403.
- CSRF: every state-changing request under /console/ must carry the session's token in the
  ``csrf_token`` form field or the ``X-CSRF-Token`` header. Before login the token is an HMAC of a
  random value in a second cookie (``__Host-cdp-login``), so the login form is covered too. Any
  state-changing request that a browser marks as cross-site (``Sec-Fetch-Site``, ``Origin``) is
  refused everywhere, the JSON APIs included.
- Two-step sign-in (``central.accounts.two_step``): a user whose password was right and who has it on
  holds a login waiting for the code (cookie ``__Host-cdp-pending``), not a session. A session of a user
  whose role requires it (``console.two_step_roles``) but who signed in by the password alone reaches
  only the views declared with ``roles(..., enrolment=True)`` (setting it up, logging out); every other
  view sends it there (403 JSON under /api/).
- Every response carries a CSP without inline script, frame-ancestors 'none', nosniff and a
  Referrer-Policy; every console and API response ``Cache-Control: no-store``.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar, cast
from urllib.parse import quote, urlsplit

from flask import Flask, Response, abort, current_app, g, redirect, request, url_for
from sqlalchemy.orm import Session

from central import access_log, audit, clock
from central.accounts import sessions
from central.accounts.roles import ROLES, Policy, policy
from central.accounts.two_step import required_roles
from central.config import CentralConfig
from central.db import READ_ONLY, get_session, read_only_session
from central.errors import ApiError
from central.models import User

F = TypeVar("F", bound=Callable[..., Any])

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
ROLES_ATTRIBUTE = "console_roles"
TWO_STEP_NEEDED = "two-step sign-in is required for your role: set it up at /console/account/two-step"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def _config() -> CentralConfig:
    config: CentralConfig = current_app.config["CENTRAL"]
    return config


def cookie_names(config: CentralConfig) -> tuple[str, str]:
    """The session cookie's and the login-form cookie's names for this configuration."""
    prefix = "__Host-" if config.console_secure_cookie else ""
    return f"{prefix}cdp-session", f"{prefix}cdp-login"


def pending_cookie_name(config: CentralConfig) -> str:
    """The cookie of a login waiting for its one-time code."""
    return f"{'__Host-' if config.console_secure_cookie else ''}cdp-pending"


def two_step_required(role: str) -> bool:
    """Whether ``console.two_step_roles`` requires two-step sign-in of ``role``."""
    return role in required_roles(_config().console_two_step_roles)


def confined(active: sessions.Active | None) -> bool:
    """Whether this session may only set up two-step sign-in: its role requires it and it was opened without."""
    return active is not None and not active.two_step and two_step_required(active.role)


def limits(config: CentralConfig) -> sessions.Limits:
    """The session limits configured."""
    return sessions.Limits(
        idle=timedelta(minutes=config.console_idle_minutes), absolute=timedelta(hours=config.console_session_hours)
    )


def current() -> sessions.Active | None:
    """This request's live console session, or None (read from the database once per request)."""
    if "console_session" not in g:
        token = request.cookies.get(cookie_names(_config())[0], "")
        active = _resume(get_session(), token) if token else None
        g.console_session = active
        if active is not None:
            access_log.attribute(f"user:{active.username}")
        if token and active is None:
            g.console_cookie = ""  # a dead cookie is cleared
    return cast(sessions.Active | None, g.console_session)


def _resume(db: Session, token: str) -> sessions.Active | None:
    now, session_limits = clock.now(), limits(_config())
    if not db.in_transaction():
        # Most requests only read their session: a read-only transaction on SQLite neither waits for
        # nor holds up writers (a JSON client's requests queue for the write lock once, not twice).
        db.connection(execution_options=READ_ONLY)
        try:
            active = sessions.resume(db, token, now=now, limits=session_limits, read_only=True)
        except sessions.WriteNeeded:
            db.rollback()  # due its idle-time note or its end: done below, in a writing transaction
        else:
            db.rollback()
            return active
    active = sessions.resume(db, token, now=now, limits=session_limits)
    db.commit()
    return active


def current_policy() -> Policy:
    """What this request's user may see (nothing when logged out)."""
    active = current()
    return policy(active.role if active else "")


def current_user() -> User | None:
    """The logged-in user's row, or None."""
    active = current()
    return None if active is None else get_session().get(User, active.user_id)


def begin(user: User, *, two_step: bool = False) -> None:
    """Log ``user`` in (``two_step``: a one-time code was given): a fresh session row (the caller commits),
    its cookie set on the response."""
    token = sessions.start(
        get_session(), user, now=clock.now(), remote_addr=request.remote_addr or "", two_step=two_step
    )
    g.console_cookie = token
    g.pop("console_session", None)


def purge_expired(db: Session) -> int:
    """Delete every session past its limits (done at each login, so the table stays small)."""
    return sessions.purge(db, now=clock.now(), limits=limits(_config()))


def finish() -> None:
    """Log out: the session row goes (the caller commits) and the cookie is cleared."""
    active = current()
    if active is not None:
        sessions.end(get_session(), active.token_hash)
    g.console_session = None
    g.console_cookie = ""


def roles(*allowed: str, enrolment: bool = False) -> Callable[[F], F]:
    """Declare which roles may call a view; everyone else is refused (the declaration is checked by a test).

    ``enrolment``: a session confined to setting up two-step sign-in may call it too.
    """
    unknown = set(allowed) - set(ROLES)
    if unknown or not allowed:
        raise ValueError(f"roles() needs known role names, got {allowed!r}")

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            active = current()
            if active is None:
                if request.path.startswith("/api/"):
                    raise ApiError(401, "unauthorized", "login required")
                return redirect(url_for("console.login", next=request.full_path.rstrip("?")))
            if active.role not in allowed:
                _audit_refusal(active)
                if request.path.startswith("/api/"):
                    raise ApiError(403, "forbidden", "your role may not use this")
                abort(403)
            if not enrolment and confined(active):
                if request.path.startswith("/api/"):
                    raise ApiError(403, "two_step_required", TWO_STEP_NEEDED)
                return redirect(url_for("console.two_step"))
            if request.method in SAFE_METHODS:
                # Pages only read; their audit rows are appended in a transaction of their own.
                read_only_session()
            return view(*args, **kwargs)

        setattr(wrapped, ROLES_ATTRIBUTE, frozenset(allowed))
        return cast(F, wrapped)

    return decorate


def _audit_refusal(active: sessions.Active, reason: str | None = None) -> None:
    """Note a logged-in user's request their role may not make: probing for what a role cannot
    reach is worth knowing, and the access log is not kept as long."""
    db = get_session()
    detail = {"role": active.role} | ({"reason": reason} if reason else {})
    audit.record(
        db,
        at=clock.now(),
        actor=active.username,
        action="access.refused",
        subject=f"{request.method} {quote(request.path)}",
        detail=detail,
    )
    db.commit()


def refusal(reason: str, message: str, *, code: str = "forbidden", details: dict[str, Any] | None = None) -> ApiError:
    """A 403 for an API request the user's role may make but not this way (a field it sees in part, a
    setting only an admin changes), audited as ``access.refused`` with ``reason`` like the role check's."""
    active = current()
    if active is not None:
        _audit_refusal(active, reason)
    return ApiError(403, code, message, details=details)


def public(view: F) -> F:
    """Declare a view that anyone may call (the login page, static files)."""
    setattr(view, ROLES_ATTRIBUTE, frozenset({"*"}))
    return view


def _login_token(nonce: str) -> str:
    key = current_app.config["SECRET_KEY"]
    secret = key if isinstance(key, bytes) else str(key).encode()
    return hmac.new(secret, b"console-login-csrf:" + nonce.encode(), hashlib.sha256).hexdigest()


def csrf_token() -> str:
    """The token forms embed: the session's own, or before login one bound to the login cookie."""
    active = current()
    if active is not None:
        return active.csrf_token
    if "login_nonce" not in g:
        nonce = request.cookies.get(cookie_names(_config())[1], "")
        if not nonce or len(nonce) > 64:
            nonce = secrets.token_urlsafe(24)
            g.new_login_nonce = nonce
        g.login_nonce = nonce
    return _login_token(cast(str, g.login_nonce))


def _csrf_valid() -> bool:
    submitted = request.headers.get(CSRF_HEADER) or request.form.get(CSRF_FIELD, "")
    if not submitted:
        return False
    active = current()
    if active is not None:
        expected = active.csrf_token
    else:
        nonce = request.cookies.get(cookie_names(_config())[1], "")
        if not nonce:
            return False
        expected = _login_token(nonce)
    return hmac.compare_digest(expected.encode(), submitted.encode())


CROSS_SITE = "cross-site requests are refused"
FORM_EXPIRED = "the form expired or did not come from this console; reload the page and try again"


def _cross_site() -> bool:
    if request.headers.get("Sec-Fetch-Site", "") == "cross-site":
        return True
    origin = request.headers.get("Origin")
    return bool(origin) and origin != "null" and urlsplit(origin).netloc != request.host


def _before() -> Response | None:
    if request.method in SAFE_METHODS:
        return None
    if _cross_site() or request.headers.get("Origin") == "null":
        abort(403, CROSS_SITE)
    if request.path.startswith("/console/") and not _csrf_valid():
        abort(400, FORM_EXPIRED)
    return None


def _after(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    config = _config()
    session_cookie, login_cookie = cookie_names(config)
    secure = config.console_secure_cookie
    if request.path.startswith(("/console/", "/api/")):  # customer data: never in a browser's or a proxy's cache
        response.headers.setdefault("Cache-Control", "no-store")
    if "console_cookie" in g:
        token = cast(str, g.console_cookie)
        if token:
            response.set_cookie(
                session_cookie,
                token,
                max_age=int(config.console_session_hours * 3600),
                path="/",
                secure=secure,
                httponly=True,
                samesite="Strict",
            )
        else:
            response.delete_cookie(session_cookie, path="/", secure=secure, httponly=True, samesite="Strict")
    if "pending_cookie" in g:
        pending, name = cast(str, g.pending_cookie), pending_cookie_name(config)
        if pending:
            max_age = int(sessions.PENDING_FOR.total_seconds())
            response.set_cookie(
                name, pending, max_age=max_age, path="/", secure=secure, httponly=True, samesite="Strict"
            )
        else:
            response.delete_cookie(name, path="/", secure=secure, httponly=True, samesite="Strict")
    if "new_login_nonce" in g:
        response.set_cookie(
            login_cookie, cast(str, g.new_login_nonce), path="/", secure=secure, httponly=True, samesite="Strict"
        )
    return response


def init_app(app: Flask) -> None:
    """Check CSRF before, and add security headers and cookies after, every request."""
    app.before_request(_before)
    app.after_request(_after)
