"""Campaigns over the JSON API: triggers (list, declare, effect report, export list) and dead-lettered webhook calls."""

from __future__ import annotations

import io
from typing import Any

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import func, select

from central import audit, clock
from central.accounts import web
from central.accounts.roles import ADMIN, FINANCE, MARKETING
from central.auth import actor_name, login_required
from central.bodies import json_body
from central.campaigns import triggers, webhooks
from central.campaigns.actions import write_export
from central.campaigns.models import CONTROL, Trigger, TriggerOccasion
from central.db import get_session
from central.errors import ApiError
from central.models import table
from central.segments.fields import schema_for

bp = Blueprint("campaigns", __name__)
_triggers = table(Trigger)
_occasions = table(TriggerOccasion)


def _trigger_json(row: Any, fired: int, control: int) -> dict[str, Any]:
    shown = {k: v for k, v in (row.action_params or {}).items() if k != "secret"}  # the secret is never shown
    return {
        "name": row.name,
        "kind": row.kind,
        "params": row.params,
        "action": row.action,
        "action_params": shown,
        "control_percent": row.control_percent,
        "enabled": row.enabled,
        "fired": fired,
        "control": control,
    }


@bp.get("/api/v1/triggers")
@login_required
def list_triggers() -> Response:
    """Every trigger with how often it fired and how many of those went to the control group."""
    db = get_session()
    counts = {
        (tid, grp): n
        for tid, grp, n in db.execute(
            select(_occasions.c.trigger_id, _occasions.c.grp, func.count()).group_by(
                _occasions.c.trigger_id, _occasions.c.grp
            )
        )
    }
    rows = db.execute(select(_triggers).order_by(_triggers.c.id)).all()
    out = []
    for row in rows:
        control = counts.get((row.id, CONTROL), 0)
        fired = sum(n for (tid, _), n in counts.items() if tid == row.id)
        out.append(_trigger_json(row, fired, control))
    return jsonify({"triggers": out})


@bp.post("/api/v1/triggers")
@login_required
def declare_trigger() -> tuple[Response, int]:
    """Declare a trigger: ``{name, kind, params, action, action_params, control_percent}`` (kinds: see README)."""
    body = json_body()
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_trigger", "expected a JSON object")
    db = get_session()
    try:
        declared = triggers.check(
            str(body.get("name", "")),
            str(body.get("kind", "")),
            body.get("params") or {},
            str(body.get("action", "")),
            body.get("action_params") or {},
            float(body.get("control_percent", triggers.DEFAULT_CONTROL_PERCENT)),
        )
        trigger_id = triggers.declare(db, declared, actor=actor_name(), now=clock.now())
    except triggers.TriggerError as exc:
        raise ApiError(400, "invalid_trigger", str(exc), details={"reason": exc.reason, "field": exc.field}) from None
    except (TypeError, ValueError) as exc:
        raise ApiError(400, "invalid_trigger", str(exc), details={"reason": "invalid", "field": None}) from None
    audit.record(
        db,
        at=clock.now(),
        actor=actor_name(),
        action="trigger.declare",
        subject=f"trigger:{declared.name}",
        detail={**declared.audited(), "id": trigger_id},
    )
    db.commit()
    return jsonify({"id": trigger_id, "name": declared.name}), 201


@bp.get("/api/v1/webhooks/dead")
@login_required
def dead() -> Response:
    """The newest dead-lettered webhook calls with their last error."""
    rows = webhooks.dead_letters(get_session())
    return jsonify(
        {
            "dead": [
                {
                    "id": r.id,
                    "trigger_id": r.trigger_id,
                    "url": r.url,
                    "attempts": r.attempts,
                    "last_error": r.last_error,
                }
                for r in rows
            ]
        }
    )


@bp.post("/api/v1/webhooks/<int:delivery_id>/retry")
@login_required
def retry(delivery_id: int) -> Response:
    """Queue a dead-lettered call again with a fresh set of attempts."""
    db = get_session()
    if not webhooks.retry_dead(db, delivery_id, clock.now()):
        raise ApiError(404, "not_found", f"no dead-lettered webhook call {delivery_id}")
    audit.record(db, at=clock.now(), actor=actor_name(), action="webhook.retry", subject=f"webhook:{delivery_id}")
    db.commit()
    return jsonify({"queued": delivery_id})


@bp.get("/api/v1/triggers/<name>/report")
@web.roles(ADMIN, MARKETING, FINANCE)
def report(name: str) -> Response:
    """The trigger's effect: action group against control group over ``weeks`` (default 4) after each occasion.

    Aggregates only (no customer appears), so finance may read it beside marketing.
    """
    from central.campaigns.effect import DEFAULT_WEEKS, UnknownTrigger, effect_report

    db = get_session()
    try:
        weeks = int(request.args.get("weeks", DEFAULT_WEEKS))
        found = effect_report(db, name, weeks, now=clock.now())
    except UnknownTrigger as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    except ValueError as exc:
        raise ApiError(400, "invalid_report", str(exc)) from None
    db.commit()
    return jsonify(found.to_json())


@bp.get("/api/v1/triggers/<name>/export.csv")
@web.roles(ADMIN, MARKETING)
def export_csv(name: str) -> Response:
    """The trigger's export list as CSV (customer_id, occasion, added_at), of those it may still reach; audited.

    Refused (403, reason ``withheld_field``) to a role shown a field only coarsely when the list gives that
    field away: whom a birthday trigger fired for, and on which day, is each one's birthday.
    """
    db = get_session()
    trigger = triggers.trigger_named(db, name)
    if trigger is None:
        raise ApiError(404, "not_found", f"no trigger {name!r}")
    # What a role's segment rules may not read is what it may not learn of each customer here either.
    withheld = triggers.revealed(trigger.kind, schema_for(web.current_policy().unmasked).withheld)
    if withheld is not None:
        raise web.refusal(
            "withheld_field",
            f"your role sees {withheld} only in part, and the export list of {trigger.kind} trigger {name!r} gives"
            f" each customer's {withheld} away in full (who was added on which day); an administrator can download it",
            details={"reason": "withheld_field", "field": withheld},
        )
    out = io.StringIO()
    count = write_export(db, trigger, clock.today(), out)
    audit.record(
        db,
        at=clock.now(),
        actor=actor_name(),
        action="trigger.export",
        subject=f"trigger:{name}",
        detail={"rows": count},
    )
    db.commit()
    return Response(
        out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="trigger-{name}.csv"'},
    )
