"""The coupons JSON API (console users): campaigns, codes, revocation, and the conflicts to review.

* ``POST /api/v1/coupons/campaigns`` ``{"name", "value": "10.00", "valid_from", "valid_to",
  "max_redemptions", "offline_budget", "stores": ["S001"] | null}`` (times ISO 8601 with an offset)
* ``GET /api/v1/coupons/campaigns``; ``GET /api/v1/coupons/campaigns/<id or name>`` (admin and finance;
  with ``revoked``, ``outstanding``, ``outstanding_value`` and ``expired_unredeemed``, see
  :mod:`central.campaigns.liability`); everything else admin only
* ``POST /api/v1/coupons/campaigns/<id or name>/codes`` ``{"member_id": "M1"}`` (a member's claim:
  the same code each time), ``{"member_ids": ["M1", "M2"]}`` (up to 1,000 members' claims in one
  request, answered in the order named: a member app's backend handing a campaign out) or
  ``{"count": 100}`` (anonymous codes)
* ``POST /api/v1/coupons/codes/<serial>/revoke``
* ``GET /api/v1/coupons/conflicts[?all=1&kind=double_redemption&limit=100]``;
  ``POST /api/v1/coupons/conflicts/<id>/resolve`` ``{"resolution": "..."}``
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from central import clock
from central.accounts import web
from central.accounts.roles import ADMIN, FINANCE
from central.auth import actor_name, login_required
from central.bodies import json_object
from central.campaigns import coupon_conflicts, coupons, liability
from central.db import get_session
from central.errors import ApiError

bp = Blueprint("coupons", __name__)
MAX_BODY = 64 * 1024


def _time(doc: dict[str, Any], key: str) -> datetime:
    try:
        return coupons.parse_time(key, str(doc.get(key, "")))
    except coupons.CouponError as exc:
        raise ApiError(400, "invalid_request", str(exc), details=_why(exc)) from None


def _int(doc: dict[str, Any], key: str, default: int | None = None) -> int:
    value = doc.get(key, default)
    if type(value) is float and value.is_integer() and abs(value) >= 2**63:
        # A whole number past 64 bits, which the JSON parser reads as a float: out of every range the
        # campaign checks, which then says which one.
        return int(value)
    if type(value) is not int:
        raise ApiError(400, "invalid_request", f"{key} must be an integer")
    return value


def _members(doc: dict[str, Any]) -> list[str]:
    members = doc["member_ids"]
    if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
        raise ApiError(400, "invalid_request", "member_ids must be a list of member ids")
    return members


def _why(exc: coupons.CouponError) -> dict[str, str | None]:
    return {"reason": exc.reason, "field": exc.field}


def _refused(exc: coupons.CouponError) -> ApiError:
    return ApiError(404 if isinstance(exc, coupons.NotFound) else 400, "coupon_refused", str(exc), details=_why(exc))


@bp.post("/api/v1/coupons/campaigns")
@login_required
def create() -> tuple[Response, int]:
    """Create a campaign; the coupons document reaches the stores at their next sync."""
    doc = json_object(MAX_BODY)
    stores = doc.get("stores")
    if stores is not None and (not isinstance(stores, list) or not all(isinstance(s, str) for s in stores)):
        raise ApiError(400, "invalid_request", "stores must be a list of store ids or null")
    db = get_session()
    try:
        campaign = coupons.create_campaign(
            db,
            name=str(doc.get("name", "")),
            value=coupons.parse_value(str(doc.get("value", ""))),
            valid_from=_time(doc, "valid_from"),
            valid_to=_time(doc, "valid_to"),
            max_redemptions=_int(doc, "max_redemptions"),
            offline_budget=_int(doc, "offline_budget"),
            stores=stores,
            now=clock.now(),
            actor=actor_name(),
            secret=current_app.config["SECRET_KEY"],
        )
    except coupons.CouponError as exc:
        raise _refused(exc) from None
    db.commit()
    return jsonify(campaign.to_json()), 201


def _with_liability(campaigns: list[coupons.Campaign]) -> list[dict[str, Any]]:
    """Each campaign's answer with what its codes still owe (central.campaigns.liability) as of now."""
    db = get_session()
    owed = {row.campaign_id: row for row in liability.liabilities(db, clock.now())}
    return [{**c.to_json(), **owed[c.id].to_json()} if c.id in owed else c.to_json() for c in campaigns]


# Finance reads campaigns and what they owe for the monthly close; issuing and revoking stay as they were.
@bp.get("/api/v1/coupons/campaigns")
@web.roles(ADMIN, FINANCE)
def listing() -> Response:
    """Every campaign with its issued and redeemed counts and its outstanding codes and their value."""
    return jsonify({"campaigns": _with_liability(coupons.list_campaigns(get_session()))})


@bp.get("/api/v1/coupons/campaigns/<ref>")
@web.roles(ADMIN, FINANCE)
def show(ref: str) -> Response:
    """One campaign, with its outstanding codes and their value."""
    try:
        return jsonify(_with_liability([coupons.get_campaign(get_session(), ref)])[0])
    except coupons.CouponError as exc:
        raise _refused(exc) from None


@bp.post("/api/v1/coupons/campaigns/<ref>/codes")
@login_required
def issue(ref: str) -> tuple[Response, int]:
    """A member's claim (``member_id``), many members' claims (``member_ids``) or ``count`` anonymous codes."""
    doc = json_object(MAX_BODY)
    db = get_session()
    secret = current_app.config["SECRET_KEY"]
    try:
        if "member_id" in doc:
            issued = [
                coupons.issue_for_member(
                    db, ref, str(doc["member_id"]), now=clock.now(), actor=actor_name(), secret=secret
                )
            ]
        elif "member_ids" in doc:
            issued = coupons.issue_for_members(
                db, ref, _members(doc), now=clock.now(), actor=actor_name(), secret=secret
            )
        else:
            count = _int(doc, "count")
            issued = coupons.issue_anonymous(db, ref, count, now=clock.now(), actor=actor_name(), secret=secret)
    except coupons.CouponError as exc:
        raise _refused(exc) from None
    db.commit()
    return jsonify({"codes": [i.to_json() for i in issued]}), 201


@bp.post("/api/v1/coupons/codes/<int:serial>/revoke")
@login_required
def revoke(serial: int) -> Response:
    """Revoke one code; tills refuse it once they fetch the new coupons document."""
    db = get_session()
    try:
        coupons.revoke(db, serial, now=clock.now(), actor=actor_name(), secret=current_app.config["SECRET_KEY"])
    except coupons.CouponError as exc:
        raise _refused(exc) from None
    db.commit()
    return jsonify({"serial": serial, "revoked": True})


@bp.get("/api/v1/coupons/conflicts")
@login_required
def conflicts() -> Response:
    """Redemptions flagged for review, newest first (open ones unless ``all=1``)."""
    limit = request.args.get("limit", "100")
    if not limit.isdigit() or not 1 <= int(limit) <= 1000:
        raise ApiError(400, "invalid_request", "limit must be 1 to 1000")
    rows = coupon_conflicts.list_conflicts(
        get_session(), open_only=request.args.get("all") != "1", kind=request.args.get("kind"), limit=int(limit)
    )
    return jsonify({"conflicts": [coupon_conflicts.conflict_json(r) for r in rows]})


@bp.post("/api/v1/coupons/conflicts/<int:conflict_id>/resolve")
@login_required
def resolve(conflict_id: int) -> Response:
    """Close a conflict with what was decided."""
    doc = json_object(MAX_BODY)
    db = get_session()
    try:
        resolution = str(doc.get("resolution", ""))
        coupon_conflicts.resolve_conflict(db, conflict_id, resolution, now=clock.now(), actor=actor_name())
    except coupons.CouponError as exc:
        raise _refused(exc) from None
    db.commit()
    return jsonify({"id": conflict_id, "resolved": True})
