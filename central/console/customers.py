"""The console's customers: the 360 view, customer service and identity review.

- The search and the newest customers have a module of their own (:mod:`central.console.customer_search`).
- The 360 view: identifiers, the golden record with each attribute's source, tags with the inputs
  and definition version that gave them, consents per purpose and channel, and a keyset-paginated
  timeline (``?before=<cursor>``). Admins also get the merge ledger with split and remove-identifier
  actions, each confirmed on a page of its own (:mod:`central.console.confirmation`), and the open
  review items naming the customer, with accept and reject.
- Customer service and admins add a note, or file a complaint: a ``service.complaint`` event
  ingested like any other (:mod:`central.customers.notes`).
- The review queue has its own page, for admins (:mod:`central.console.review`); both show review
  items through :mod:`central.console.review_items`, and people masked per role through
  :mod:`central.console.shown`.

Every view of a customer writes an audit row; every change is a CSRF-checked POST with its roles.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from flask import abort, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from sqlalchemy.orm import QueryableAttribute

from central import clock
from central.accounts import web
from central.accounts.roles import ADMIN, CUSTOMER_SERVICE
from central.console import bp, consents, local_time
from central.console.auditing import record_audit
from central.console.confirmation import ask, confirmed
from central.console.customer_labels import (
    ATTRIBUTE_SOURCE_LABELS,
    DONE,
    INPUT_LABELS,
    NAMED_SOURCE,
    PROBLEMS,
    STORE_DEVICE,
    TAG_LABELS,
    TAG_VALUE_LABELS,
    code_key,
    value_labels,
)
from central.console.navigation import CUSTOMER_ROLES, IDENTIFIER_LABELS
from central.console.review_items import blocked_types, identity_registry, review_evidence, review_people
from central.console.shown import (
    operator_name,
    role,
    shown_attribute,
    shown_text,
    unmasked,
)
from central.customers import consent_gate, notes, profile, timeline
from central.customers.queries import (
    find_customer,
    money,
    purchase_totals,
)
from central.db import get_session
from central.fleet.enrollment import DEVICE_PREFIX
from central.identity import golden, history, split
from central.identity.models import Identifier, LedgerEntry
from central.params import id_limit, whole_number
from central.privacy.erasure import erasure_of
from central.sources.events import SOURCE_PREFIX
from shared.masking import mask_identifier

RECENT = 50
SERVICE_ROLES = (ADMIN, CUSTOMER_SERVICE)
_MASKED_ATTRIBUTES = ("phone", "email", "address")
# A date with a time of day, as either database writes a timestamp into a tag's JSON inputs.
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def int_arg(name: str, highest: int) -> int | None:
    """A query parameter from 0 to ``highest``, None when absent; 400 for anything else."""
    raw = request.args.get(name, "")
    if not raw:
        return None
    value = whole_number(raw, highest)
    if value is None:
        abort(400)
    return value


def id_field(name: str, column: QueryableAttribute[int]) -> int:
    """The form field ``name``, an id of ``column``; 400 unless it is a number the column holds."""
    value = whole_number(request.form.get(name, ""), id_limit(column))
    if value is None:
        abort(400)
    return value


def _source_text(source: str) -> str:
    """Where a golden value came from, in the page's words: 门店小票统计, 来源 miniprogram, 门店设备 dev_…."""
    if source in ATTRIBUTE_SOURCE_LABELS:
        return _(ATTRIBUTE_SOURCE_LABELS[source])
    if source.startswith(SOURCE_PREFIX):
        return _(NAMED_SOURCE, name=source.removeprefix(SOURCE_PREFIX))
    if source.startswith(DEVICE_PREFIX):
        return _(STORE_DEVICE, name=source)
    return source


def _goldencustomer_rows(customer_id: int) -> list[tuple[str, str, str]]:
    record = golden.golden_of(get_session(), [customer_id]).get(customer_id, {})
    return [(a, shown_attribute(a, value), _source_text(source)) for a, (value, source) in sorted(record.items())]


def _input_text(value: Any) -> str:
    """A tag input as the page shows it: a model's parameters as name value pairs, not a Python dict."""
    if isinstance(value, dict):
        return ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in value.items())
    return value if isinstance(value, str) else str(value)


def _input_time(value: Any) -> datetime | None:
    """A tag input that is an instant (``last_purchase_at``), else None.

    Stored as UTC text (``2026-10-30 05:29:34.000000`` on SQLite, ``2026-10-30T05:29:34+00:00`` on
    PostgreSQL); a plain date (``2026-10-30``) is a calendar day, not an instant, and stays as it is.
    """
    if not isinstance(value, str) or not _TIMESTAMP.match(value):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _input_shown(value: Any) -> Any:
    """A tag input for the page: an instant in the chain's local time, like the timeline; anything else as text."""
    at = _input_time(value)
    return local_time(at) if at is not None else shown_text(_input_text(value))


def _tags(customer_id: int) -> list[dict[str, Any]]:
    """The customer's tags: name and value in the page's words where known, the key and inputs beside them."""
    out = []
    for tag in profile.tags_of(get_session().connection(), customer_id):
        why = tag["why"] if isinstance(tag["why"], dict) else {}
        inputs = [(INPUT_LABELS.get(str(k), str(k)), _input_shown(v)) for k, v in sorted(why.items())]
        at = datetime.fromisoformat(tag["computed_at"]) if tag["computed_at"] else None  # the API's text form
        name, _dot, rest = str(tag["tag"]).partition(".")
        family = name if name in ("top_category", "repurchase") else str(tag["tag"])  # top_category.1, repurchase.奶粉
        value = str(tag["value"])
        out.append(
            {
                **tag,
                "label": TAG_LABELS.get(family),
                "label_detail": rest if family != tag["tag"] else "",
                "value": shown_text(value),
                "value_label": TAG_VALUE_LABELS.get(family, {}).get(value),
                "inputs": inputs,
                "computed_at": at,
            }
        )
    return out


def _consents(customer_id: int, live: bool) -> tuple[list[Any], list[Any]]:
    """The decision holding per purpose and channel, and every decision, newest first."""
    if not live:
        return [], []
    decisions = consent_gate.decisions_of(get_session(), customer_id)
    holding: dict[tuple[str, str], Any] = {}
    for d in decisions:
        holding.setdefault((d.purpose, d.channel), d)
    return [holding[key] for key in sorted(holding)], decisions


COUPON_KINDS = frozenset({"coupon.issued", "coupon.redeemed", "scan.coupon"})
TILL_KINDS = frozenset({"pos.receipt", "pos.sale"})


def _timeline(customer_id: int, cursor: timeline.Cursor | None) -> tuple[list[dict[str, Any]], str | None]:
    found = timeline.page(get_session(), customer_id, cursor)
    rows = []
    for e in found.entries:
        fields = []
        for name, value in e.fields:
            shown = mask_identifier(name, value) if name == "member_id" and not unmasked() else shown_text(value)
            labels = value_labels(e.kind, name)
            label = None if labels is None else labels.get(value) or labels.get(code_key(value))
            if e.sender and name == "channel":
                label = None  # "console" from a source is its word, not the console's: shown as sent
            # A code in the page's words; a code not known here is shown as sent, marked as the source's own.
            fields.append((name, shown, label, labels is not None and label is None))
        if e.sender:
            fields.append(("sent_by", shown_text(_source_text(e.sender)), None, False))
        amount = None if e.amount is None else money(e.amount)
        kind = e.kind
        if kind in COUPON_KINDS and amount is not None:
            # A coupon's face value is no money paid: beside its campaign, not in the amounts' column.
            fields.append(("face_value", amount, None, False))
            amount = None
        elif kind in TILL_KINDS and e.amount is not None and e.amount < 0:
            kind = "pos.refund"  # a negative receipt gives money back
        rows.append(
            {
                "at": e.at,
                "kind": kind,
                "store_id": shown_text(e.store_id),
                "amount": amount,
                "fields": fields,
                "author": e.author,
            }
        )
    return rows, found.next.encode() if found.next else None


@bp.get("/customers/<int32:customer_id>")
@web.roles(*CUSTOMER_ROLES)
def customer(customer_id: int) -> ResponseReturnValue:
    """The 360 view: identifiers, golden record, tags with why, consents, timeline; ledger and review for admins."""
    before = request.args.get("before", "")
    try:
        cursor = timeline.Cursor.decode(before) if before else None
    except ValueError:
        abort(400)
    db = get_session()
    row = find_customer(db, customer_id)
    if row is None:
        abort(404)
    erased = erasure_of(db, customer_id)
    if erased is not None:  # nothing personal is left to show, and nothing to do (decision 0098)
        record_audit("customers.view", f"customer:{customer_id}", erased=True)
        db.commit()
        return render_template(
            "customer_erased.html",
            page="customers",
            customer_id=customer_id,
            erased_at=erased.erased_at,
            done=DONE.get(request.args.get("done", "")),
            problem=PROBLEMS.get(request.args.get("problem", "")),
        )
    live = row.merged_into is None
    admin = role() == ADMIN
    identifiers = [
        {
            "id": i.id,
            "kind": i.kind,
            "value": mask_identifier(i.kind, i.value),
            "state": i.state,
            "seen": i.last_seen_at,
        }
        for i in history.identifiers_of(db, customer_id)
    ]
    holding, decisions = _consents(customer_id, live)
    entries, next_before = _timeline(customer_id, cursor)
    ledger = history.ledger_of(db, customer_id) if admin else []
    items = history.open_items_of(db, customer_id) if admin else []
    record_audit("customers.view", f"customer:{customer_id}", before=before or None, ledger=admin)
    db.commit()
    return render_template(
        "customer.html",
        page="customers",
        customer=row,
        purchases=purchase_totals(db, [customer_id])[customer_id],
        live=live,
        identifiers=identifiers,
        attributes=_goldencustomer_rows(customer_id),
        tags=_tags(customer_id),
        holding=holding,
        decisions=decisions,
        consent_panel=consents.panel(customer_id, live),
        entries=entries,
        next_before=next_before,
        before=before,
        ledger=ledger,
        items=items,
        blocked=blocked_types(db, items),
        people=review_people(db, items),
        evidence=review_evidence,
        shown_text=shown_text,
        may_serve=role() in SERVICE_ROLES,
        admin=admin,
        problem=PROBLEMS.get(request.args.get("problem", "")),
        done=DONE.get(request.args.get("done", "")),
    )


def back_to_customer(customer_id: int, **outcome: Any) -> ResponseReturnValue:
    """Redirect to the customer's page, saying what happened (``done``) or went wrong (``problem``)."""
    return redirect(url_for("console.customer", customer_id=customer_id, **outcome))


@bp.post("/customers/<int32:customer_id>/notes")
@web.roles(*SERVICE_ROLES)
def add_note(customer_id: int) -> ResponseReturnValue:
    """Add a note, or file a complaint (``kind=complaint``), on a customer."""
    kind = request.form.get("kind", "note")
    if kind not in ("note", "complaint"):
        abort(400)
    db = get_session()
    row = find_customer(db, customer_id)
    if row is None:
        abort(404)
    if row.merged_into is not None:
        return back_to_customer(customer_id, problem="merged")
    text = request.form.get("text", "")
    now = clock.now()
    try:
        if kind == "note":
            note = notes.add_note(db, customer_id, text, author=operator_name(), now=now)
            record_audit("customers.note.add", f"customer:{customer_id}", note=note)
        else:
            category = request.form.get("category", "")
            event_id = notes.file_complaint(
                db, identity_registry(), customer_id, text, category=category, operator=operator_name(), now=now
            )
            record_audit("customers.complaint.add", f"customer:{customer_id}", event_id=event_id)
    except notes.NoteError as exc:
        db.rollback()
        return back_to_customer(customer_id, problem=exc.code)
    db.commit()
    return back_to_customer(customer_id, done=kind)


@bp.post("/customers/<int32:customer_id>/split")
@web.roles(ADMIN)
def split_customer(customer_id: int) -> ResponseReturnValue:
    """Undo one merge or link of the customer (a ledger row) by replaying its ledger without it; asks first."""
    ledger_id = id_field("ledger_id", LedgerEntry.id)
    if not confirmed():
        what = _(
            "撤销客户 #%(customer)s 的合并记录 #%(ledger)s：按其余记录重新计算这位客户，这条记录带来的客户重新独立。",
            customer=customer_id,
            ledger=ledger_id,
        )
        back = url_for("console.customer", customer_id=customer_id)
        return ask("customers", _("拆分"), what, back, {"ledger_id": str(ledger_id)})
    db = get_session()
    now, who = clock.now(), operator_name()
    try:
        result = split.split(db, customer_id, ledger_id, now=now, operator=who, registry=identity_registry())
    except split.SplitError:
        db.rollback()
        return back_to_customer(customer_id, problem="split")
    record_audit("identity.split", f"customer:{customer_id}", ledger_id=ledger_id, customers=result.customers)
    db.commit()
    return back_to_customer(customer_id, done="split")


@bp.post("/customers/<int32:customer_id>/identifiers/remove")
@web.roles(ADMIN)
def remove_identifier(customer_id: int) -> ResponseReturnValue:
    """Remove one of the customer's identifiers for good (a tombstone: it never links again); asks first."""
    identifier_id = id_field("identifier_id", Identifier.id)
    db = get_session()
    held = history.identifier_of(db, customer_id, identifier_id)
    if held is None:
        abort(404)
    if not confirmed():
        what = _(
            "从客户 #%(customer)s 移除%(kind)s %(value)s：这个标识今后不会再关联到任何客户。",
            customer=customer_id,
            kind=_(IDENTIFIER_LABELS[held.kind]) if held.kind in IDENTIFIER_LABELS else held.kind,
            value=mask_identifier(held.kind, held.value),
        )
        back = url_for("console.customer", customer_id=customer_id)
        return ask("customers", _("移除标识"), what, back, {"identifier_id": str(identifier_id)})
    taken_from = split.remove_identifier(db, held.kind, held.value, now=clock.now(), operator=operator_name())
    record_audit(
        "identity.identifier.remove", f"{held.kind}:{mask_identifier(held.kind, held.value)}", customer=taken_from
    )
    db.commit()
    return back_to_customer(customer_id, done="removed")
