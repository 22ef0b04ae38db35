"""What a trigger does when it fires: the action interface and the built-in actions.

An action is queued in the same transaction that writes the occasion to the ledger, so it is
queued exactly once; carrying it out (a webhook call, a coupon synced to the stores) happens
later and may be retried, with the occasion id as its idempotency key. Built in: ``coupon``
(issue a code of a coupon campaign), ``webhook`` (a signed call, retried, dead-lettered) and
``export`` (a row of the trigger's export list, downloaded as CSV). Another action implements
:class:`Action` and is added with :func:`register_action`::

    class SmsAction:
        name = "sms"
        def check(self, params): ...            # refuse bad parameters when the trigger is declared
        def enqueue(self, conn, trigger, firings, now): ...   # queue, in the ledger's transaction
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, NamedTuple, Protocol, TextIO
from urllib.parse import urlsplit

import orjson
from sqlalchemy import Connection, func, select, text
from sqlalchemy.orm import Session

from central import bulk
from central.campaigns.coupon_models import CouponCampaign, CouponCode
from central.campaigns.models import PENDING, ExportEntry, TriggerCoupon, WebhookDelivery
from central.campaigns.purposes import purpose_of
from central.csvfiles import SpreadsheetWriter
from central.customers.consent_gate import consent_holds
from central.identity.models import Customer
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


def write_export(db: Session, trigger: Any, today: date, out: TextIO) -> int:
    """Write a trigger's export list to ``out`` as CSV (customer_id, occasion, added_at); the row count.

    Only customers whom the trigger's purpose may still reach on its channel on ``today`` are written:
    the consent gate's rule, the one the trigger fired under, asked again at download as a condition on
    each row (as segment exports ask it), of the live customer the row's is now (itself, or the survivor
    it was merged into). So a customer who withdrew since the trigger fired is left out.
    """
    exports = table(ExportEntry)
    # An alias: the gate's own queries read ``customers`` and must not be correlated with this one.
    customer = table(Customer).alias("exported")
    live = func.coalesce(customer.c.merged_into, customer.c.id)
    reachable = consent_holds(
        purpose_of(trigger.kind, trigger.params, trigger.action), trigger.params["channel"], today, live
    )
    if db.get_bind().dialect.name == "postgresql":
        # As for segment exports: compiling the statement (JIT) cost more than finding a long list's rows.
        db.execute(text("SET LOCAL jit = off"))
    rows = db.execute(
        select(exports.c.customer_id, exports.c.occasion, exports.c.added_at)
        .join(customer, customer.c.id == exports.c.customer_id)
        .where(exports.c.trigger_id == trigger.id, reachable)
        .order_by(exports.c.id)
        .execution_options(yield_per=10_000)
    )
    writer = SpreadsheetWriter(out, lineterminator="\r\n")
    writer.writerow(["customer_id", "occasion", "added_at"])
    count = 0
    for customer_id, occasion, added_at in rows:
        writer.writerow([customer_id, occasion, added_at.isoformat().replace("+00:00", "Z")])
        count += 1
    return count


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


class ActionError(RuntimeError):
    """An action that cannot be carried out as declared (its coupon campaign is gone or over)."""


class CampaignFound(NamedTuple):
    """A coupon campaign looked up by name: its id if it can still issue codes, else a reason code and why not."""

    id: int | None
    reason: str = ""
    problem: str = ""


def coupon_campaign(conn: Connection, name: str, now: datetime) -> CampaignFound:
    """Coupon campaign ``name``'s id if it can still issue codes at ``now``, else why not."""
    campaigns = table(CouponCampaign)
    columns = (campaigns.c.id, campaigns.c.valid_from, campaigns.c.valid_to)
    row = conn.execute(select(*columns).where(campaigns.c.name == name)).first()
    if row is None:
        how = "create it with central-server coupons create"
        return CampaignFound(None, "unknown_campaign", f"no coupon campaign called {name!r} ({how})")
    if now > row.valid_to or row.valid_to <= row.valid_from:  # an end not after its start: never valid
        return CampaignFound(None, "campaign_ended", f"coupon campaign {name!r} ended at {row.valid_to.isoformat()}")
    return CampaignFound(int(row.id))


class CouponAction:
    """Issue a code of the trigger's coupon campaign to the customer (one per occasion).

    The code is a campaign code like any other (tills check its signature offline); which
    customer and occasion it was issued for is kept in ``trigger_coupons``, so the effect report
    can count redemptions.
    """

    name = "coupon"

    def check(self, params: Mapping[str, Any]) -> str | None:
        campaign = params.get("campaign")
        if not isinstance(campaign, str) or not campaign:
            return "coupon needs campaign = the name of a coupon campaign"
        if set(params) != {"campaign"}:
            return "coupon takes only campaign"
        return None

    def enqueue(self, conn: Connection, trigger: TriggerRef, firings: Sequence[Firing], now: datetime) -> int:
        if not firings:
            return 0
        campaign, _, problem = coupon_campaign(conn, trigger.action_params["campaign"], now)
        if campaign is None:
            raise ActionError(f"trigger {trigger.name}: {problem}")
        # Only the primary key returned and no row skipped: serials come back in the order of the rows.
        serials = bulk.insert(
            conn,
            table(CouponCode),
            ("campaign_id", "issued_at"),
            [(campaign, now)] * len(firings),
            returning=("serial",),
        )
        rows = [
            (f.occasion_id, trigger.id, f.customer_id, campaign, int(serial))
            for f, (serial,) in zip(firings, serials, strict=True)
        ]
        columns = ("occasion_id", "trigger_id", "customer_id", "campaign_id", "serial")
        bulk.insert(conn, table(TriggerCoupon), columns, rows)
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


_ACTIONS: dict[str, Action] = {"coupon": CouponAction(), "export": ExportAction(), "webhook": WebhookAction()}


def register_action(action: Action) -> None:
    """Make ``action`` available to triggers under ``action.name``."""
    _ACTIONS[action.name] = action


def action_named(name: str) -> Action | None:
    """The registered action called ``name``, or None."""
    return _ACTIONS.get(name)


def action_names() -> list[str]:
    """The names of every registered action, sorted."""
    return sorted(_ACTIONS)
