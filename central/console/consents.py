"""The consent panel on a customer's page: every purpose and channel's verdict now, and the desk's withdrawals.

Admins and customer service record a withdrawal ("stop sending me SMS": marketing on SMS; "stop
everything": marketing on every channel) through the same path as the consent API
(:func:`central.customers.consent_api.record_decisions`), as source ``console`` with the operator
as actor; it holds at once wherever consent is enforced (segments, exports, triggers), since the
gate judges decisions when asked. Grants are not taken here: a grant needs the customer to have read
a notice, which the member app and the till show and a phone call does not (decision 0105).
Marketing sees the verdicts, without the form.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from flask import abort, redirect, request, url_for
from flask.typing import ResponseReturnValue

from central import clock
from central.accounts import web
from central.console import bp
from central.console.customer_labels import CONSENT_ASKED_LABELS
from central.console.shown import operator_name, role
from central.customers import consent, consent_gate
from central.customers.consent_api import DESK, record_decisions
from central.customers.consent_models import ALL_CHANNELS
from central.customers.queries import find_customer
from central.db import get_session
from central.privacy.erasure import erasure_of

_REQUEST_ID = re.compile(r"[0-9a-f]{32}\Z")


def panel(customer_id: int, live: bool) -> dict[str, Any] | None:
    """What the panel shows of a live customer: verdict per purpose (and channel), minor flag, the form's id.

    ``rows`` are ``(purpose, verdicts)``: one verdict per channel for service and marketing, one for
    every channel for profiling and location. ``request_id`` names the withdrawal the form would send,
    so that sending it twice (a double click, a reload) records it once.
    """
    if not live:
        return None
    summary = consent_gate.summary(get_session(), customer_id, clock.today())
    rows = [(p, [summary[p][c] for c in consent.CHANNELS]) for p in ("marketing", "service")]
    rows += [(p, [summary[p]]) for p in ("profiling", "location")]
    return {
        "rows": rows,
        "channels": consent.CHANNELS,
        "minor": summary["minor"],
        "request_id": uuid.uuid4().hex,
        "may_withdraw": role() in DESK,
    }


def _back(customer_id: int, **outcome: Any) -> ResponseReturnValue:
    """Redirect to the customer's page, saying what happened (``done``) or went wrong (``problem``)."""
    return redirect(url_for("console.customer", customer_id=customer_id, **outcome))


@bp.post("/customers/<int32:customer_id>/consents/withdraw")
@web.roles(*DESK)
def withdraw_consent(customer_id: int) -> ResponseReturnValue:
    """Record the customer's withdrawal of one purpose, on one channel or all, as the desk heard it."""
    db = get_session()
    row = find_customer(db, customer_id)
    if row is None:
        abort(404)
    if row.merged_into is not None:
        return _back(customer_id, problem="merged")
    if erasure_of(db, customer_id) is not None:
        return _back(customer_id)  # an erased customer's page takes nothing
    purpose = request.form.get("purpose", "")
    channel = request.form.get("channel", "")
    asked = request.form.get("asked", "")
    request_id = request.form.get("request_id", "")
    if (
        purpose not in consent.PURPOSES
        or channel not in (*consent.CHANNELS, ALL_CHANNELS)
        or asked not in CONSENT_ASKED_LABELS
        or not _REQUEST_ID.match(request_id)
    ):
        return _back(customer_id, problem="consent")
    now, who = clock.now(), operator_name()
    body = {
        "purpose": purpose,
        "channel": None if channel == ALL_CHANNELS else channel,
        "granted": False,
        "source": "console",
        "id": f"desk-{request_id}",
    }
    decisions = consent.parse_request(customer_id, body, now=now, origin="console", actor=who)
    record_decisions(
        db, customer_id, decisions, now=now, actor=who, via="console", purpose=purpose, channel=channel, asked=asked
    )
    db.commit()
    return _back(customer_id, done="consent")
