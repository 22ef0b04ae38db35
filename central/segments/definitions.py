"""Saving segments: a checked rule, a version that moves only when its meaning does, a channel, a webhook.

The rule is parsed against :data:`central.segments.fields.SCHEMA` and versioned with
:class:`central.customers.rules.RuleDefinition`, the same path custom tags take, so a refused
rule carries the reason code and the line and column of its first problem.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from central.customers.consent import CHANNELS
from central.customers.rules import RuleDefinition, RuleError, Schema
from central.models import table
from central.segments.fields import SCHEMA
from central.segments.models import Segment

PURPOSE = "marketing"
MIN_SECRET = 16
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}\Z")
_segments = table(Segment)


class SegmentError(ValueError):
    """A segment that cannot be saved as asked; ``reason`` is a stable code, ``rule_error`` the rule's own."""

    def __init__(self, reason: str, message: str, rule_error: RuleError | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.rule_error = rule_error

    def to_json(self) -> dict[str, Any]:
        """The error as the API returns it, with the rule's position when the rule was at fault."""
        detail = self.rule_error.detail if self.rule_error else str(self)
        out: dict[str, Any] = {"reason": self.reason, "message": str(self), "detail": detail}
        position = self.rule_error.position if self.rule_error else None
        if position is not None:
            out["position"] = {"line": position.line, "column": position.column, "offset": position.offset}
        return out


@dataclass(frozen=True)
class Draft:
    """What a user asks to save: name, rule text, channel, and optionally a description and webhook."""

    name: str
    rule: str
    channel: str
    description: str = ""
    webhook_url: str | None = None
    webhook_secret: str | None = None


def check_rule(source: str, schema: Schema = SCHEMA) -> RuleDefinition:
    """The rule as a versioned definition; raises :class:`SegmentError` with the rule's position and reason.

    ``schema``: what the rule's author may read (:func:`central.segments.fields.schema_for` their role).
    """
    try:
        return RuleDefinition.create("segment", source, schema)
    except RuleError as exc:
        raise SegmentError(f"rule_{exc.reason}", str(exc), exc) from None


def check_channel(channel: str) -> str:
    """``channel`` if marketing may use it (sms, wechat, app_push, email)."""
    if channel not in CHANNELS:
        raise SegmentError("bad_channel", f"channel {channel!r}: one of {', '.join(CHANNELS)}")
    return channel


def _check_webhook(url: str | None, secret: str | None) -> tuple[str | None, str | None]:
    if not url:
        return None, None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or len(url) > 2048:
        raise SegmentError("bad_webhook", "webhook_url: an http:// or https:// address of at most 2048 characters")
    if not secret or len(secret) < MIN_SECRET or len(secret) > 256:
        raise SegmentError(
            "bad_webhook", f"webhook_secret: {MIN_SECRET}-256 characters, shared with the receiver to check signatures"
        )
    return url, secret


def _checked(draft: Draft, schema: Schema) -> tuple[RuleDefinition, tuple[str | None, str | None]]:
    if not _NAME.match(draft.name):
        raise SegmentError("bad_name", f"segment name {draft.name!r}: 1-64 lower-case letters, digits, '-' or '_'")
    if len(draft.description) > 500:
        raise SegmentError("bad_description", "description: at most 500 characters")
    check_channel(draft.channel)
    return check_rule(draft.rule, schema), _check_webhook(draft.webhook_url, draft.webhook_secret)


def find(db: Session, name: str) -> Any | None:
    """The segment named ``name``, or None."""
    return db.execute(select(_segments).where(_segments.c.name == name)).first()


def listed(db: Session) -> list[Any]:
    """Every segment, by name."""
    return list(db.execute(select(_segments).order_by(_segments.c.name)))


def create(db: Session, draft: Draft, *, actor: str, now: datetime, schema: Schema = SCHEMA) -> int:
    """Save a new segment at version 1; the caller commits. Refused if the name is taken."""
    definition, (url, secret) = _checked(draft, schema)
    if find(db, draft.name) is not None:
        raise SegmentError("exists", f"a segment named {draft.name!r} exists; update it instead")
    values = {
        "name": draft.name,
        "description": draft.description,
        "rule": draft.rule,
        "fingerprint": definition.fingerprint,
        "version": 1,
        "purpose": PURPOSE,
        "channel": draft.channel,
        "webhook_url": url,
        "webhook_secret": secret,
        "created_at": now,
        "created_by": actor,
        "updated_at": now,
        "updated_by": actor,
        "members": 0,
    }
    return int(db.execute(insert(_segments).values(**values).returning(_segments.c.id)).scalar_one())


def revise(db: Session, name: str, draft: Draft, *, actor: str, now: datetime, schema: Schema = SCHEMA) -> int:
    """Save an edit; the version moves on if the rule's meaning or the channel changed. Returns the version."""
    row = find(db, name)
    if row is None:
        raise SegmentError("not_found", f"no segment named {name!r}")
    if draft.name != name:
        raise SegmentError("bad_name", "a segment keeps its name; create a new one instead")
    checked, (url, secret) = _checked(draft, schema)
    if url is None and draft.webhook_url is None:
        url, secret = row.webhook_url, row.webhook_secret  # not given: kept
    old = RuleDefinition("segment", row.version, row.rule, row.fingerprint)
    version = old.revise(draft.rule, SCHEMA).version
    if draft.channel != row.channel and version == row.version:
        version += 1  # who may be reached changed, so the membership means something else
    db.execute(
        update(_segments)
        .where(_segments.c.id == row.id)
        .values(
            description=draft.description,
            rule=draft.rule,
            fingerprint=checked.fingerprint,
            version=version,
            channel=draft.channel,
            webhook_url=url,
            webhook_secret=secret,
            updated_at=now,
            updated_by=actor,
        )
    )
    return version


def to_json(row: Any) -> dict[str, Any]:
    """A segment as the API shows it (the webhook secret never)."""

    def iso(value: datetime | None) -> str | None:
        return value.isoformat().replace("+00:00", "Z") if value else None

    return {
        "name": row.name,
        "description": row.description,
        "rule": row.rule,
        "version": row.version,
        "fingerprint": row.fingerprint,
        "purpose": row.purpose,
        "channel": row.channel,
        "webhook_url": row.webhook_url,
        "created_at": iso(row.created_at),
        "created_by": row.created_by,
        "updated_at": iso(row.updated_at),
        "updated_by": row.updated_by,
        "evaluated_at": iso(row.evaluated_at),
        "evaluated_version": row.evaluated_version,
        "members": row.members,
    }
