"""Device cookies: a browser an account logged in from is known again, so strangers cannot lock its owner out.

After a successful login the browser gets a long-lived cookie, signed with the server's secret,
naming the account (as typed, folded) and a random id for this browser. A later login attempt for
that account carrying the cookie counts its failures on the browser's id, not on the account
(:mod:`central.accounts.throttle`): someone guessing the account's password from anywhere else
exhausts the account's budget for unknown browsers only. This is OWASP's "device cookies"
(https://owasp.org/www-community/Slow_Down_Online_Guessing_Attacks_with_Device_Cookies). The
cookie grants nothing by itself: the password is still asked for every login.
"""

from __future__ import annotations

import secrets

from flask import current_app, request
from itsdangerous import BadSignature, URLSafeSerializer
from werkzeug.wrappers import Response

from central.config import CentralConfig

MAX_AGE = 365 * 24 * 3600
_SALT = "cdp-device-cookie"


def cookie_name(config: CentralConfig) -> str:
    """The device cookie's name for this configuration (host-only and Secure with secure cookies)."""
    return f"{'__Host-' if config.console_secure_cookie else ''}cdp-device"


def _signer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.secret_key, salt=_SALT)  # type: ignore[arg-type]


def _folded(username: str) -> str:
    return username.strip().lower()


def known(username: str) -> str | None:
    """This browser's id if its device cookie is genuine and names ``username``; otherwise None."""
    config: CentralConfig = current_app.config["CENTRAL"]
    raw = request.cookies.get(cookie_name(config))
    if not raw or not username:
        return None
    try:
        named, device = _signer().loads(raw)
    except (BadSignature, ValueError, TypeError):
        return None
    return device if isinstance(device, str) and named == _folded(username) else None


def remember(response: Response, username: str, device: str | None) -> None:
    """Give the browser that just logged in as ``username`` its device cookie (its id kept if it had one)."""
    config: CentralConfig = current_app.config["CENTRAL"]
    value = _signer().dumps([_folded(username), device or secrets.token_urlsafe(16)])
    response.set_cookie(
        cookie_name(config),
        value,
        max_age=MAX_AGE,
        path="/",
        secure=config.console_secure_cookie,
        httponly=True,
        samesite="Strict",
    )
