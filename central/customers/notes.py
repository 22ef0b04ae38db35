"""Customer service on a customer: a note in ``customer_notes``, or a complaint as a ``service.complaint`` event.

A complaint is an event like any other: it goes through the online sources' ingest path
(:func:`central.sources.events.stage_rows`) as source ``console``, named by one of the customer's
own identifiers, so identity resolution places it with the customer and the ``service.high_care``
tag follows on the next tag run exactly as for a complaint from the member app or a call centre.
The console user who filed it is its ``operator``, as a note's author is (the timeline's entry carries it).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, or_, select
from sqlalchemy.orm import Session

from central.customers.models import CustomerNote
from central.identity.models import LINKED, TRUSTED, Customer, Identifier
from central.identity.registry import Registry
from central.ingest.models import Event
from central.models import table
from central.privacy.models import Erasure
from central.sources.events import DEFAULT_MAX_AHEAD, read_events, stage_rows
from shared import wire
from shared.ids import UUID7

SOURCE = "console"
MAX_NOTE = 2000
MAX_COMPLAINT = 4000
MAX_CATEGORY = 64
_notes = table(CustomerNote)
_identifiers = table(Identifier)
_events = table(Event)
COMPLAINT = "service.complaint"
_new_id = UUID7()


class NoteError(ValueError):
    """A note or complaint that cannot be recorded as given; ``code`` says why for the console.

    Codes: ``empty``, ``too_long``, ``no_identifier`` (the customer holds nothing to name it by),
    ``refused`` (ingest did not accept or place the event), ``erased`` (the customer was erased:
    nothing more is recorded about them, decision 0098).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _clean(text: str, limit: int, what: str) -> str:
    cleaned = text.replace("\x00", "").strip()
    if not cleaned:
        raise NoteError("empty", f"the {what} is empty")
    if len(cleaned) > limit:
        raise NoteError("too_long", f"the {what} is longer than {limit} characters")
    return cleaned


def _refuse_erased(db: Session, customer_id: int) -> None:
    """Raise ``erased`` if the customer, or the customer it was merged into, was erased."""
    survivor = select(Customer.merged_into).where(Customer.id == customer_id).scalar_subquery()
    erased_at = db.scalar(
        select(Erasure.erased_at).where(or_(Erasure.customer_id == customer_id, Erasure.customer_id == survivor))
    )
    if erased_at is not None:
        raise NoteError(
            "erased", f"customer {customer_id} was erased on {erased_at:%Y-%m-%d}: nothing more is recorded about them"
        )


def add_note(db: Session, customer_id: int, text: str, *, author: str, now: datetime) -> int:
    """Store a note on ``customer_id`` (the caller commits); return its id. An erased customer takes none."""
    _refuse_erased(db, customer_id)
    body = _clean(text, MAX_NOTE, "note")
    values = {"customer_id": customer_id, "author": author[:128], "text": body, "created_at": now}
    return int(db.execute(insert(_notes).values(**values).returning(_notes.c.id)).scalar_one())


def naming_identifier(db: Session, registry: Registry, customer_id: int) -> tuple[str, str, str | None] | None:
    """The customer's strongest linking identifier as ``(type, value, app_id)``, or None if it holds none."""
    rows = db.execute(
        select(_identifiers.c.kind, _identifiers.c.value).where(
            _identifiers.c.customer_id == customer_id, _identifiers.c.state.in_((LINKED, TRUSTED))
        )
    ).all()
    best: tuple[int, str, str, str | None] | None = None
    for kind, value in rows:
        spec = registry.types.get(kind)
        if spec is None or spec.weak:
            continue
        app_id: str | None = None
        if spec.scoped:
            app_id, _, value = value.partition(":")
        candidate = (spec.priority, kind, value, app_id)
        if best is None or candidate[:2] > best[:2]:
            best = candidate
    return None if best is None else best[1:]


def file_complaint(
    db: Session,
    registry: Registry,
    customer_id: int,
    text: str,
    *,
    category: str = "",
    operator: str,
    now: datetime,
) -> str:
    """Ingest a ``service.complaint`` for ``customer_id``, filed by ``operator``, in the caller's transaction.

    Returns its event id. An erased customer takes none.
    """
    _refuse_erased(db, customer_id)
    body = _clean(text, MAX_COMPLAINT, "complaint")
    named = naming_identifier(db, registry, customer_id)
    if named is None:
        raise NoteError("no_identifier", f"customer {customer_id} holds no identifier to file a complaint under")
    kind, value, app_id = named
    event_id = f"console-{_new_id()}"
    payload = {"channel": SOURCE, "text": body, "operator": operator[:128]}
    if category.strip():
        payload["category"] = category.strip()[:MAX_CATEGORY]
    raw = {
        "event_id": event_id,
        "kind": COMPLAINT,
        "observed_at": wire.format_time(now),
        "identifiers": {kind: value},
        "payload": payload,
    }
    if app_id:
        raw["app_id"] = app_id
    rows, _repeated, rejected = read_events([raw], now + DEFAULT_MAX_AHEAD)
    if rejected:
        raise NoteError("refused", f"the complaint was refused ({rejected[0].reason})")
    staged = stage_rows(db, SOURCE, rows, now, registry=registry)
    placed = staged.resolution.customer_ids if staged.resolution is not None else []
    if staged.accepted != [event_id] or not placed or placed[0] != customer_id:
        raise NoteError("refused", f"the complaint could not be placed with customer {customer_id}")
    return event_id
