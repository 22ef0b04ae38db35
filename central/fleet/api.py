"""Fleet JSON API: enrollment, the fleet view, device keys and states, and the downlink.

Agents (signed requests):

* ``POST /api/v1/enroll`` with ``{"token", "public_key", "hostname", "agent_version"}`` answers 201
  ``{"device_id": "dev_0123456789abcdef", "store_id": "S001", "central_key": "<base64>"}``;
  ``central_key`` is the Ed25519 key the agent verifies downlink documents with.
* ``POST /api/v1/devices/rotate-key`` with ``{"public_key": "<new key>"}``, signed by the current
  key, and ``X-CDP-New-Key-Proof``: the new key's signature of
  :func:`shared.crypto.key_rotation_message`.
* ``GET /api/v1/downlink?since=V``: the store's documents changed after version V, each signed.

HQ (console login; writes take JSON bodies only, which browsers cannot send cross-site):

* ``GET /api/v1/devices[?state=offline]``: every device with its fleet state, last contact,
  version and health; ``POST /api/v1/devices/<id>/revoke`` and ``/retire`` with ``{"reason"}``.
* ``GET /api/v1/downlink/documents[?store=S001]``; ``PUT`` and ``DELETE``
  ``/api/v1/downlink/documents/<store or *>/<name>`` (PUT's body is the document).
"""

from __future__ import annotations

from typing import Any

import orjson
from flask import Blueprint, Response, current_app, jsonify, request
from sqlalchemy import insert, select, update

from central import audit, clock
from central.auth import actor_name, authenticate_device, login_required
from central.bodies import json_document, read_body
from central.config import CentralConfig
from central.db import READ_ONLY, get_session, rows_changed
from central.errors import ApiError
from central.fleet import downlink
from central.fleet.devices import STATES, DeviceError, list_devices, rotate_key, set_status
from central.fleet.enrollment import MAX_BODY, new_device_id
from central.fleet.models import Device, EnrollToken
from shared.crypto import HEADER_NEW_KEY_PROOF, key_rotation_message, token_digest, unb64, verify

bp = Blueprint("fleet", __name__)

MAX_DOCUMENT_BODY = 2 * downlink.MAX_DOCUMENT_CHARS


def _rejected() -> ApiError:
    return ApiError(401, "enroll_rejected", "enrollment token is invalid, expired or already used")


def _config() -> CentralConfig:
    config: CentralConfig = current_app.config["CENTRAL"]
    return config


def _json_body(limit: int) -> Any:
    try:
        return orjson.loads(read_body(limit, "the request body"))
    except ValueError:
        raise ApiError(400, "invalid_request", "the body must be JSON") from None


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
    doc = _json_body(MAX_BODY)
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
                EnrollToken.revoked_at.is_(None),
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
    central_key = downlink.public_key(current_app.config["SECRET_KEY"])
    return jsonify({"device_id": device_id, "store_id": store_id, "central_key": central_key}), 201


@bp.post("/api/v1/devices/rotate-key")
def rotate_device_key() -> Response:
    """Replace the calling device's public key: signed by the current key, with proof of the new one."""
    body = read_body(MAX_BODY)
    db = get_session()
    device = authenticate_device(db, body)
    try:
        doc = orjson.loads(body)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise ApiError(400, "invalid_request", "the body must be a JSON object")
    new_key = _public_key(_text(doc, "public_key", 64, required=True))
    try:
        proof = unb64(request.headers.get(HEADER_NEW_KEY_PROOF, ""))
    except ValueError:
        proof = b""
    message = key_rotation_message(device.device_id, new_key, device.timestamp, device.nonce)
    if not verify(unb64(new_key), message, proof):
        raise ApiError(401, "unauthorized", "authentication failed")
    now = clock.now()
    try:
        changed = rotate_key(db, device.device_id, new_key, now=now)
    except DeviceError:
        raise ApiError(401, "unauthorized", "authentication failed") from None
    db.commit()
    return jsonify({"device_id": device.device_id, "public_key": new_key, "changed": changed})


@bp.get("/api/v1/downlink")
def fetch_downlink() -> Response:
    """The calling device's store documents changed after ``since``, signed by central."""
    db = get_session()
    device = authenticate_device(db, b"")
    since_text = request.args.get("since", "0")
    if not since_text.isdigit() or len(since_text) > 16:
        raise ApiError(400, "invalid_request", "since must be a version number (0 for everything)")
    db.connection(execution_options=READ_ONLY)
    answer = downlink.signed_changes(db, device.store_id, int(since_text), current_app.config["SECRET_KEY"])
    db.rollback()
    return jsonify(answer)


@bp.get("/api/v1/devices")
@login_required
def devices() -> Response:
    """Every enrolled device with its fleet state, last contact, version and health."""
    state = request.args.get("state")
    if state is not None and state not in STATES:
        raise ApiError(400, "invalid_request", f"state must be one of {', '.join(STATES)}")
    db = get_session()
    now = clock.now()
    rows = list_devices(db, now, _config().fleet_offline_after, state=state)
    counts = {s: 0 for s in STATES}
    for row in list_devices(db, now, _config().fleet_offline_after):
        counts[row.state] += 1
    audit.record(db, at=now, actor=actor_name(), action="devices.list", detail={"via": "api"})
    db.commit()
    return jsonify({"devices": [d.to_json() for d in rows], "counts": counts})


def _change_status(device_id: str, status: str) -> Response:
    doc = json_document(MAX_BODY)
    reason = _text(doc if isinstance(doc, dict) else {}, "reason", 255, required=False)
    db = get_session()
    try:
        previous = set_status(db, device_id, status, reason=reason, now=clock.now(), actor=actor_name())
    except DeviceError as exc:
        raise ApiError(404 if "no device" in str(exc) else 409, "invalid_state", str(exc)) from None
    db.commit()
    return jsonify({"device_id": device_id, "previous": previous, "status": status})


@bp.post("/api/v1/devices/<device_id>/revoke")
@login_required
def revoke(device_id: str) -> Response:
    """Refuse the device from its next request on, on every instance."""
    return _change_status(device_id, "revoked")


@bp.post("/api/v1/devices/<device_id>/retire")
@login_required
def retire(device_id: str) -> Response:
    """Take the device out of service (it is refused like a revoked one, and shown as retired)."""
    return _change_status(device_id, "retired")


@bp.get("/api/v1/downlink/documents")
@login_required
def list_documents() -> Response:
    """Every published document, or those that apply to ``?store=S001``."""
    db = get_session()
    rows = downlink.listing(db, request.args.get("store"))
    return jsonify({"documents": [r.to_json() for r in rows]})


@bp.put("/api/v1/downlink/documents/<store_id>/<name>")
@login_required
def put_document(store_id: str, name: str) -> Response:
    """Publish a document for one store (or ``*``); agents fetch it after their next batch."""
    body = json_document(MAX_DOCUMENT_BODY)
    return _publish(store_id, name, body)


@bp.delete("/api/v1/downlink/documents/<store_id>/<name>")
@login_required
def delete_document(store_id: str, name: str) -> Response:
    """Withdraw a document; agents drop it (or fall back to the ``*`` one) on their next fetch."""
    return _publish(store_id, name, None)


def _publish(store_id: str, name: str, body: Any) -> Response:
    db = get_session()
    try:
        version = downlink.publish(db, store_id, name, body, now=clock.now(), actor=actor_name())
    except downlink.DownlinkError as exc:
        raise ApiError(400, "invalid_document", str(exc)) from None
    db.commit()
    return jsonify({"store_id": store_id, "name": name, "version": version, "deleted": body is None})
