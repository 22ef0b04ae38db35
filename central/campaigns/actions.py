"""What a trigger does when it fires: the action interface and the built-in actions.

An action is queued in the same transaction that writes the occasion to the ledger, so it is
queued exactly once; carrying it out (a webhook call, a coupon synced to the stores) happens
later and may be retried, with the occasion id as its idempotency key. A new action (the coupon
issue's ``coupon``) implements :class:`Action` and is added with :func:`register_action`::

    class CouponAction:
        name = "coupon"
        def check(self, params): ...            # refuse bad parameters when the trigger is declared
        def enqueue(self, conn, trigger, firings, now): ...   # queue, in the ledger's transaction
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

import orjson
from sqlalchemy import Connection

from central import bulk
from central.campaigns.models import PENDING, ExportEntry, WebhookDelivery
from central.models import table


@dataclass(frozen=True, slots=True)
class Firing:
    """A trigger fired for a customer on an occasion (ledger row ``occasion_id``)."""

    occasion_id: int
    customer_id: int
    occasion: str
    fired_at: datetime
    detail: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class TriggerRef:
    """The trigger an action runs for: its id, name and the action's parameters."""

    id: int
    name: str
    action_params: Mapping[str, Any]


class Action(Protocol):
    """Something a trigger can do for the customers it fired for."""

    name: str

    def check(self, params: Mapping[str, Any]) -> str | None:
        """Why ``params`` cannot configure this action, or None."""

    def enqueue(self, conn: Connection, trigger: TriggerRef, firings: Sequence[Firing], now: datetime) -> int:
        """Queue the action for ``firings`` in the caller's transaction; return how many were queued."""


class ExportAction:
    """Add the customer to the trigger's export list (``central-server trigger-export``)."""

    name = "export"

    def check(self, params: Mapping[str, Any]) -> str | None:
        return None if not params else "the export action takes no parameters"

    def enqueue(self, conn: Connection, trigger: TriggerRef, firings: Sequence[Firing], now: datetime) -> int:
        rows = [(f.occasion_id, trigger.id, f.customer_id, f.occasion, now) for f in firings]
        columns = ("occasion_id", "trigger_id", "customer_id", "occasion", "added_at")
        bulk.insert(conn, table(ExportEntry), columns, rows, skip_conflicts_on=("occasion_id",))
        return len(rows)


class WebhookAction:
    """Call an HTTP(S) endpoint with a signed JSON body (delivered by the ``webhooks`` job)."""

    name = "webhook"

    def check(self, params: Mapping[str, Any]) -> str | None:
        url, secret = params.get("url"), params.get("secret")
        if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
            return "webhook needs url = an http:// or https:// address"
        if len(url) > 2048:
            return "webhook url is longer than 2048 characters"
        if not isinstance(secret, str) or len(secret) < 16:
            return "webhook needs secret = at least 16 characters, shared with the receiver to check signatures"
        return None

    def enqueue(self, conn: Connection, trigger: TriggerRef, firings: Sequence[Firing], now: datetime) -> int:
        rows = [
            (
                f.occasion_id,
                trigger.id,
                trigger.action_params["url"],
                body(trigger.name, f),
                PENDING,
                0,
                now,
                now,
            )
            for f in firings
        ]
        columns = ("occasion_id", "trigger_id", "url", "body", "status", "attempts", "created_at", "next_attempt_at")
        bulk.insert(conn, table(WebhookDelivery), columns, rows, skip_conflicts_on=("occasion_id",))
        return len(rows)


def body(trigger_name: str, firing: Firing) -> str:
    """The JSON a webhook receives for one firing; ``occasion_id`` is its idempotency key."""
    return orjson.dumps(
        {
            "trigger": trigger_name,
            "occasion_id": firing.occasion_id,
            "customer_id": firing.customer_id,
            "occasion": firing.occasion,
            "fired_at": firing.fired_at.isoformat().replace("+00:00", "Z"),
            "detail": dict(firing.detail),
        }
    ).decode()


_ACTIONS: dict[str, Action] = {"export": ExportAction(), "webhook": WebhookAction()}


def register_action(action: Action) -> None:
    """Make ``action`` available to triggers under ``action.name``."""
    _ACTIONS[action.name] = action


def action_named(name: str) -> Action | None:
    """The registered action called ``name``, or None."""
    return _ACTIONS.get(name)


def action_names() -> list[str]:
    return sorted(_ACTIONS)
