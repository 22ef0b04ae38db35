"""Member-code keys: central's certifying key, member key certificates, and the ``member_codes`` document.

Central's certifying key is derived from ``secret.key`` (like the downlink key, so every instance
certifies alike) and never leaves central. Stores receive only its public half, the fingerprints of
revoked member keys and the step rules, as the downlink document ``member_codes`` for every store.
A member key is the app's: central stores its public half and certifies it for
``members.certificate_days``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from central import audit
from central.fleet import downlink
from central.members.models import MemberKey
from central.models import table
from central.presence import beacons
from shared.crypto import b64, derive_key, public_key_of
from shared.masking import mask_identifier
from shared.member_code import (
    MAX_MEMBER_ID,
    SKEW_STEPS,
    STEP_SECONDS,
    UNVERIFIED,
    Certificate,
    check,
    fingerprint,
    issue_certificate,
    key_id,
)

KEYS_DOCUMENT = "member_codes"
USED_DOCUMENT = "member_codes_used"
_keys = table(MemberKey)


class MemberCodeError(ValueError):
    """A request central will not carry out; the message says why."""


@dataclass(frozen=True, slots=True)
class CentralKey:
    """Central's certifying key pair (raw Ed25519)."""

    private: bytes
    public: bytes


def certifying_key(secret: bytes) -> CentralKey:
    """Central's member-code certifying key, derived from its ``secret.key``."""
    private = derive_key(secret, "member-code-certifying-ed25519")
    return CentralKey(private, public_key_of(private))


def certify(
    db: Session, secret: bytes, member_id: str, public_key: bytes, *, now: datetime, days: float, actor: str
) -> Certificate:
    """Record a member's app key and return central's certificate for it. The caller commits."""
    if not 1 <= len(member_id.encode("utf-8")) <= MAX_MEMBER_ID or member_id.strip() != member_id:
        raise MemberCodeError(f"member id {member_id!r} must be 1-{MAX_MEMBER_ID} bytes without surrounding spaces")
    if len(public_key) != 32:
        raise MemberCodeError("a member key is a 32-byte Ed25519 public key")
    key = certifying_key(secret)
    until = now + timedelta(days=days)
    cert = issue_certificate(
        key.private, key.public, member_id, public_key, int(now.timestamp()), int(until.timestamp())
    )
    db.execute(
        _keys.insert().values(
            member_id=member_id,
            fingerprint=fingerprint(public_key),
            public_key=b64(public_key),
            valid_from=now,
            valid_until=until,
            created_at=now,
        )
    )
    audit.record(
        db,
        at=now,
        actor=actor,
        action="member_key.certify",
        subject=mask_identifier("member_id", member_id),
        detail={"days": days},
    )
    publish_keys(db, secret, now=now, actor=actor)
    beacons.publish(db, secret, now=now, actor=actor)
    return cert


def revoke(db: Session, secret: bytes, member_id: str, *, now: datetime, actor: str) -> int:
    """Revoke every key of a member and publish the new list; the number of keys revoked. The caller commits."""
    result: CursorResult[Any] = db.execute(  # type: ignore[assignment]
        update(_keys).where(_keys.c.member_id == member_id, _keys.c.revoked_at.is_(None)).values(revoked_at=now)
    )
    audit.record(
        db, at=now, actor=actor, action="member_key.revoke", subject=mask_identifier("member_id", member_id), detail={}
    )
    publish_keys(db, secret, now=now, actor=actor)
    beacons.publish(db, secret, now=now, actor=actor)
    return int(result.rowcount or 0)


def keys_document(db: Session, secret: bytes) -> dict[str, Any]:
    """What every store needs to verify member codes: public keys, revoked fingerprints, step rules."""
    revoked = db.scalars(
        select(_keys.c.fingerprint).where(_keys.c.revoked_at.is_not(None)).order_by(_keys.c.fingerprint)
    ).all()
    return {
        "keys": [b64(certifying_key(secret).public)],
        "revoked": list(revoked),
        "step_seconds": STEP_SECONDS,
        "skew_steps": SKEW_STEPS,
    }


def publish_keys(db: Session, secret: bytes, *, now: datetime, actor: str) -> int | None:
    """Publish ``member_codes`` to every store if it changed; its new version, or None if unchanged."""
    body = keys_document(db, secret)
    current = {d.name: d.body for d in downlink.changes(db, downlink.ALL_STORES, 0)}.get(KEYS_DOCUMENT)
    if current == body:
        return None
    return downlink.publish(db, downlink.ALL_STORES, KEYS_DOCUMENT, body, now=now, actor=actor)


def settle_unverified(payload: dict[str, Any], observed_at: datetime, secret: bytes) -> dict[str, Any]:
    """A ``scan.member`` payload as central stores it: a code the store kept unverified, checked here.

    A store that had no keys yet sends the code itself (``proof``). Central checks it with its own
    key at the time the till saw it, and stores its own verdict (``accepted`` or the refusal) with
    the code's digest, member, step and key, never the code. A proof that is not the code the store
    named by digest is refused as forged. Any other payload only loses a stray ``proof``.
    """
    proof = payload.get("proof")
    kept = {k: v for k, v in payload.items() if k != "proof"}
    if payload.get("result") != UNVERIFIED or not isinstance(proof, str):
        return kept
    central = certifying_key(secret).public
    verdict = check(proof, {key_id(central): central}, now=observed_at.timestamp())
    if verdict.digest is None or f"digest:{verdict.digest}" != payload.get("code"):
        return {**kept, "result": "forged", "detail": "checked by central: the code is not the one the store named"}
    checked = {
        **kept,
        "result": verdict.reason or "accepted",
        "detail": f"checked by central: {verdict.detail}"[:256],
        "code": f"digest:{verdict.digest}",
    }
    if verdict.member_id is not None:
        checked["member_id"] = verdict.member_id[:MAX_MEMBER_ID]
    if verdict.step is not None:
        checked["step"] = verdict.step
    if verdict.fingerprint is not None:
        checked["key"] = verdict.fingerprint
    return checked
