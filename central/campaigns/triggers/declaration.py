"""Declaring a trigger: checking its kind, parameters, action and control group, and storing it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from central.campaigns.actions import action_named, action_names
from central.campaigns.models import Trigger
from central.campaigns.purposes import MARKETING_ACTIONS, PURPOSES, SERVICE_KINDS
from central.campaigns.triggers.kinds import KINDS
from central.customers.consent import CHANNELS
from central.models import table

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}\Z")
DEFAULT_CONTROL_PERCENT = 10.0
_triggers = table(Trigger)


class TriggerError(ValueError):
    """A trigger declaration that cannot be accepted; the message names the field and what is expected.

    ``reason`` is a stable code for the refusal and ``field`` the declaration's field at fault (a
    parameter's own name for a kind's parameter): the console words the refusal from them.
    """

    def __init__(self, message: str, reason: str = "invalid", field: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.field = field


@dataclass(frozen=True, slots=True)
class Declared:
    """A checked trigger declaration."""

    name: str
    kind: str
    params: dict[str, Any]
    action: str
    action_params: dict[str, Any]
    control_percent: float

    def audited(self) -> dict[str, Any]:
        """What the audit row of its declaration keeps: whom it may reach, how, and under which consent."""
        purpose = self.params.get("purpose", "marketing")
        return {"kind": self.kind, "does": self.action, "channel": self.params["channel"], "purpose": purpose}


def check_params(kind: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` of a ``kind`` trigger with defaults filled in; TriggerError says what is wrong."""
    spec = KINDS[kind].params
    channel = params.get("channel")
    if channel not in CHANNELS:
        expected = ", ".join(CHANNELS)
        raise TriggerError(
            f"channel: the marketing channel whose consent it needs, one of {expected}", "bad_channel", "channel"
        )
    out: dict[str, Any] = {"channel": channel}
    purpose = params.get("purpose", "marketing")
    if purpose not in PURPOSES:
        raise TriggerError(
            f"purpose: the consent the action needs, one of {', '.join(PURPOSES)}", "bad_purpose", "purpose"
        )
    if purpose != "marketing":
        out["purpose"] = purpose
    for name, param in spec.items():
        try:
            out[name] = param.checked(name, params.get(name, param.default))
        except ValueError as exc:
            raise TriggerError(str(exc), "bad_param", name) from None
    unknown = set(params) - {"channel", "purpose", *spec}
    if unknown:
        expected = ", ".join([*spec, "channel", "purpose"])
        raise TriggerError(f"unknown parameter {sorted(unknown)[0]!r} (expected {expected})", "unknown_param")
    return out


def check(
    name: str,
    kind: str,
    params: Mapping[str, Any],
    action: str,
    action_params: Mapping[str, Any],
    control_percent: float = DEFAULT_CONTROL_PERCENT,
) -> Declared:
    """Validate a declaration; TriggerError says what is wrong."""
    if not NAME_RE.match(name):
        raise TriggerError("name: 1-64 lower-case letters, digits, '_', '.' or '-'", "bad_name", "name")
    if kind not in KINDS:
        raise TriggerError(f"kind: expected one of {', '.join(KINDS)}", "bad_kind", "kind")
    checked = check_params(kind, params)
    performer = action_named(action)
    if performer is None:
        raise TriggerError(f"action: expected one of {', '.join(action_names())}", "bad_action", "action")
    if checked.get("purpose") == "service" and kind not in SERVICE_KINDS:
        raise TriggerError(
            f"purpose: service consent covers {', '.join(SERVICE_KINDS)} follow-ups only; a {kind} trigger"
            " markets, and needs marketing consent",
            "purpose_not_service",
            "purpose",
        )
    if checked.get("purpose") == "service" and action in MARKETING_ACTIONS:
        raise TriggerError(
            f"purpose: a {action} is marketing, whatever the occasion; it needs marketing consent",
            "purpose_not_service",
            "purpose",
        )
    problem = performer.check(action_params)
    if problem:
        at_fault = "campaign" if action == "coupon" else "action_params"  # the coupon action's one parameter
        raise TriggerError(f"action {action}: {problem}", "bad_action_params", at_fault)
    if not 0 <= control_percent <= 100:
        raise TriggerError("control_percent: expected a percentage from 0 to 100", "bad_control", "control_percent")
    return Declared(name, kind, checked, action, dict(action_params), control_percent)


def declare(db: Session, declared: Declared, *, actor: str, now: datetime) -> int:
    """Store a new trigger (enabled); return its id. The caller commits."""
    if db.scalar(select(_triggers.c.id).where(_triggers.c.name == declared.name)) is not None:
        raise TriggerError(f"name: a trigger called {declared.name!r} exists already", "exists", "name")
    if declared.action == "coupon":
        from central.campaigns.actions import coupon_campaign

        found = coupon_campaign(db.connection(), declared.action_params["campaign"], now)
        if found.id is None:
            raise TriggerError(f"action coupon: {found.problem}", found.reason, "campaign")
    values = {
        "name": declared.name,
        "kind": declared.kind,
        "params": declared.params,
        "action": declared.action,
        "action_params": declared.action_params,
        "control_percent": declared.control_percent,
        "enabled": True,
        "created_at": now,
        "created_by": actor,
    }
    return int(db.execute(_triggers.insert().values(**values).returning(_triggers.c.id)).scalar_one())


def trigger_named(db: Session, name: str) -> Any | None:
    """The trigger row called ``name``, or None."""
    return db.execute(select(_triggers).where(_triggers.c.name == name)).first()


def set_enabled(db: Session, trigger_id: int, enabled: bool) -> bool:
    """Resume (``enabled``) or pause a trigger; False when there is no such trigger. The caller commits.

    A paused trigger is skipped by the triggers job; its ledger stays, so on resuming it does not
    fire again for an occasion it already fired on.
    """
    done = db.execute(
        update(_triggers).where(_triggers.c.id == trigger_id).values(enabled=enabled).returning(_triggers.c.id)
    ).first()
    return done is not None
