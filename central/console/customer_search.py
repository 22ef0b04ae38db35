"""The console's customer search, and the newest customers.

- Search by receipt number (and store), for the customer a receipt is linked to
  (:mod:`central.customers.receipt_search`).
- Search by phone, member card, member id, or the start of a name (张 finds every 张…, a keyset page
  at a time: :mod:`central.customers.name_search`; customer service, who opens one customer at a
  time, by the whole name only); identifiers are always shown masked, names and free text unmasked
  for admins only. Customer service opens one customer at a time (no list).

Each list and search writes an audit row naming the customers it showed.
"""

from __future__ import annotations

from typing import Any

from flask import abort, render_template, request
from flask.typing import ResponseReturnValue

from central.accounts import web
from central.accounts.roles import CUSTOMER_SERVICE
from central.console import bp
from central.console.auditing import record_audit
from central.console.customers import RECENT, int_arg
from central.console.navigation import CUSTOMER_ROLES
from central.console.review_items import identity_registry
from central.console.shown import customer_rows, role, shown_text, unmasked
from central.customers.name_search import find_by_name, find_by_name_prefix, search_key
from central.customers.queries import find_customer, recent_customers, summaries_of, survivor_of
from central.customers.receipt_search import find_receipts
from central.db import get_session
from central.identity import resolve
from central.identity.models import Customer
from central.params import id_limit
from shared.masking import mask_identifier, mask_name

SEARCH_KINDS = ("phone", "member_card", "member_id", "name", "receipt")
RECEIPT = "receipt"


def _ids(rows: list[dict[str, Any]]) -> list[int]:
    """The customers a list showed, for its audit row: whose data was seen, not just how many."""
    return [int(row["id"]) for row in rows]


def _surname_only(query: str) -> bool:
    """Whether a name search asks for no more than a masked name shows (its first character: 张*).

    A role that sees names masked may page through a surname, but a longer prefix would answer, one
    letter at a time, what the mask hides: 胡华 spelled out as h, hu, huh, ... from whether the
    customer is still among the results. Anything longer is matched as a whole name.
    """
    return len(search_key(query)) == 1


@bp.get("/customers")
@web.roles(*CUSTOMER_ROLES)
def customers() -> ResponseReturnValue:
    """Search by phone, card, member id, the start of a name or a receipt number; else the newest customers.

    Customer service, who serves one customer at a time, gets no list of the newest.
    """
    kind = request.args.get("kind", "phone")
    query = request.args.get("q", "").strip()[:128]
    store = request.args.get("store", "").strip()[:32]
    after = int_arg("after", id_limit(Customer.id))  # or golden_attributes.id, an INTEGER as well
    if kind not in SEARCH_KINDS:
        abort(400)
    db = get_session()
    found: list[dict[str, Any]] = []
    problem = None
    recent: list[Any] = []
    receipts: list[Any] = []
    next_after = None
    listing = not query and role() != CUSTOMER_SERVICE
    if listing:
        summaries, next_after = recent_customers(db, RECENT, after)  # identifiers come masked
        recent = customer_rows(summaries)
        record_audit("customers.list", after=after, returned=len(recent), customers=_ids(recent))
    elif query and kind == RECEIPT:
        receipts = find_receipts(db, query, store or None)
        linked = dict.fromkeys(r.customer_id for r in receipts if r.customer_id is not None)
        found = customer_rows(summaries_of(db, list(linked)))
        # Not personal data, but masked like every other search (a number may be built from a mobile).
        subject = f"receipt:{mask_identifier(RECEIPT, query)}"
        record_audit(
            "customers.search",
            subject,
            store=store or None,
            receipts=len(receipts),
            returned=len(found),
            customers=_ids(found),
        )
    elif query and kind == "name":
        if unmasked() or (role() != CUSTOMER_SERVICE and _surname_only(query)):
            ids, next_after = find_by_name_prefix(db, query, RECENT, after)
        else:
            # The whole name as written: one customer at a time, no pages to browse, no spellings to guess.
            ids = find_by_name(db, query, spellings=unmasked())
        found = customer_rows(summaries_of(db, ids))
        record_audit(
            "customers.search", f"name:{mask_name(query)}", after=after, returned=len(found), customers=_ids(found)
        )
    elif query:
        value, _reason = identity_registry().check(kind, query)
        if value is None:
            # A number copied from a masked page (177****6492) names no one; say what would.
            problem = "masked" if "*" in query else "invalid"
        else:
            known = resolve.lookup(db.connection(), [(kind, value)])
            ids = sorted({k.customer_id for k in known.values() if k.customer_id is not None})
            live = []
            for cid in ids:
                row = find_customer(db, cid)
                if row is not None:
                    live.append(survivor_of(db, row))
            found = customer_rows(summaries_of(db, list(dict.fromkeys(live))))
            record_audit(
                "customers.search",
                f"{kind}:{mask_identifier(kind, value)}",
                returned=len(found),
                customers=_ids(found),
            )
    db.commit()
    return render_template(
        "customers.html",
        page="customers",
        kind=kind,
        kinds=SEARCH_KINDS,
        query=query,
        store=store,
        receipts=receipts,
        shown_text=shown_text,
        shown_query=query if unmasked() or kind == "name" else "",
        # What the name search takes from this role: any start, spellings too; a surname; or a whole name.
        name_hint="spellings" if unmasked() else "surname" if role() != CUSTOMER_SERVICE else "whole",
        found=found,
        problem=problem,
        recent=recent,
        listing=listing,
        next_after=next_after,
    )
