"""The console's pages: customers (search and the 360 view), segments, campaigns, fleet, imports.

Each page declares its roles. Personal data is masked for every role but admin, and every page that
shows a customer writes an audit row naming who looked.
"""

from __future__ import annotations

from typing import Any

from flask import abort, current_app, render_template, request
from flask.typing import ResponseReturnValue

from central import audit, clock
from central.accounts import web
from central.accounts.roles import ADMIN, FINANCE, MARKETING
from central.console import bp
from central.console.navigation import CUSTOMER_ROLES, FLEET_ROLES
from central.customers.queries import customer_detail, find_customer, list_customers, money, survivor_of
from central.db import get_session
from central.fleet.devices import DeviceSummary, list_devices
from central.fleet.enrollment import list_tokens
from central.identity import golden, resolve
from central.presence import beacons
from shared.masking import mask_identifier, mask_name

SEARCH_KINDS = ("phone", "member_card", "member_id", "name")
RECENT = 50


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


def queue_depth(device: DeviceSummary) -> object:
    """Events waiting in the agent's outbox at its last heartbeat, if it said."""
    outbox = (device.last_heartbeat or {}).get("outbox")
    return outbox.get("pending", "—") if isinstance(outbox, dict) else "—"


@bp.get("/customers")
@web.roles(*CUSTOMER_ROLES)
def customers() -> ResponseReturnValue:
    """Search by phone, member card, member id or name; the results are masked for every role but admin."""
    kind = request.args.get("kind", "phone")
    query = request.args.get("q", "").strip()[:128]
    found: list[dict[str, Any]] = []
    problem = None
    recent: list[Any] = []
    if kind not in SEARCH_KINDS:
        abort(400)
    if not query:
        db = get_session()
        recent, _total = list_customers(db, RECENT, 0)  # identifiers come masked
        _audit("customers.list", returned=len(recent))
        db.commit()
    if query and kind == "name":
        problem = "name"
    elif query:
        db = get_session()
        registry = current_app.config["IDENTITY_REGISTRY"]
        value, _reason = registry.check(kind, query)
        if value is None:
            problem = "invalid"
        else:
            known = resolve.lookup(db.connection(), [(kind, value)])
            ids = sorted({k.customer_id for k in known.values() if k.customer_id is not None})
            for cid in ids:
                row = find_customer(db, cid)
                if row is not None:
                    found.append(_card(survivor_of(db, row)))
            _audit("customers.search", f"{kind}:{mask_identifier(kind, value)}", returned=len(found))
            db.commit()
    return render_template(
        "customers.html",
        page="customers",
        kind=kind,
        kinds=SEARCH_KINDS,
        query=query,
        found=found,
        problem=problem,
        recent=recent,
    )


def _card(customer_id: int) -> dict[str, Any]:
    db = get_session()
    record = golden.golden_of(db, [customer_id]).get(customer_id, {})
    name = record.get("name", ("", ""))[0]
    return {"id": customer_id, "name": name if web.current_policy().unmasked else mask_name(name)}


@bp.get("/customers/<int:customer_id>")
@web.roles(*CUSTOMER_ROLES)
def customer(customer_id: int) -> ResponseReturnValue:
    """The 360 view's skeleton: golden record with sources, identifiers, recent receipts (masked), member visits."""
    db = get_session()
    row = find_customer(db, customer_id)
    if row is None:
        abort(404)
    summary, receipts = customer_detail(db, row)
    unmasked = web.current_policy().unmasked
    record = golden.golden_of(db, [customer_id]).get(customer_id, {})
    attributes = []
    for attribute, (value, source) in sorted(record.items()):
        shown = value
        if not unmasked and attribute == "name":
            shown = mask_name(value)
        elif not unmasked and attribute in ("phone", "email", "birthday", "address"):
            shown = mask_identifier(attribute, value) if attribute != "birthday" else value[:4] + "-**-**"
        attributes.append((attribute, shown, source))
    _audit("customers.view", f"customer:{customer_id}")
    db.commit()
    return render_template(
        "customer.html",
        page="customers",
        summary=summary,
        merged_into=row.merged_into,
        attributes=attributes,
        receipts=receipts,
        visits=beacons.customer_visits(db, customer_id),
        money=money,
    )


@bp.get("/segments")
@web.roles(ADMIN, MARKETING)
def segments() -> ResponseReturnValue:
    """Placeholder until segments are built."""
    return render_template("placeholder.html", page="segments")


@bp.get("/campaigns")
@web.roles(ADMIN, MARKETING, FINANCE)
def campaigns() -> ResponseReturnValue:
    """Placeholder until campaigns are built."""
    return render_template("placeholder.html", page="campaigns")


@bp.get("/fleet")
@web.roles(*FLEET_ROLES)
def fleet() -> ResponseReturnValue:
    """Agents with state, last seen, version and queue depth; enrollment tokens (ids and states only)."""
    devices = _devices()
    tokens = list_tokens(get_session(), clock.now())
    active = web.current()
    if active is not None and web.current_policy().store_scoped:
        tokens = [t for t in tokens if t.store_id in active.stores]
    return render_template(
        "fleet.html", page="fleet", devices=devices, tokens=tokens, now=clock.now(), queue_depth=queue_depth
    )


@bp.get("/imports")
@web.roles(ADMIN)
def imports() -> ResponseReturnValue:
    """Placeholder until imports and jobs are listed."""
    return render_template("placeholder.html", page="imports")
