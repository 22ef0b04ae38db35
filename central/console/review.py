"""The identity review queue for admins: conflicts, suspicious values and weak-match suggestions.

Decisions reuse :mod:`central.identity.review` (what the API and ``central-server review`` do) and are
audited under the same actions; a decision taken on a customer's page goes back to that page.
"""

from __future__ import annotations

from typing import Any

from flask import abort, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from central import clock
from central.accounts import web
from central.accounts.roles import ADMIN
from central.console import bp
from central.console.auditing import record_audit
from central.console.customer_labels import DONE, PROBLEMS
from central.console.customers import RECENT, back_to_customer, int_arg
from central.console.review_items import blocked_types, identity_registry, review_evidence, review_people
from central.console.shown import operator_name
from central.db import get_session
from central.identity import history, review
from central.identity.models import Customer, ReviewItem
from central.params import id_limit, whole_number

REVIEW_STATUSES = (review.OPEN, review.ACCEPTED, review.REJECTED)
# Why a decision could not be made (ReviewError's code, without its type) as the page says it.
_PROBLEM_OF = {
    "decided": "review_decided",
    "unknown": "review_decided",
    "unique_conflict": "review_unique",
    "limit_exceeded": "review_limit",
}


@bp.get("/customers/review")
@web.roles(ADMIN)
def review_queue() -> ResponseReturnValue:
    """The identity review queue: conflicts, suspicious values and weak-match suggestions, oldest first."""
    status = request.args.get("status", review.OPEN)
    if status not in REVIEW_STATUSES:
        abort(400)
    after = int_arg("after", id_limit(ReviewItem.id))
    db = get_session()
    items, next_after = history.review_page(db, status, after, RECENT)
    record_audit(
        "identity.review.list", status=status, after=after, returned=len(items), customers=review.customers_of(items)
    )
    db.commit()
    return render_template(
        "review.html",
        page="review",
        items=items,
        blocked=blocked_types(db, items),
        people=review_people(db, items),
        status=status,
        statuses=REVIEW_STATUSES,
        next_after=next_after,
        evidence=review_evidence,
        problem=PROBLEMS.get(request.args.get("problem", "")),
        done=DONE.get(request.args.get("done", "")),
    )


@bp.post("/customers/review/<int32:item_id>")
@web.roles(ADMIN)
def decide(item_id: int) -> ResponseReturnValue:
    """Accept or reject a review item; back to the customer page it was decided on, or to the queue."""
    decision = request.form.get("decision", "")
    if decision not in ("accept", "reject"):
        abort(400)
    back_to = whole_number(request.form.get("customer", ""), id_limit(Customer.id))
    db = get_session()
    now = clock.now()
    try:
        if decision == "accept":
            done = review.accept(db, identity_registry(), item_id, operator=operator_name(), now=now)
        else:
            done = review.reject(db, item_id, operator=operator_name(), now=now)
    except review.ReviewError as exc:
        db.rollback()
        outcome: dict[str, Any] = {"problem": _PROBLEM_OF.get(exc.code.partition(":")[0], "review")}
    else:
        record_audit(
            f"identity.review.{decision}", f"review:{item_id}", customer=done.customer_id, also=list(done.also)
        )
        db.commit()
        outcome = {"done": decision}
    if back_to is not None:
        return back_to_customer(back_to, **outcome)
    return redirect(url_for("console.review_queue", **outcome))
