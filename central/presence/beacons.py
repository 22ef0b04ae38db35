"""Member beacons at central: the ``member_beacons`` document for consenting members, and member visits at ingest.

Central derives each certified member key's beacon root from ``secret.key`` (the app receives it
with its certificate) and publishes to every store only day keys, only for the members whose
location consent holds now, for yesterday, today and tomorrow (UTC). The document is published
again whenever location consent is recorded, a member key is certified or revoked, and by the
hourly ``member_beacons`` job (the days move on). See docs/decisions/0049-member-beacon.md.

A ``presence.visit`` naming a member is attached to that member's customer only if the member id
is already a known identifier and ``may_locate`` allows it when the batch is stored; otherwise the
member id is removed from the stored payload and the visit stays anonymous. Nothing here creates
an identifier or a customer, or links one to another.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from flask import current_app, has_app_context
from sqlalchemy import select
from sqlalchemy.orm import Session

from central.customers import consent_gate
from central.fleet import downlink
from central.identity.models import Customer, Identifier
from central.identity.registry import Registry, default_registry
from central.members.models import MemberKey
from central.models import table
from central.presence.models import PresenceVisit
from shared import member_beacon
from shared.crypto import b64, derive_key
from shared.wire import format_time

DOCUMENT = "member_beacons"
LOCATION = "location"
DAYS_BEFORE, DAYS_AFTER = 1, 1  # day keys published around today (UTC): a phone's clock may be off
_keys = table(MemberKey)
_identifiers = table(Identifier)
_customers = table(Customer)
_visits = table(PresenceVisit)


def beacon_root(secret: bytes, key_fingerprint: str) -> bytes:
    """The beacon root of one certified member key: what the member app derives its rotating ids from."""
    base = derive_key(secret, "member-beacon-root")
    return hmac.new(base, key_fingerprint.encode("ascii"), hashlib.sha256).digest()


def _member_customers(db: Session, members: Iterable[str], registry: Registry) -> dict[str, int]:
    """Live customer of each member id already known as a ``member_id`` identifier (never creates one)."""
    normalized = {m: v for m in set(members) if (v := registry.normalize("member_id", m)) is not None}
    if not normalized:
        return {}
    owners = dict(
        db.execute(
            select(_identifiers.c.value, _identifiers.c.customer_id).where(
                _identifiers.c.kind == "member_id",
                _identifiers.c.value.in_(sorted(set(normalized.values()))),
                _identifiers.c.customer_id.is_not(None),
            )
        ).all()
    )
    ids = sorted({int(c) for c in owners.values()})
    survivors = dict(
        db.execute(select(_customers.c.id, _customers.c.merged_into).where(_customers.c.id.in_(ids))).all()
    )
    out: dict[str, int] = {}
    for member, value in normalized.items():
        owner = owners.get(value)
        if owner is not None:
            out[member] = int(survivors.get(owner) or owner)
    return out


def consenting_keys(db: Session, now: datetime, registry: Registry | None = None) -> list[tuple[str, str]]:
    """``(member id, key fingerprint)`` of every member key in force whose member's location consent holds."""
    keys = db.execute(
        select(_keys.c.member_id, _keys.c.fingerprint)
        .where(_keys.c.revoked_at.is_(None), _keys.c.valid_until > now, _keys.c.valid_from <= now)
        .order_by(_keys.c.member_id, _keys.c.fingerprint)
    ).all()
    customers = _member_customers(db, [k.member_id for k in keys], registry or default_registry())
    if not customers:
        return []
    among = sorted(set(customers.values()))
    allowed = set(db.scalars(consent_gate.consented(LOCATION, None, consent_gate.earliest_today(now), among=among)))
    return [(k.member_id, k.fingerprint) for k in keys if customers.get(k.member_id) in allowed]


def document(db: Session, secret: bytes, now: datetime, registry: Registry | None = None) -> dict[str, Any]:
    """The ``member_beacons`` body: day keys of consenting members' keys, and the rotation rules."""
    today = member_beacon.day_of(now.timestamp())
    keys = consenting_keys(db, now, registry)
    roots = [(member, beacon_root(secret, fp)) for member, fp in keys]
    days = {
        str(day): [[member, b64(member_beacon.day_key(root, day))] for member, root in roots]
        for day in range(today - DAYS_BEFORE, today + DAYS_AFTER + 1)
    }
    return {
        "window_seconds": member_beacon.WINDOW_SECONDS,
        "skew_windows": member_beacon.SKEW_WINDOWS,
        "days": days if roots else {},
    }


def publish(db: Session, secret: bytes, *, now: datetime, actor: str) -> int | None:
    """Publish ``member_beacons`` to every store if it changed; its new version, or None. The caller commits."""
    body = document(db, secret, now)
    current = {d.name: d.body for d in downlink.changes(db, downlink.ALL_STORES, 0)}.get(DOCUMENT)
    if current == body:
        return None
    return downlink.publish(db, downlink.ALL_STORES, DOCUMENT, body, now=now, actor=actor)


def after_consent(db: Session, purposes: Iterable[str], *, now: datetime, actor: str) -> None:
    """Publish again when location consent was recorded (inside a request: the secret is the app's)."""
    if LOCATION in set(purposes) and has_app_context():
        publish(db, current_app.config["SECRET_KEY"], now=now, actor=actor)


def member_visit_customers(
    db: Session, visits: Sequence[tuple[str, dict[str, Any]]], *, now: datetime, registry: Registry | None = None
) -> dict[str, int]:
    """For ``(event id, payload)`` visits naming a member: the customer each may be attached to.

    Payloads of visits that may not be attached (unknown member, consent not holding now) lose
    their ``member_id`` before they are stored.
    """
    named = [(event_id, p) for event_id, p in visits if isinstance(p.get("member_id"), str)]
    if not named:
        return {}
    customers = _member_customers(db, [p["member_id"] for _, p in named], registry or default_registry())
    today = consent_gate.earliest_today(now)
    allowed = {cid for cid in set(customers.values()) if consent_gate.may_locate(db, cid, today)}
    out: dict[str, int] = {}
    for event_id, payload in named:
        cid = customers.get(payload["member_id"])
        if cid in allowed and cid is not None:
            out[event_id] = cid
        else:
            del payload["member_id"]
    return out


def customer_visits(db: Session, customer_id: int, limit: int = 20) -> list[dict[str, Any]]:
    """A live customer's member visits (their own and those of customers merged into them), newest first."""
    tree = [customer_id, *db.scalars(select(_customers.c.id).where(_customers.c.merged_into == customer_id))]
    rows = db.execute(
        select(_visits.c.store_id, _visits.c.medium, _visits.c.started_at, _visits.c.ended_at, _visits.c.dwell_s)
        .where(_visits.c.customer_id.in_(tree))
        .order_by(_visits.c.started_at.desc(), _visits.c.id.desc())
        .limit(limit)
    ).all()
    return [
        {
            "store_id": r.store_id,
            "medium": r.medium,
            "started_at": format_time(r.started_at),
            "ended_at": format_time(r.ended_at),
            "dwell_s": r.dwell_s,
        }
        for r in rows
    ]
