"""The downlink: versioned documents central publishes to stores, signed so agents can keep them offline.

A document is (store, name, version, body). ``store`` is a store id or ``*`` for every store; a
store's own document of a name overrides the ``*`` one. Names are an open set of slots: today
``settings`` (the agent's setting overrides, ``{"sync.interval": 5, ...}``, refused unless every
one of them is a setting the agents would apply: :mod:`shared.agent_settings`), later the member-code
keys, coupons, location-consent and suppression lists. Deleting a document publishes a tombstone
(a null body) under a new version, so agents learn of deletions too.

Versions rise across the whole table (one writer at a time: SQLite's write lock, a transaction
advisory lock on PostgreSQL), so a store's combined version is simply the highest version among its
own and the ``*`` documents, and "what changed since V" is every name with a row above V. A version
becomes visible only when its transaction commits, and the next one cannot be numbered before
that, so an agent that has seen version V can never miss a lower one published later.

Each document is signed with central's Ed25519 key over (store, name, version, canonical body).
The key is derived from central's ``secret.key``, which every instance behind a load balancer
already shares for console sessions, so all instances sign alike without another secret to copy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from central import audit
from central.fleet.models import DownlinkDocument
from central.models import table
from shared import payloads
from shared.agent_settings import central_setting_problem
from shared.crypto import b64, derive_key, document_message, public_key_of, sign
from shared.wire import format_time

ALL_STORES = "*"
NAME_RE = re.compile(r"^[a-z][a-z0-9_.-]{0,63}\Z")
STORE_RE = re.compile(r"^(\*|[A-Za-z0-9_.-]{1,32})\Z")
SETTING_RE = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*\Z")
KNOWN_NAMES = ("settings", "member_codes", "member_codes_used", "coupons", "location_consent", "suppression")
MAX_DOCUMENT_CHARS = 1024 * 1024
MAX_DEPTH = 16
_LOCK_KEY = 0x63_64_70_64_6C  # "cdpdl": the advisory lock that numbers versions one at a time on PostgreSQL
_docs = table(DownlinkDocument)


class DownlinkError(ValueError):
    """A document central will not publish; ``lines`` says why, one problem each (the message joins them)."""

    def __init__(self, *lines: str) -> None:
        super().__init__("; ".join(lines))
        self.lines = lines


@dataclass(frozen=True, slots=True)
class Document:
    """The document a store runs for one name: its body (None once deleted) and version."""

    name: str
    version: int
    body: Any


@dataclass(frozen=True, slots=True)
class Published:
    """One stored row, for listings."""

    store_id: str
    name: str
    version: int
    body: Any
    updated_at: datetime
    updated_by: str

    def to_json(self) -> dict[str, Any]:
        return {
            "store_id": self.store_id,
            "name": self.name,
            "version": self.version,
            "deleted": self.body is None,
            "body": self.body,
            "updated_at": format_time(self.updated_at),
            "updated_by": self.updated_by,
        }


def signing_key(secret: bytes) -> bytes:
    """Central's Ed25519 private key for the downlink, derived from its ``secret.key``."""
    return derive_key(secret, "downlink-signing-ed25519")


def public_key(secret: bytes) -> str:
    """Central's downlink public key, base64: what agents verify documents with."""
    return b64(public_key_of(signing_key(secret)))


def check_document(store_id: str, name: str, body: Any) -> None:
    """Raise DownlinkError unless ``body`` may be published as ``name`` for ``store_id``."""
    if not STORE_RE.match(store_id):
        raise DownlinkError(f"store {store_id!r} must be '*' or 1-32 characters of A-Z, a-z, 0-9, _ . -")
    if not NAME_RE.match(name):
        raise DownlinkError(f"name {name!r} must be 1-64 characters of a-z, 0-9, _ . - starting with a letter")
    problem = payloads.measure([body], max_depth=MAX_DEPTH + 1, max_chars=MAX_DOCUMENT_CHARS)
    if problem == "payload_too_deep":
        raise DownlinkError(f"the document nests deeper than {MAX_DEPTH} levels")
    if problem is not None:
        raise DownlinkError(f"the document is larger than {MAX_DOCUMENT_CHARS} bytes of JSON")
    if name == "settings":
        if not isinstance(body, dict):
            raise DownlinkError('settings must be an object of setting names and values, e.g. {"sync.interval": 5}')
        problems = []
        for key, value in body.items():
            if not SETTING_RE.match(key):
                problems.append(f"settings: {key!r} is not a setting name such as 'sync.interval'")
            elif isinstance(value, dict | list) or value is None:
                problems.append(f"settings: {key} must be a string, number or true/false")
            elif problem := central_setting_problem(key, value):
                # The agents would ignore it, and say so only in their own logs: refused here, where HQ sees it.
                problems.append(f"settings: {key}: {problem}")
        if problems:
            raise DownlinkError(*problems)


def current_version(db: Session, store_id: str) -> int | None:
    """The store's combined version: the highest of its own and the ``*`` documents; None if none."""
    version: int | None = db.scalar(
        select(func.max(_docs.c.version)).where(_docs.c.store_id.in_((store_id, ALL_STORES)))
    )
    return version


def _next_version(db: Session) -> int:
    if db.get_bind().dialect.name == "postgresql":
        db.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    return int(db.scalar(select(func.coalesce(func.max(_docs.c.version), 0))) or 0) + 1


def publish(db: Session, store_id: str, name: str, body: Any, *, now: datetime, actor: str) -> int:
    """Publish (or, with ``body`` None, delete) a document; return its version. The caller commits."""
    if body is not None:
        check_document(store_id, name, body)
    elif not STORE_RE.match(store_id) or not NAME_RE.match(name):
        raise DownlinkError(f"no document {name!r} for store {store_id!r}")
    version = _next_version(db)
    existing = db.scalar(select(_docs.c.id).where(_docs.c.store_id == store_id, _docs.c.name == name))
    values = {"version": version, "body": body, "updated_at": now, "updated_by": actor[:128]}
    if existing is None:
        if body is None:
            raise DownlinkError(f"no document {name!r} for store {store_id!r}")
        db.execute(_docs.insert().values(store_id=store_id, name=name, **values))
    else:
        db.execute(_docs.update().where(_docs.c.id == existing).values(**values))
    audit.record(
        db,
        at=now,
        actor=actor,
        action="downlink.delete" if body is None else "downlink.publish",
        subject=f"{store_id}/{name}",
        detail={"version": version},
    )
    return version


def listing(db: Session, store_id: str | None = None) -> list[Published]:
    """Every stored document (tombstones included), or those that apply to one store."""
    query = select(_docs).order_by(_docs.c.store_id, _docs.c.name)
    if store_id is not None:
        query = query.where(_docs.c.store_id.in_((store_id, ALL_STORES)))
    return [Published(r.store_id, r.name, r.version, r.body, r.updated_at, r.updated_by) for r in db.execute(query)]


def changes(db: Session, store_id: str, since: int) -> list[Document]:
    """For every name changed after version ``since``: what the store runs now, at the newest version."""
    stores = (store_id, ALL_STORES)
    changed = select(_docs.c.name).where(_docs.c.store_id.in_(stores), _docs.c.version > since)
    rows = db.execute(
        select(_docs.c.store_id, _docs.c.name, _docs.c.version, _docs.c.body)
        .where(_docs.c.store_id.in_(stores), _docs.c.name.in_(changed))
        .order_by(_docs.c.name)
    ).all()
    by_name: dict[str, list[Any]] = {}
    for row in rows:
        by_name.setdefault(row.name, []).append(row)
    out = []
    for name, versions in by_name.items():
        own = next((r for r in versions if r.store_id == store_id and r.body is not None), None)
        common = next((r for r in versions if r.store_id == ALL_STORES and r.body is not None), None)
        effective = own or common
        out.append(Document(name, max(r.version for r in versions), None if effective is None else effective.body))
    return out


def signed_changes(db: Session, store_id: str, since: int, secret: bytes) -> dict[str, Any]:
    """The answer to an agent's ``GET /api/v1/downlink?since=V``: changed documents, each signed."""
    key = signing_key(secret)
    documents = [
        {
            "name": d.name,
            "version": d.version,
            "body": d.body,
            "signature": b64(sign(key, document_message(store_id, d.name, d.version, d.body))),
        }
        for d in changes(db, store_id, since)
    ]
    return {
        "store_id": store_id,
        "version": current_version(db, store_id) or 0,
        "since": since,
        "documents": documents,
        "key": b64(public_key_of(key)),
    }
