"""The console's overview page; customers, segments, fleet, campaigns and imports have modules of their own.

Each page declares its roles.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, render_template
from flask.typing import ResponseReturnValue

from central import audit, clock
from central.accounts import web
from central.accounts.roles import EVERYONE
from central.console import bp
from central.db import get_session
from central.fleet.devices import DeviceSummary, list_devices


def _audit(action: str, subject: str = "", **detail: Any) -> None:
    active = web.current()
    audit.record(
        get_session(),
        at=clock.now(),
        actor=active.username if active else "anonymous",
        action=action,
        subject=subject,
        detail={"via": "console", **detail},
    )


def _devices() -> list[DeviceSummary]:
    """The fleet, limited to the user's stores for a store manager."""
    offline_after = current_app.config["CENTRAL"].fleet_offline_after
    devices = list_devices(get_session(), clock.now(), offline_after)
    active = web.current()
    if active is not None and web.current_policy().store_scoped:
        devices = [d for d in devices if d.store_id in active.stores]
    return devices


@bp.get("/")
@web.roles(*EVERYONE)
def index() -> ResponseReturnValue:
    """Overview: fleet health for everyone; member and sales figures arrive with the dashboard work."""
    devices = _devices()
    states: dict[str, int] = {}
    for d in devices:
        states[d.state] = states.get(d.state, 0) + 1
    return render_template("overview.html", page="overview", fleet_states=sorted(states.items()))
