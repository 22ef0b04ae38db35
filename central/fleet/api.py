"""Fleet JSON API: agents enroll with a one-time token; HQ lists the enrolled devices.

``POST /api/v1/enroll`` with::

    {"token": "…", "public_key": "<base64 of the raw 32-byte Ed25519 key>",
     "hostname": "store-001-pc", "agent_version": "0.1.0"}

answers 201 ``{"device_id": "dev_0123456789abcdef", "store_id": "S001"}``.
``GET /api/v1/devices`` (console login) lists every device with its last contact and heartbeat.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, jsonify
from sqlalchemy import insert, select, update

from central import audit, clock
from central.auth import actor_name, login_required
from central.db import get_session, rows_changed
from central.errors import ApiError
from central.fleet.devices import list_devices
from central.fleet.enrollment import MAX_BODY, new_device_id
from central.fleet.models import Device, EnrollToken
from central.ingest.api import read_body
from shared.crypto import token_digest, unb64

bp = Blueprint("fleet", __name__)


def _rejected() -> ApiError:
    return ApiError(401, "enroll_rejected", "enrollment token is invalid, expired or already used")


def _text(doc: dict[str, Any], key: str, limit: int, *, required: bool) -> str:
    value = doc.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value) or len(value) > limit or "\x00" in value:
        raise ApiError(400, "invalid_request", f"{key} must be a string of at most {limit} characters")
    return value


def _public_key(text: str) -> str:
    try:
        raw = unb64(text)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise ApiError(400, "invalid_request", "public_key must be the base64 of a raw 32-byte Ed25519 key")
    return text


@bp.post("/api/v1/enroll")
def enroll() -> tuple[Response, int]:
    """Turn a valid token and a public key into an enrolled device."""
    try:
        doc = json.loads(read_body(MAX_BODY))
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise ApiError(400, "invalid_request", "the body must be a JSON object")
    token = _text(doc, "token", 256, required=True)
    public_key = _public_key(_text(doc, "public_key", 64, required=True))
    hostname = _text(doc, "hostname", 255, required=False)
    agent_version = _text(doc, "agent_version", 64, required=False)

    db = get_session()
    now = clock.now()
    digest = token_digest(token)
    store_id = db.scalar(select(EnrollToken.store_id).where(EnrollToken.token_digest == digest))
    if store_id is None:
        raise _rejected()
    device_id = new_device_id()
    db.execute(
        insert(Device).values(
            device_id=device_id,
            store_id=store_id,
            public_key=public_key,
            hostname=hostname,
            agent_version=agent_version,
            status="active",
            enrolled_at=now,
        )
    )
    # The conditional UPDATE is what makes the token single-use: of two concurrent enrollments with
    # the same token only one sees used_at still NULL; the other rolls back its device.
    claimed = rows_changed(
        db.execute(
            update(EnrollToken)
            .where(
                EnrollToken.token_digest == digest,
                EnrollToken.used_at.is_(None),
                EnrollToken.expires_at > now,
            )
            .values(used_at=now, device_id=device_id)
        )
    )
    if claimed != 1:
        db.rollback()
        raise _rejected()
    audit.record(
        db,
        at=now,
        actor=f"device:{device_id}",
        action="device.enroll",
        subject=device_id,
        detail={"store_id": store_id, "hostname": hostname, "agent_version": agent_version},
    )
    db.commit()
    return jsonify({"device_id": device_id, "store_id": store_id}), 201


@bp.get("/api/v1/devices")
@login_required
def devices() -> Response:
    """Every enrolled device with its last contact and heartbeat."""
    db = get_session()
    rows = list_devices(db)
    audit.record(db, at=clock.now(), actor=actor_name(), action="devices.list", detail={"via": "api"})
    db.commit()
    return jsonify({"devices": [d.to_json() for d in rows]})
