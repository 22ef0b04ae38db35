"""The HQ console: server-rendered pages under ``/console/`` (login, customers, agents)."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from central import audit, auth, clock
from central.customers.queries import list_customers, money
from central.db import get_session
from central.fleet.devices import list_devices

bp = Blueprint(
    "console",
    __name__,
    url_prefix="/console",
    template_folder="templates",
    static_folder="static",
)

PAGE_CUSTOMERS = 100
LOGIN_FAILED = "Wrong username or password."


def ago(moment: datetime | None, now: datetime) -> str:
    """How long before ``now`` a moment was, in the largest sensible unit ("42 s ago", "3 min ago")."""
    if moment is None:
        return "never"
    seconds = int((now - moment).total_seconds())
    if seconds < 0:
        return "in the future"
    if seconds < 60:
        return f"{seconds} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} d ago"


def utc(moment: datetime | None) -> str:
    """An absolute UTC time for tables: 2026-11-23 02:00:00 UTC."""
    return "—" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _safe_next(target: str | None) -> str:
    # Only same-site paths, so the login form cannot be used to bounce users to another site.
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("console.index")


@bp.app_template_global()
def csrf_token() -> str:
    """The CSRF token for forms."""
    return auth.csrf_token()


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    """The login form; failures get one message whatever was wrong, and are audited."""
    error = None
    if request.method == "GET" and auth.current_user(get_session()) is not None:
        return redirect(_safe_next(request.args.get("next")))
    if request.method == "POST":
        if not auth.csrf_valid():
            abort(400, "the form expired; reload the page and try again")
        username = request.form.get("username", "").strip()[:64]
        password = request.form.get("password", "")
        db = get_session()
        user = auth.check_credentials(db, username, password) if username and password else None
        now = clock.now()
        if user is None:
            audit.record(
                db,
                at=now,
                actor=username or "(empty)",
                action="login_failed",
                detail={"remote_addr": request.remote_addr},
            )
            db.commit()
            error = LOGIN_FAILED
        else:
            user.last_login_at = now
            audit.record(db, at=now, actor=user.username, action="login", detail={"remote_addr": request.remote_addr})
            db.commit()
            auth.login(user)
            return redirect(_safe_next(request.args.get("next")))
    return render_template("login.html", error=error), (401 if error else 200)


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    """End the session (a POST with the CSRF token, so other sites cannot log users out)."""
    if not auth.csrf_valid():
        abort(400, "the form expired; reload the page and try again")
    auth.logout()
    return redirect(url_for("console.login"))


@bp.get("/")
@auth.login_required
def index() -> ResponseReturnValue:
    """Customers and agents at a glance."""
    db = get_session()
    user = auth.current_user(db)
    customers, total = list_customers(db, PAGE_CUSTOMERS, 0)
    now = clock.now()
    devices = list_devices(db, now, current_app.config["CENTRAL"].fleet_offline_after)
    audit.record(
        db,
        at=now,
        actor=user.username if user else "anonymous",
        action="customers.list",
        detail={"via": "console", "returned": len(customers)},
    )
    db.commit()
    return render_template(
        "index.html",
        user=user,
        customers=customers,
        customers_total=total,
        devices=devices,
        now=now,
        ago=ago,
        utc=utc,
        money=money,
    )
