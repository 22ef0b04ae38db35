"""A person's requests in the console, for admins: download everything held about them, or erase them.

Customer service sees customers masked and the document is in clear, so the two actions are the
admins' (decision 0098): customer service takes the request and hands its ticket to an admin. Both
call what ``central-server customer export-data`` and ``customer erase`` call, and are audited the
same way (``privacy.export``, ``privacy.erase``), the console user as the actor.

- The download is :func:`central.privacy.access.write`'s document, written to a spooled temporary
  file (memory up to :data:`SPOOL_BYTES`, then an unnamed owner-only file gone when closed), audited
  with its rows per section, then sent a block at a time. Written whole first, so that a database
  error is an error page rather than half a JSON document, and the audit row is there before any
  byte leaves.
- The erasure asks first on a page of its own, which takes the request's ticket as the reason and
  the customer's id typed again; only then does it erase, in one transaction, and go back to the
  customer's page, which now says only when the customer was erased.
"""

from __future__ import annotations

import io
import tempfile
from typing import IO

from flask import Response, abort, current_app, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.wsgi import wrap_file

from central import clock, secret_key
from central.accounts import web
from central.accounts.roles import ADMIN
from central.console import bp
from central.console.auditing import record_audit
from central.console.confirmation import confirmed
from central.console.customer_labels import N_
from central.console.review_items import identity_registry
from central.console.shown import operator_name
from central.customers.queries import find_customer
from central.db import get_session
from central.identity.models import Customer
from central.privacy import access, erasure

SPOOL_BYTES = 4 * 1024 * 1024  # a larger document goes on to an unnamed temporary file (mode 0600)
REASON_LENGTH = 500  # the erasures table's reason column
PROBLEMS = {
    "reason": N_("请填写原因：请求的工单号。"),
    "typed_id": N_("输入的客户编号不对，没有删除。"),
    "failed": N_("无法删除这位客户，没有任何改动。"),
}


def _live(customer_id: int) -> Customer:
    """The customer row, 404 when there is none."""
    row = find_customer(get_session(), customer_id)
    if row is None:
        abort(404)
    return row


def _spooled(customer_id: int) -> tuple[IO[bytes], dict[str, int]]:
    """The document about ``customer_id``, written whole, and its rows per section."""
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES, mode="w+b")  # noqa: SIM115 - closed by the response
    text = io.TextIOWrapper(spool, encoding="utf-8", newline="")
    try:
        written = access.write(get_session(), customer_id, text, now=clock.now())
        text.flush()
    except BaseException:
        spool.close()
        raise
    text.detach()  # the spool stays open for the response, which closes it
    spool.seek(0)
    return spool, written.counts


@bp.get("/customers/<int32:customer_id>/personal-data")
@web.roles(ADMIN)
def personal_data(customer_id: int) -> ResponseReturnValue:
    """Everything held about the customer, in clear, as the JSON file ``customer export-data`` writes."""
    row = _live(customer_id)
    if row.merged_into is not None:
        return redirect(url_for("console.customer", customer_id=customer_id, problem="merged"))
    spool, counts = _spooled(customer_id)
    record_audit("privacy.export", f"customer:{customer_id}", **counts)
    get_session().commit()
    response = Response(wrap_file(request.environ, spool), mimetype="application/json", direct_passthrough=True)
    response.headers["Content-Disposition"] = f'attachment; filename="customer-{customer_id}-personal-data.json"'
    return response


def _ask(customer_id: int, *, reason: str = "", problem: str | None = None) -> ResponseReturnValue:
    planned = erasure.plan(get_session(), customer_id, registry=identity_registry())
    return render_template(
        "customer_erase.html",
        page="customers",
        customer_id=customer_id,
        counts=planned.counts,
        reason=reason,
        problem=PROBLEMS.get(problem or ""),
        reason_length=REASON_LENGTH,
    )


@bp.post("/customers/<int32:customer_id>/erase")
@web.roles(ADMIN)
def erase_customer(customer_id: int) -> ResponseReturnValue:
    """Erase the customer for good; first a page asking for the request's ticket and the id typed again."""
    row = _live(customer_id)
    if row.merged_into is not None:
        return redirect(url_for("console.customer", customer_id=customer_id, problem="merged"))
    db = get_session()
    if erasure.erasure_of(db, customer_id) is not None:
        return redirect(url_for("console.customer", customer_id=customer_id))
    reason = request.form.get("reason", "").strip()[:REASON_LENGTH]
    if not confirmed():
        return _ask(customer_id)
    if not reason:
        return _ask(customer_id, problem="reason")
    if request.form.get("typed_id", "").strip() != str(customer_id):
        return _ask(customer_id, reason=reason, problem="typed_id")
    config = current_app.config["CENTRAL"]
    needed = erasure.revokes_member_keys(db, customer_id)
    secret = secret_key.for_session(db, config.secret_key_path) if needed else None
    try:
        done = erasure.erase(
            db,
            customer_id,
            now=clock.now(),
            operator=operator_name(),
            reason=reason,
            secret=secret,
            registry=identity_registry(),
        )
    except erasure.ErasureError:
        db.rollback()
        return _ask(customer_id, reason=reason, problem="failed")
    record_audit("privacy.erase", f"customer:{customer_id}", **done.counts)
    db.commit()
    return redirect(url_for("console.customer", customer_id=customer_id, done="erased"))
