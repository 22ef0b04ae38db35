"""The HQ console: server-rendered pages under ``/console/``, in Chinese by default and English on request.

Views and templates only: the pages call the domains' functions, never SQL. Every view declares its
roles (``central.accounts.web.roles``); a test fails on any console route that does not.

Times are shown, and typed in forms, in the chain's local time (``customers.utc_offset_minutes``)
with the offset written beside them: ``2026-12-02 09:55:35 UTC+08:00``.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, current_app, render_template, request
from flask_babel import Babel, gettext
from markupsafe import Markup
from werkzeug.exceptions import HTTPException
from werkzeug.security import safe_join
from werkzeug.wrappers import Response as BaseResponse

from central import errors
from central.accounts import web
from central.accounts.roles import policy
from central.clock import offset_text
from central.console import navigation
from central.customers.sales import fen

STATIC = Path(__file__).resolve().parent / "static"
ASSET_MAX_AGE = 365 * 86400


@lru_cache(maxsize=64)
def _digest(path: str, _mtime_ns: int, _size: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


def asset_version(filename: str) -> str | None:
    """A static file's version: the start of its content's SHA-256 (None if there is no such file)."""
    path = safe_join(str(STATIC), filename)
    if path is None or not Path(path).is_file():
        return None
    stat = Path(path).stat()
    return _digest(path, stat.st_mtime_ns, stat.st_size)


class ConsoleBlueprint(Blueprint):
    """The console's blueprint: a static file asked for by its current version is cached for a year.

    Pages link to ``/console/static/<file>?v=<version>`` (:func:`_versioned`), so a browser reuses
    the charting library (a megabyte) and the style sheet from its cache on every page instead of
    asking again whether they changed; a new release changes the versions and so the URLs.
    """

    def get_send_file_max_age(self, filename: str | None) -> int | None:
        if filename and request.args.get("v") and request.args.get("v") == asset_version(filename):
            return ASSET_MAX_AGE
        return super().get_send_file_max_age(filename)


bp = ConsoleBlueprint(
    "console",
    __name__,
    url_prefix="/console",
    template_folder="templates",
    static_folder="static",
)

LANGUAGES = ("zh", "en")
DEFAULT_LANGUAGE = "zh"
LANGUAGE_COOKIE = "cdp-lang"
TRANSLATIONS = Path(__file__).resolve().parent / "translations"


def ago(moment: datetime | None, now: datetime) -> str:
    """How long before ``now`` a moment was, in the largest sensible unit ("42 s ago", "3 min ago")."""
    if moment is None:
        return "—"
    seconds = int((now - moment).total_seconds())
    if seconds < 0:
        return "+"
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


def offset_minutes() -> int:
    """The chain's local time as minutes east of UTC."""
    return int(current_app.config["CENTRAL"].customers_utc_offset_minutes)


def local_time(moment: datetime | None) -> Markup | str:
    """An instant for pages, in the chain's local time with its offset, in a ``<time>`` element.

    ``2026-12-02 09:55:35 UTC+08:00``; the element's ``datetime`` attribute carries the instant in
    UTC for scripts and tests. A naive value is taken as UTC, as central stores times.
    """
    if moment is None:
        return "—"
    instant = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    minutes = offset_minutes()
    shown = (instant + timedelta(minutes=minutes)).strftime("%Y-%m-%d %H:%M:%S")
    stamp = instant.strftime("%Y-%m-%dT%H:%M:%SZ")
    return Markup('<time datetime="{}">{} UTC{}</time>').format(stamp, shown, offset_text(minutes))


def amount(value: Any, cents: bool = False) -> str:
    """Money for pages: two decimals, thousands grouped (590,368.66); ``cents`` when stored in fen; blank for None."""
    if value is None or value == "":
        return ""
    number = Decimal(str(value))
    if cents:
        number /= 100
    return f"{fen(number):,.2f}"


def count(value: Any) -> str:
    """A count for pages, thousands grouped (1,234,567), as a chain's member counts need; blank for None."""
    return "" if value is None else f"{int(value):,}"


def source_state(state: str) -> str:
    """An agent source's reported state in the page's language: "scanning (active)" -> "扫描中 (active)"."""
    head, bracket, rest = str(state).partition(" (")
    label = navigation.SOURCE_STATE_LABELS.get(head)
    return f"{gettext(label)}{bracket}{rest}" if label else str(state)


def select_locale() -> str:
    """The language cookie's choice, else Chinese."""
    chosen = request.cookies.get(LANGUAGE_COOKIE, "")
    return chosen if chosen in LANGUAGES else DEFAULT_LANGUAGE


@bp.app_template_global()
def csrf_token() -> str:
    """The CSRF token for forms."""
    return web.csrf_token()


@bp.url_defaults
def _versioned(endpoint: str, values: dict[str, Any]) -> None:
    """Link static files with their version (``url_for('console.static', filename=...)`` adds ``v``)."""
    if endpoint == "console.static" and "v" not in values:
        version = asset_version(str(values.get("filename", "")))
        if version:
            values["v"] = version


@bp.context_processor
def _globals() -> dict[str, object]:
    active = web.current()
    return {
        "me": active,
        "can": policy(active.role if active else ""),
        "lang": select_locale(),
        "ago": ago,
        "local_time": local_time,
        "amount": amount,
        "count": count,
        "source_state": source_state,
        "nav": navigation.nav_for(active.role) if active and not web.confined(active) else [],
        "role_labels": navigation.ROLE_LABELS,
        "titles": navigation.TITLES,
        "kind_labels": navigation.SEARCH_LABELS,
        "identifier_labels": navigation.IDENTIFIER_LABELS,
        "medium_labels": navigation.MEDIUM_LABELS,
        "state_labels": navigation.STATE_LABELS,
        "tier_labels": navigation.TIER_LABELS,
        "status_labels": navigation.JOB_STATUS_LABELS,
        "job_labels": navigation.JOB_LABELS,
        "trigger_kinds": navigation.TRIGGER_KIND_LABELS,
        "actions": navigation.ACTION_LABELS,
        "outcome_labels": navigation.OUTCOME_LABELS,
        "reject_reason_labels": navigation.REJECT_REASON_LABELS,
    }


def error_page(exc: HTTPException) -> BaseResponse:
    """A console error in the console's frame and the page's language, with the status and headers it had.

    The frame's values are passed in: a path that no view serves has no blueprint, so the console's
    context processor does not run for it.
    """
    status = exc.code or 500
    texts = navigation.ERROR_TEXTS
    text = navigation.ERROR_REASONS.get(str(exc.description)) or texts.get(status) or texts[500]
    response = exc.get_response()
    response.set_data(render_template("error.html", **_globals(), status=status, text=text))
    response.content_type = "text/html; charset=utf-8"
    return response


def init_app(app: Flask) -> None:
    """Register the console and its translations on ``app``."""
    errors.PAGE_RENDERERS["/console"] = error_page
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT_LANGUAGE)
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(TRANSLATIONS))
    Babel(app, locale_selector=select_locale)
    from central.console import (  # noqa: F401  (registers the views on bp)
        account,
        campaign_forms,
        campaigns,
        consents,
        customer_search,
        customers,
        fleet,
        imports,
        login,
        overview,
        privacy,
        review,
        sales,
        segments,
    )

    app.register_blueprint(bp)
